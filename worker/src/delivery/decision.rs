//! What happens to a delivery, decided without I/O: from the claim's reply, or from
//! how the attempt ended and what the commit did, to one [`Decision`] that the
//! executor (`executor.rs`) carries out. Every branch is unit-tested below.

use super::ports::DeadCopy;
use super::verdict::Verdict;
use crate::dead::DeadReason;
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::envelope::EnvelopeError;
use taskfleet_common::store::{Claim, Commit, Fence};

/// The worker's whole answer to RabbitMQ for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Done with it: finished, a stale or duplicate copy, or cancelled before it ran.
    Ack,
    /// Back to the queue for another delivery: nobody else owns the task now.
    Requeue,
    /// Publish the task as `attempt` to wait `delay` in the broker, then ack; if the
    /// publish is not confirmed, requeue (the claim then reschedules the copy).
    Retry { attempt: u32, delay: Duration },
    /// The run of this task is alive elsewhere (its lease holds): publish a parked
    /// copy that checks on it again after `delay`, then ack. Never counted as a
    /// delivery, so it cannot make the task poison.
    Park { delay: Duration },
    /// Scheduled and not due: publish the same copy to wait `delay` more in the
    /// delay tiers, then ack.
    Hop { delay: Duration },
    /// Publish a dead copy saying why, then ack.
    DeadLetter {
        reason: DeadReason,
        error: String,
        attempts: u32,
    },
}

/// After the claim: run the attempt, or settle the delivery without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimStep {
    Run {
        fence: Fence,
        checkpoint: Option<String>,
    },
    /// Flow control holds it (see `flow.rs`): sleep, then claim again.
    WaitHere(Duration),
    Settle(Decision),
}

/// A message that is not a task envelope: its dead copy (there is no task to record).
pub(crate) fn unparseable(error: &EnvelopeError, message_id: Option<&str>) -> DeadCopy {
    DeadCopy {
        reason: DeadReason::from(error),
        error: error.to_string(),
        attempts: 0,
        message_id: message_id.unwrap_or_default().to_owned(),
        task_type: String::new(),
    }
}

/// A task whose type this worker has no handler for.
pub(crate) fn unknown_type(task_type: &str, attempt: u32) -> Decision {
    Decision::DeadLetter {
        reason: DeadReason::UnknownType,
        error: format!("no handler for task type {task_type:?} on this worker"),
        attempts: attempt,
    }
}

/// From the claim's reply (`None`: Redis did not answer) for a delivery of `attempt`.
pub(crate) fn after_claim(claim: Option<Claim>, attempt: u32) -> ClaimStep {
    let decision = match claim {
        Some(Claim::Run { fence, checkpoint }) => return ClaimStep::Run { fence, checkpoint },
        // Finished, superseded or a duplicate publish: another copy owns the task.
        Some(Claim::Drop { .. }) | Some(Claim::Cancelled) => Decision::Ack,
        Some(Claim::Reschedule {
            next_attempt,
            delay,
        }) => Decision::Retry {
            attempt: next_attempt,
            delay,
        },
        Some(Claim::Park { delay }) => Decision::Park { delay },
        Some(Claim::Hop { delay }) => Decision::Hop { delay },
        Some(Claim::Expired) => Decision::Ack,
        // `waited` is the caller's to bound: this is the first wait's step.
        Some(Claim::Wait { reason, delay }) => {
            return match super::flow::step(reason, delay, Duration::ZERO) {
                super::flow::FlowStep::WaitHere(d) => ClaimStep::WaitHere(d),
                super::flow::FlowStep::Settle(decision) => ClaimStep::Settle(decision),
            };
        }
        Some(Claim::Poison { deliveries }) => Decision::DeadLetter {
            reason: DeadReason::Poison,
            error: format!("poison message: delivered {deliveries} times without finishing"),
            attempts: attempt,
        },
        // Nothing was recorded: leave the delivery to RabbitMQ until Redis answers.
        None => Decision::Requeue,
    };
    ClaimStep::Settle(decision)
}

/// From what the commit of `verdict` did (`None`: it could not be committed).
pub(crate) fn after_commit(commit: Option<&Commit>, verdict: &Verdict, attempt: u32) -> Decision {
    let Some(commit) = commit else {
        // The record still says `running`: the redelivery takes it over.
        return Decision::Requeue;
    };
    match commit {
        Commit::Applied { state, .. } => match (state, verdict) {
            (TaskState::Retrying, Verdict::Retrying { delay, .. }) => Decision::Retry {
                attempt: attempt + 1,
                delay: *delay,
            },
            // `retrying` in Redis without a delay to publish: hand the copy back and
            // the claim answers `reschedule` with the delay the record holds.
            (TaskState::Retrying, _) => Decision::Requeue,
            (TaskState::Failed, v) => Decision::DeadLetter {
                reason: v.dead_reason(),
                error: v.error().unwrap_or_default().to_owned(),
                attempts: attempt,
            },
            // Interrupted (drain, lease lost): no attempt used, another worker runs it.
            (TaskState::Pending, _) => Decision::Requeue,
            (_, _) => Decision::Ack,
        },
        // Requeue only when no other delivery owns the task: the reaper handed it back
        // (`pending`) or Redis lost the record. Otherwise another delivery runs or
        // finished it, and requeueing this copy would bounce the attempt between workers.
        Commit::Refused {
            current: None | Some(TaskState::Pending),
        } => Decision::Requeue,
        Commit::Refused { .. } => Decision::Ack,
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
