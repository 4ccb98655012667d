//! In-memory stand-ins for the seams, recording what the delivery path did.

use super::ports::{CopyKind, DeadCopy, Inbound, TaskStore};
use crate::handler::{BoxFuture, Reporter};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use taskfleet_common::amqp::AmqpError;
use taskfleet_common::amqp::Settle;
use taskfleet_common::envelope::{Envelope, Resolved};
use taskfleet_common::store::{Claim, Commit, DeliveryClaim, Fence, Outcome, StoreError};
use taskfleet_common::{TaskId, TaskState};

pub(crate) fn unreachable_redis() -> StoreError {
    StoreError::Unreachable {
        url: "redis://fake".into(),
        reason: "connection refused".into(),
    }
}

/// Answers each claim and commit from a script, in order; once a script is used up,
/// claims run the attempt and commits apply the outcome's state.
#[derive(Default)]
pub(crate) struct FakeStore {
    pub claims: Mutex<VecDeque<Result<Claim, StoreError>>>,
    pub commits: Mutex<VecDeque<Result<Commit, StoreError>>>,
    /// Every outcome the path tried to commit, retries included.
    pub finished: Mutex<Vec<Outcome>>,
    pub claimed: Mutex<Vec<bool>>,
}

impl FakeStore {
    pub fn claim_replies(
        self,
        replies: impl IntoIterator<Item = Result<Claim, StoreError>>,
    ) -> Self {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(replies);
        self
    }

    pub fn commit_replies(
        self,
        replies: impl IntoIterator<Item = Result<Commit, StoreError>>,
    ) -> Self {
        self.commits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(replies);
        self
    }

    pub fn finished(&self) -> Vec<Outcome> {
        self.finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn applied_state(outcome: &Outcome) -> TaskState {
    match outcome {
        Outcome::Completed { .. } => TaskState::Completed,
        Outcome::Failed { .. } => TaskState::Failed,
        Outcome::Retrying { .. } => TaskState::Retrying,
        Outcome::Cancelled => TaskState::Cancelled,
        Outcome::Interrupted => TaskState::Pending,
    }
}

impl TaskStore for FakeStore {
    async fn release(&self, _id: &TaskId) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn forget_released(
        &self,
        _parent: &TaskId,
        _children: &[TaskId],
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn parent_results(&self, _parents: &[TaskId]) -> Result<Vec<Option<String>>, StoreError> {
        Ok(Vec::new())
    }

    async fn claim(
        &self,
        env: &Envelope,
        _resolved: &Resolved,
        claim: &DeliveryClaim<'_>,
    ) -> Result<Claim, StoreError> {
        self.claimed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(claim.redelivered);
        let scripted = self
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        scripted.unwrap_or_else(|| {
            Ok(Claim::Run {
                fence: Fence {
                    worker: claim.worker.clone(),
                    attempt: env.attempt,
                    token: claim.token,
                },
                checkpoint: None,
            })
        })
    }

    async fn finish(
        &self,
        _env: &Envelope,
        _fence: &Fence,
        outcome: &Outcome,
    ) -> Result<Commit, StoreError> {
        self.finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(outcome.clone());
        let scripted = self
            .commits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front();
        scripted.unwrap_or_else(|| {
            Ok(Commit::Applied {
                state: applied_state(outcome),
                cancel_latency_ms: None,
                released: Vec::new(),
            })
        })
    }

    fn reporter(&self, _id: TaskId, _fence: Fence, _limit: usize) -> Arc<dyn Reporter> {
        Arc::new(NoReporter)
    }
}

struct NoReporter;

impl Reporter for NoReporter {
    fn progress(&self, _percent: u8, _message: Option<String>) -> BoxFuture<bool> {
        Box::pin(std::future::ready(true))
    }

    fn checkpoint(&self, _value: String) -> BoxFuture<bool> {
        Box::pin(std::future::ready(true))
    }
}

/// What the path did to the delivery, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Did {
    Settled(Settle),
    PublishedAttempt {
        attempt: u32,
        delay: Duration,
    },
    PublishedParked {
        attempt: u32,
        delay: Duration,
    },
    PublishedScheduled {
        delay: Duration,
    },
    PublishedDead(DeadCopy),
    PublishedDeadElsewhere(DeadCopy),
    /// A copy sent on the worker's live connection instead of the delivery's own.
    PublishedElsewhere {
        kind: CopyKind,
        attempt: u32,
        delay: Duration,
    },
}

pub(crate) struct FakeInbound {
    pub body: Vec<u8>,
    pub redelivered: bool,
    pub message_id: Option<String>,
    pub connected: AtomicBool,
    /// Publishes on the delivery's own connection are not confirmed.
    pub publish_fails: AtomicBool,
    /// Publishes on the worker's live connection (`*_elsewhere`) are not confirmed.
    pub live_link_fails: AtomicBool,
    pub parked: AtomicBool,
    pub parked_copy: bool,
    pub did: Mutex<Vec<Did>>,
}

impl FakeInbound {
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            redelivered: false,
            message_id: None,
            connected: AtomicBool::new(true),
            publish_fails: AtomicBool::new(false),
            live_link_fails: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            parked_copy: false,
            did: Mutex::new(Vec::new()),
        }
    }

