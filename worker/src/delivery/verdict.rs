//! How an attempt ended, as the worker records it: the mapping from the runner's
//! [`AttemptEnd`] to a [`Verdict`], which names the outcome to commit and, for a
//! final failure, why the task is dead. Pure: the retry delay comes from the policy.

use crate::dead::DeadReason;
use crate::handler::TaskError;
use crate::inflight::StopReason;
use crate::reporter::{truncate_result, truncate_text};
use crate::runner::AttemptEnd;
use std::time::Duration;
use taskfleet_common::retry::RetryPolicy;
use taskfleet_common::store::Outcome;

/// Longest error text stored in a record, in bytes.
const MAX_ERROR: usize = 4096;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Completed {
        result: String,
    },
    /// A failed attempt with attempts left: the next waits `delay`.
    Retrying {
        error: String,
        delay: Duration,
    },
    /// Failed for good: out of attempts (`Exhausted`) or `Permanent`.
    Failed {
        error: String,
        reason: DeadReason,
    },
    Cancelled,
    /// Drained or its lease lost: handed back without using an attempt.
    Interrupted,
}

/// What the verdict needs to know about the task's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttemptPolicy {
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// Largest result stored, in bytes.
    pub result_limit: usize,
}

impl Verdict {
    /// How attempt `attempt` ended, under `policy`.
    pub fn of(end: AttemptEnd, attempt: u32, policy: &AttemptPolicy) -> Self {
        match end {
            AttemptEnd::Returned {
                result: Ok(value), ..
            } => Verdict::Completed {
                result: truncate_result(value.to_string(), policy.result_limit),
            },
            // A permanent failure stands even when a stop was asked for meanwhile.
            AttemptEnd::Returned {
                result: Err(TaskError::Permanent(error)),
                ..
            } => Verdict::Failed {
                error: truncate_text(error, MAX_ERROR),
                reason: DeadReason::Permanent,
            },
            AttemptEnd::Returned {
                stop: Some(reason), ..
            }
            | AttemptEnd::Aborted(reason) => Self::stopped(reason, attempt, policy),
            AttemptEnd::Returned {
                result: Err(TaskError::Retry(error)),
                stop: None,
            } => Self::failed_attempt(error, attempt, policy),
            AttemptEnd::Returned {
                result: Err(TaskError::Stopped),
                stop: None,
            } => Self::failed_attempt(
                "handler stopped without being asked to".into(),
                attempt,
                policy,
            ),
        }
    }

    fn stopped(reason: StopReason, attempt: u32, policy: &AttemptPolicy) -> Self {
        match reason {
            StopReason::Cancelled => Verdict::Cancelled,
            StopReason::Drained | StopReason::LeaseLost => Verdict::Interrupted,
            StopReason::TimedOut => Self::failed_attempt(
                format!("timed out after {:?}", policy.timeout),
                attempt,
                policy,
            ),
        }
    }

    fn failed_attempt(error: String, attempt: u32, policy: &AttemptPolicy) -> Self {
        let error = truncate_text(error, MAX_ERROR);
        if policy.retry.should_retry(attempt) {
            let delay = policy.retry.delay_after(attempt);
            Verdict::Retrying { error, delay }
        } else {
            Verdict::Failed {
                error,
                reason: DeadReason::Exhausted,
            }
        }
    }

    /// The outcome committed to the state store.
    pub fn outcome(&self) -> Outcome {
        match self {
            Verdict::Completed { result } => Outcome::Completed {
                result: result.clone(),
            },
            Verdict::Retrying { error, delay } => Outcome::Retrying {
                error: error.clone(),
                delay: *delay,
            },
            Verdict::Failed { error, .. } => Outcome::Failed {
                error: error.clone(),
            },
            Verdict::Cancelled => Outcome::Cancelled,
            Verdict::Interrupted => Outcome::Interrupted,
        }
    }

    /// Why the task is dead if this verdict ends it as `failed`.
    pub fn dead_reason(&self) -> DeadReason {
        match self {
            Verdict::Failed { reason, .. } => *reason,
            _ => DeadReason::Exhausted,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Verdict::Retrying { error, .. } | Verdict::Failed { error, .. } => Some(error),
            _ => None,
        }
    }
}
