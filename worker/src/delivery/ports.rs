//! The seams of the delivery path: the state store and the delivery at hand, as the
//! worker uses them. The real implementations (`StateStore`, [`AmqpInbound`]) talk to
//! Redis and RabbitMQ; unit tests put in-memory fakes in their place, so every
//! decision and its execution runs without a server (as asynq tests its processor
//! against a test broker).
//!
//! [`AmqpInbound`]: super::amqp::AmqpInbound

use crate::dead::DeadReason;
use crate::handler::Reporter;
use crate::reporter::StoreReporter;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::amqp::AmqpError;
use taskfleet_common::amqp::Settle;
use taskfleet_common::envelope::{Envelope, Resolved};
use taskfleet_common::store::{Claim, Commit, DeliveryClaim, Fence, Outcome, StoreError};
use taskfleet_common::{StateStore, TaskId};

/// The transitions one delivery makes in the state store.
pub(crate) trait TaskStore: Send + Sync + 'static {
    fn claim(
        &self,
        env: &Envelope,
        resolved: &Resolved,
        claim: &DeliveryClaim<'_>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    fn finish(
        &self,
        env: &Envelope,
        fence: &Fence,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<Commit, StoreError>> + Send;

    /// Where the run's progress and checkpoints go, fenced on its run.
    fn reporter(&self, id: TaskId, fence: Fence, checkpoint_limit: usize) -> Arc<dyn Reporter>;

    /// The envelopes of dependents of the finished task `id` released and not yet
    /// published (docs/workflows.md); resolves them first if that was not done yet.
    fn release(&self, id: &TaskId) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The released dependents `children` of `parent` were published (confirmed).
    fn forget_released(
        &self,
        parent: &TaskId,
        children: &[TaskId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored result of each parent, in order.
    fn parent_results(
        &self,
        parents: &[TaskId],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send;
}

impl TaskStore for StateStore {
    fn claim(
        &self,
        env: &Envelope,
        resolved: &Resolved,
        claim: &DeliveryClaim<'_>,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        StateStore::claim(self, env, resolved, claim)
    }

    fn finish(
        &self,
        env: &Envelope,
        fence: &Fence,
        outcome: &Outcome,
    ) -> impl Future<Output = Result<Commit, StoreError>> + Send {
        StateStore::finish(self, &env.id, &env.task_type, fence, outcome)
    }

    fn release(&self, id: &TaskId) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        StateStore::release(self, id)
    }

    fn forget_released(
        &self,
        parent: &TaskId,
        children: &[TaskId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        StateStore::forget_released(self, parent, children)
    }

    fn parent_results(
        &self,
        parents: &[TaskId],
    ) -> impl Future<Output = Result<Vec<Option<String>>, StoreError>> + Send {
        StateStore::results_of(self, parents)
    }

    fn reporter(&self, id: TaskId, fence: Fence, checkpoint_limit: usize) -> Arc<dyn Reporter> {
        Arc::new(StoreReporter {
            store: self.clone(),
            id,
            fence,
            checkpoint_limit,
        })
    }
}

/// A dead copy's headers: why the message is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadCopy {
    pub reason: DeadReason,
    pub error: String,
    pub attempts: u32,
    /// The task id, or the message id of an unparseable message (may be empty).
    pub message_id: String,
    /// Empty for an unparseable message.
    pub task_type: String,
}

/// What a published copy of a task is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CopyKind {
    /// A next attempt (or the same one handed back): run it when it arrives.
    Attempt,
    /// A parked copy: check on the run when it arrives.
    Parked,
    /// A scheduled task on its way to its run_at, through the delay tiers.
    Scheduled,
}

/// One delivery and the connection it came on.
pub(crate) trait Inbound: Send + Sync + 'static {
    fn body(&self) -> &[u8];
    /// AMQP `redelivered`.
    fn redelivered(&self) -> bool;
    fn message_id(&self) -> Option<&str>;
    /// The queue it was consumed from.
    fn queue(&self) -> &str;
    /// Whether the connection it came on can still settle it.
    fn is_connected(&self) -> bool;

    fn settle(&self, how: Settle) -> impl Future<Output = ()> + Send;

    /// A copy of this delivery's task sent that is parked (its delivery acked
    /// while the run goes on): the delivery must not be settled again.
    fn parked(&self) -> bool;
    fn set_parked(&self);
    /// This delivery is itself a parked copy coming back (`x-taskfleet-parked`).
    fn is_parked_copy(&self) -> bool;

    /// Publishes `env` (confirmed) to wait `delay` in the broker before it is
    /// delivered again; straight to the tasks exchange when `delay` is zero.
    fn publish_copy(
        &self,
        env: &Envelope,
        delay: Duration,
        priority: u8,
        kind: CopyKind,
    ) -> impl Future<Output = Result<(), AmqpError>> + Send;

    /// `publish_copy` on whichever connection is live now, waiting for a reconnect for
    /// a bounded time: a parked run outlives the connection its delivery came on.
    fn publish_copy_elsewhere(
        &self,
        env: &Envelope,
        delay: Duration,
        priority: u8,
        kind: CopyKind,
    ) -> impl Future<Output = Result<(), AmqpError>> + Send;

    /// Publishes (confirmed) this delivery's body to the dead-letter exchange.
    fn publish_dead(&self, copy: &DeadCopy) -> impl Future<Output = Result<(), AmqpError>> + Send;

    /// The same on whichever connection is live now (this one broke), waiting for a
    /// reconnect for a bounded time.
    fn publish_dead_elsewhere(
        &self,
        copy: &DeadCopy,
    ) -> impl Future<Output = Result<(), AmqpError>> + Send;
}