    pub fn did(&self) -> Vec<Did> {
        self.did
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, d: Did) {
        self.did
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(d);
    }

    fn live_link_result(&self) -> Result<(), AmqpError> {
        if self.live_link_fails.load(Ordering::Relaxed) {
            Err(AmqpError::Nacked)
        } else {
            Ok(())
        }
    }

    fn publish_result(&self) -> Result<(), AmqpError> {
        if self.publish_fails.load(Ordering::Relaxed) {
            Err(AmqpError::Nacked)
        } else {
            Ok(())
        }
    }
}

impl Inbound for FakeInbound {
    fn body(&self) -> &[u8] {
        &self.body
    }

    fn redelivered(&self) -> bool {
        self.redelivered
    }

    fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    fn queue(&self) -> &str {
        "test.q.echo"
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    fn set_parked(&self) {
        self.parked.store(true, Ordering::Relaxed)
    }

    fn is_parked_copy(&self) -> bool {
        self.parked_copy
    }

    async fn settle(&self, how: Settle) {
        self.record(Did::Settled(how));
    }

    async fn publish_copy(
        &self,
        env: &Envelope,
        delay: Duration,
        _priority: u8,
        kind: CopyKind,
    ) -> Result<(), AmqpError> {
        let attempt = env.attempt;
        self.record(match kind {
            CopyKind::Attempt => Did::PublishedAttempt { attempt, delay },
            CopyKind::Parked => Did::PublishedParked { attempt, delay },
            CopyKind::Scheduled => Did::PublishedScheduled { delay },
        });
        self.publish_result()
    }

    async fn publish_dead(&self, copy: &DeadCopy) -> Result<(), AmqpError> {
        self.record(Did::PublishedDead(copy.clone()));
        self.publish_result()
    }

    async fn publish_copy_elsewhere(
        &self,
        env: &Envelope,
        delay: Duration,
        _priority: u8,
        kind: CopyKind,
    ) -> Result<(), AmqpError> {
        self.record(Did::PublishedElsewhere {
            kind,
            attempt: env.attempt,
            delay,
        });
        self.live_link_result()
    }

    async fn publish_dead_elsewhere(&self, copy: &DeadCopy) -> Result<(), AmqpError> {
        self.record(Did::PublishedDeadElsewhere(copy.clone()));
        self.live_link_result()
    }
}

/// Lets a test keep its fake after the path consumed the delivery.
impl<T: Inbound> Inbound for Arc<T> {
    fn body(&self) -> &[u8] {
        (**self).body()
    }

    fn redelivered(&self) -> bool {
        (**self).redelivered()
    }

    fn message_id(&self) -> Option<&str> {
        (**self).message_id()
    }

    fn queue(&self) -> &str {
        (**self).queue()
    }

    fn is_connected(&self) -> bool {
        (**self).is_connected()
    }

    fn parked(&self) -> bool {
        (**self).parked()
    }

    fn set_parked(&self) {
        (**self).set_parked()
    }

    fn is_parked_copy(&self) -> bool {
        (**self).is_parked_copy()
    }

    async fn settle(&self, how: Settle) {
        (**self).settle(how).await
    }

    async fn publish_copy(
        &self,
        env: &Envelope,
        delay: Duration,
        priority: u8,
        kind: CopyKind,
    ) -> Result<(), AmqpError> {
        (**self).publish_copy(env, delay, priority, kind).await
    }

    async fn publish_copy_elsewhere(
        &self,
        env: &Envelope,
        delay: Duration,
        priority: u8,
        kind: CopyKind,
    ) -> Result<(), AmqpError> {
        (**self)
            .publish_copy_elsewhere(env, delay, priority, kind)
            .await
    }

    async fn publish_dead(&self, copy: &DeadCopy) -> Result<(), AmqpError> {
        (**self).publish_dead(copy).await
    }

    async fn publish_dead_elsewhere(&self, copy: &DeadCopy) -> Result<(), AmqpError> {
        (**self).publish_dead_elsewhere(copy).await
    }
}
