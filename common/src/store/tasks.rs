//! The transitions of one task, each one script call (`calls/`), and their types.

use super::calls::{AbandonArgs, CancelArgs, ClaimArgs, FinishArgs, ReplayArgs, ReportArgs};
use super::{Result, StateStore};
use crate::envelope::{Envelope, Resolved};
use crate::ids::{TaskId, TaskType, WorkerId};
use crate::state::TaskState;
use std::fmt;
use std::time::Duration;

/// What the producer records before publishing.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub id: TaskId,
    pub task_type: &'a TaskType,
    pub payload: &'a str,
    /// Set explicitly, or declared by the workers of the type; `None` leaves the field
    /// out of the record until a worker claims the task and writes what it resolved.
    pub max_attempts: Option<u32>,
    pub priority: Option<u8>,
    pub trace_id: Option<&'a str>,
    pub created_at: Option<u64>,
    pub idempotency_key: Option<&'a str>,
    /// `scheduled` until then (ms).
    pub run_at: Option<u64>,
    /// Never run if not started by then (ms).
    pub expires_at: Option<u64>,
    /// The `--group` key (flow control's `group_max_running`).
    pub group: Option<&'a str>,
    /// The tasks it waits for (`--after`, docs/workflows.md).
    pub after: &'a [TaskId],
    /// With `after`: the envelope to publish once every parent completed.
    pub envelope: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Recorded `pending` or `scheduled`: publish it now.
    Created,
    /// Recorded `waiting` (its envelope is published when its parents completed), or
    /// `cancelled` because a parent had failed: publish nothing.
    Held { state: TaskState },
    /// A parent does not exist (or its record expired): nothing was recorded.
    UnknownParent(TaskId),
    /// The idempotency key (or the id) was seen before: nothing new was recorded.
    Exists(TaskId),
}

/// What every write of one run must match: the worker, the attempt and a token the
/// worker draws for each delivery (stored by the claim). Any takeover, even by the
/// same worker after a reconnect, changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub worker: WorkerId,
    pub attempt: u32,
    pub token: u64,
}

/// Who takes a delivery, and what the claim needs to know about it.
#[derive(Debug, Clone)]
pub struct DeliveryClaim<'a> {
    pub worker: &'a WorkerId,
    /// The run's fence token, drawn by the worker for this delivery.
    pub token: u64,
    /// AMQP `redelivered`: a copy of a running attempt without it is a duplicate.
    pub redelivered: bool,
    /// A parked copy coming back from its check-back delay (`x-taskfleet-parked`).
    pub parked: bool,
    pub lease: Duration,
    pub max_redeliveries: u32,
    /// This worker's fleet-wide limits of the type (docs/flow-control.md).
    pub flow: crate::flow::FlowLimits,
}

/// Whether a delivery may run, decided by `claim.lua`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Run it; every later write of this run carries the fence.
    Run {
        fence: Fence,
        checkpoint: Option<String>,
    },
    /// A failed attempt whose retry was never published: publish the next attempt
    /// (after `delay`) and drop this delivery.
    Reschedule { next_attempt: u32, delay: Duration },
    /// Already finished, or a stale copy: acknowledge and drop.
    Drop { reason: DropReason },
    /// Cancellation was requested: acknowledge, never start.
    Cancelled,
    /// Redelivered too often without finishing: now `failed`, dead-letter it.
    Poison { deliveries: u32 },
    /// The task's run is alive (its lease holds) or its retry is not yet overdue:
    /// park this copy to check again after `delay`. Not counted as a delivery.
    Park { delay: Duration },
    /// Scheduled and not yet due: publish this copy to wait `delay` more, drop this one.
    Hop { delay: Duration },
    /// Not started by its `expires_at`: now `cancelled` (reason `expired`); never start it.
    Expired,
    /// Flow control holds it (paused, no rate token, no free slot): nothing was
    /// recorded; try again after `delay` (zero: the worker chooses).
    Wait {
        reason: crate::flow::FlowWait,
        delay: Duration,
    },
}

