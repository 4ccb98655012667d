//! The transitions of one task, each one script call.

use super::reply::{int, items, text, unexpected};
use super::{Result, StateStore};
use crate::envelope::{Envelope, Resolved};
use crate::ids::{TaskId, TaskType, WorkerId};
use crate::state::TaskState;
use std::time::Duration;

/// What the producer records before publishing.
#[derive(Debug, Clone)]
pub struct NewTask<'a> {
    pub id: TaskId,
    pub task_type: &'a TaskType,
    pub payload: &'a str,
    pub max_attempts: u32,
    pub priority: u8,
    pub trace_id: Option<&'a str>,
    pub created_at: Option<u64>,
    pub idempotency_key: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    Created,
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
    pub lease: Duration,
    pub max_redeliveries: u32,
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
    Drop { reason: String },
    /// Cancellation was requested: acknowledge, never start.
    Cancelled,
    /// Redelivered too often without finishing: now `failed`, dead-letter it.
    Poison { deliveries: u32 },
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
    fn name(&self) -> &'static str {
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
        let n = &self.names;
        let idem = t.idempotency_key.map(|k| n.idempotency_key(k));
        let reply: redis::Value = self
            .scripts
            .enqueue
            .key(n.task_key(&t.id))
            .key(n.stats_key(t.task_type))
            .key(n.types_key())
            .key(n.events_channel())
            .key(idem.clone().unwrap_or_else(|| n.idempotency_key("-")))
            .arg(t.id.to_string())
            .arg(t.task_type.as_str())
            .arg(t.payload)
            .arg(t.max_attempts)
            .arg(t.priority)
            .arg(t.trace_id.unwrap_or(""))
            .arg(t.created_at.unwrap_or(0))
            .arg(if idem.is_some() { 1 } else { 0 })
            .arg(self.retention_ms())
            .invoke_async(&mut self.conn())
            .await?;
        let r = items(reply);
        match (r.first().and_then(text).as_deref(), r.get(1).and_then(text)) {
            (Some("created"), _) => Ok(EnqueueOutcome::Created),
            (Some("exists"), Some(id)) => id
                .parse()
                .map(EnqueueOutcome::Exists)
                .map_err(|_| unexpected("enqueue", &r)),
            _ => Err(unexpected("enqueue", &r)),
        }
    }

    /// Undoes an enqueue whose publish failed; true if the record was removed.
    pub async fn abandon(
        &self,
        id: &TaskId,
        task_type: &TaskType,
        idempotency_key: Option<&str>,
    ) -> Result<bool> {
        let n = &self.names;
        let removed: i64 = self
            .scripts
            .abandon
            .key(n.task_key(id))
            .key(n.stats_key(task_type))
            .key(n.events_channel())
            .key(n.idempotency_key(idempotency_key.unwrap_or("-")))
            .arg(id.to_string())
            .arg(if idempotency_key.is_some() { 1 } else { 0 })
            .invoke_async(&mut self.conn())
            .await?;
        Ok(removed == 1)
    }

    pub async fn claim(
        &self,
        env: &Envelope,
        resolved: &Resolved,
        d: &DeliveryClaim<'_>,
    ) -> Result<Claim> {
        let (worker, token) = (d.worker, d.token);
        let n = &self.names;
        let reply: redis::Value = self
            .scripts
            .claim
            .key(n.task_key(&env.id))
            .key(n.stats_key(&env.task_type))
            .key(n.types_key())
            .key(n.events_channel())
            .key(n.cancel_key(&env.id))
            .key(n.running_key())
            .arg(env.id.to_string())
            .arg(env.task_type.as_str())
            .arg(env.payload.get())
            .arg(env.attempt)
            .arg(resolved.max_attempts)
            .arg(resolved.priority)
            .arg(env.trace_id.as_deref().unwrap_or(""))
            .arg(env.created_at.unwrap_or(0))
            .arg(worker.as_str())
            .arg(d.lease.as_millis() as u64)
            .arg(d.max_redeliveries)
            .arg(self.retention_ms())
            .arg(if d.redelivered { 1 } else { 0 })
            .arg(token.to_string())
            .invoke_async(&mut self.conn())
            .await?;
        let r = items(reply);
        let number = |i: usize| {
            r.get(i)
                .and_then(int)
                .ok_or_else(|| unexpected("claim", &r))
        };
        let claim = match r.first().and_then(text).as_deref() {
            Some("run") => Claim::Run {
                fence: Fence {
                    worker: worker.clone(),
                    attempt: number(1)? as u32,
                    token,
                },
                checkpoint: r.get(2).and_then(text),
            },
            Some("reschedule") => Claim::Reschedule {
                next_attempt: env.attempt + 1,
                delay: Duration::from_millis(number(1)?.max(0) as u64),
            },
            Some("drop") => Claim::Drop {
                reason: r.get(1).and_then(text).unwrap_or_default(),
            },
            Some("cancelled") => Claim::Cancelled,
            Some("poison") => Claim::Poison {
                deliveries: r.get(1).and_then(int).unwrap_or(0) as u32,
            },
            _ => return Err(unexpected("claim", &r)),
        };
        Ok(claim)
    }

    pub async fn finish(
        &self,
        id: &TaskId,
        task_type: &TaskType,
        fence: &Fence,
        outcome: &Outcome,
    ) -> Result<Commit> {
        let n = &self.names;
        let (result, error, delay) = match outcome {
            Outcome::Completed { result } => (result.as_str(), "", 0),
            Outcome::Failed { error } => ("", error.as_str(), 0),
            Outcome::Retrying { error, delay } => ("", error.as_str(), delay.as_millis() as u64),
            Outcome::Cancelled | Outcome::Interrupted => ("", "", 0),
        };
        let reply: redis::Value = self
            .scripts
            .finish
            .key(n.task_key(id))
            .key(n.stats_key(task_type))
            .key(n.events_channel())
            .key(n.running_key())
            .arg(id.to_string())
            .arg(fence.worker.as_str())
            .arg(fence.attempt)
            .arg(outcome.name())
            .arg(result)
            .arg(error)
            .arg(delay)
            .arg(self.retention_ms())
            .arg(fence.token.to_string())
            .invoke_async(&mut self.conn())
            .await?;
        let r = items(reply);
        let state = r.get(1).and_then(text).unwrap_or_default();
        match r.first().and_then(text).as_deref() {
            Some("ok") => Ok(Commit::Applied {
                state: state.parse().map_err(|_| unexpected("finish", &r))?,
                cancel_latency_ms: r.get(2).and_then(int).and_then(|ms| u64::try_from(ms).ok()),
            }),
            Some("refused") => Ok(Commit::Refused {
                current: state.parse().ok(),
            }),
            _ => Err(unexpected("finish", &r)),
        }
    }

    /// Requests cancellation and publishes the id on `{ns}:cancellations`.
    pub async fn cancel(&self, id: &TaskId) -> Result<CancelResult> {
        let n = &self.names;
        // The type is needed for the stats key; read it first (ids are immutable).
        let Some(task_type) = self.task_type_of(id).await? else {
            return Ok(CancelResult::NotFound);
        };
        let reply: redis::Value = self
            .scripts
            .cancel
            .key(n.task_key(id))
            .key(n.stats_key(&task_type))
            .key(n.events_channel())
            .key(n.cancel_key(id))
            .key(n.cancellations_channel())
            .arg(id.to_string())
            .arg(self.retention_ms())
            .arg(1)
            .invoke_async(&mut self.conn())
            .await?;
        let r = items(reply);
        match (r.first().and_then(text).as_deref(), r.get(1).and_then(text)) {
            (Some("not_found"), _) => Ok(CancelResult::NotFound),
            (Some("ok"), Some(s)) => s
                .parse()
                .map(CancelResult::State)
                .map_err(|_| unexpected("cancel", &r)),
            _ => Err(unexpected("cancel", &r)),
        }
    }

    /// Stores progress or a checkpoint for the run `fence` names; false if fenced off.
    pub async fn report(&self, id: &TaskId, fence: &Fence, report: &Report) -> Result<bool> {
        let n = &self.names;
        let mut invocation = self.scripts.report.prepare_invoke();
        invocation
            .key(n.task_key(id))
            .key(n.events_channel())
            .arg(id.to_string())
            .arg(fence.worker.as_str())
            .arg(fence.attempt)
            .arg(fence.token.to_string());
        match report {
            Report::Progress { percent, message } => {
                invocation.arg("progress").arg(percent.min(&100));
                if let Some(m) = message {
                    invocation.arg("progress_message").arg(m);
                }
            }
            Report::Checkpoint(json) => {
                invocation.arg("checkpoint").arg(json);
            }
        }
        let stored: i64 = invocation.invoke_async(&mut self.conn()).await?;
        Ok(stored == 1)
    }

    /// Gives a `failed` task a new life as `pending` with fresh attempts (dead replay).
    pub async fn replay(
        &self,
        env: &Envelope,
        resolved: &Resolved,
    ) -> Result<std::result::Result<(), String>> {
        let n = &self.names;
        let reply: redis::Value = self
            .scripts
            .replay
            .key(n.task_key(&env.id))
            .key(n.stats_key(&env.task_type))
            .key(n.events_channel())
            .key(n.cancel_key(&env.id))
            .arg(env.id.to_string())
            .arg(env.task_type.as_str())
            .arg(env.payload.get())
            .arg(resolved.max_attempts)
            .arg(resolved.priority)
            .arg(env.trace_id.as_deref().unwrap_or(""))
            .arg(env.created_at.unwrap_or(0))
            .invoke_async(&mut self.conn())
            .await?;
        let r = items(reply);
        match r.first().and_then(text).as_deref() {
            Some("ok") => Ok(Ok(())),
            Some("refused") => Ok(Err(r.get(1).and_then(text).unwrap_or_default())),
            _ => Err(unexpected("replay", &r)),
        }
    }
}