/// Why `claim.lua` dropped a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The record is in this terminal state.
    Finished(TaskState),
    /// A copy of an attempt older than the record's.
    Stale,
    /// A second publish of the attempt running now (not a redelivery).
    Duplicate,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Finished(state) => write!(f, "already {state}"),
            DropReason::Stale => f.write_str("stale attempt"),
            DropReason::Duplicate => f.write_str("duplicate of the running attempt"),
        }
    }
}

/// The outcome of one attempt, as the worker commits it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed {
        result: String,
    },
    Failed {
        error: String,
    },
    Retrying {
        error: String,
        delay: Duration,
    },
    Cancelled,
    /// Drained or handed back: no attempt used.
    Interrupted,
}

impl Outcome {
    /// The `outcome` argument of `finish.lua`: the state it asks for.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Outcome::Completed { .. } => "completed",
            Outcome::Failed { .. } => "failed",
            Outcome::Retrying { .. } => "retrying",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "pending",
        }
    }
}

/// What `finish.lua` did with a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    Applied {
        state: TaskState,
        /// For `cancelled`: ms from the cancel request to now (Redis clock).
        cancel_latency_ms: Option<u64>,
        /// The envelopes of dependents this commit released (docs/workflows.md): to
        /// publish, confirmed, before the delivery is acknowledged.
        released: Vec<String>,
    },
    /// Fenced: the record moved on (another run, or a terminal state). `None` when
    /// the record is gone (Redis lost its data).
    Refused { current: Option<TaskState> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    NotFound,
    State(TaskState),
}

/// Why `replay.lua` refused: the record is not `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRefusal {
    pub current: TaskState,
}

impl fmt::Display for ReplayRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the task is {}, not failed", self.current)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Progress {
        percent: u8,
        message: Option<String>,
    },
    Checkpoint(String),
}

impl StateStore {
    pub async fn enqueue(&self, t: &NewTask<'_>) -> Result<EnqueueOutcome> {
        self.call(t).await
    }

    /// Undoes an enqueue whose publish failed; true if the record was removed.
    pub async fn abandon(
        &self,
        id: &TaskId,
        task_type: &TaskType,
        idempotency_key: Option<&str>,
    ) -> Result<bool> {
        self.call(&AbandonArgs {
            id,
            task_type,
            idempotency_key,
        })
        .await
    }

    pub async fn claim(
        &self,
        env: &Envelope,
        resolved: &Resolved,
        delivery: &DeliveryClaim<'_>,
    ) -> Result<Claim> {
        self.call(&ClaimArgs {
            env,
            resolved,
            delivery,
        })
        .await
    }

    pub async fn finish(
        &self,
        id: &TaskId,
        task_type: &TaskType,
        fence: &Fence,
        outcome: &Outcome,
    ) -> Result<Commit> {
        self.call(&FinishArgs {
            id,
            task_type,
            fence,
            outcome,
        })
        .await
    }

    /// Requests cancellation; a running task's worker is told on `{ns}:cancellations`.
    pub async fn cancel(&self, id: &TaskId) -> Result<CancelResult> {
        self.cancel_with(id, false).await
    }

    /// Requests cancellation; `with_dependents` also cancels every task waiting for
    /// it, transitively, whatever its own state (docs/workflows.md).
    pub async fn cancel_with(&self, id: &TaskId, with_dependents: bool) -> Result<CancelResult> {
        // The type is needed for the stats key; read it first (ids are immutable).
        let Some(task_type) = self.task_type_of(id).await? else {
            return Ok(CancelResult::NotFound);
        };
        self.call(&CancelArgs {
            id,
            task_type: &task_type,
            with_dependents,
        })
        .await
    }

    /// Stores progress or a checkpoint for the run `fence` names; false if fenced off.
    pub async fn report(&self, id: &TaskId, fence: &Fence, report: &Report) -> Result<bool> {
        self.call(&ReportArgs { id, fence, report }).await
    }

    /// Gives a `failed` task a new life as `pending` with fresh attempts (dead replay).
    pub async fn replay(
        &self,
        env: &Envelope,
        resolved: &Resolved,
    ) -> Result<std::result::Result<(), ReplayRefusal>> {
        self.call(&ReplayArgs { env, resolved }).await
    }
}
