//! Runs one attempt: the handler races its timeout and its stop signal; once asked to
//! stop, it gets the grace period, after which its future is dropped (aborted).

use crate::handler::{BoxFuture, TaskError, TaskResult};
use crate::inflight::{StopReason, StopSignal};
use futures_util::FutureExt;
use std::time::Duration;

#[derive(Debug)]
pub enum AttemptEnd {
    /// The handler returned (possibly after being asked to stop).
    Returned {
        result: TaskResult,
        stop: Option<StopReason>,
    },
    /// Asked to stop, it did not return within the grace period and was aborted.
    Aborted(StopReason),
}

pub async fn run_attempt(
    fut: BoxFuture<TaskResult>,
    signal: &StopSignal,
    timeout: Duration,
    grace: Duration,
) -> AttemptEnd {
    // A panicking handler is a failed attempt, not a lost delivery or a dead slot.
    let mut fut = std::panic::AssertUnwindSafe(fut).catch_unwind().map(|r| {
        r.unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".into());
            Err(TaskError::retry(format!("handler panicked: {what}")))
        })
    });
    tokio::select! {
        result = &mut fut => return AttemptEnd::Returned { result, stop: signal.reason() },
        _ = tokio::time::sleep(timeout) => signal.stop(StopReason::TimedOut),
        _ = signal.token().cancelled() => {}
    }
    let reason = signal.reason().unwrap_or(StopReason::Cancelled);
    match tokio::time::timeout(grace, &mut fut).await {
        Ok(result) => AttemptEnd::Returned {
            result,
            stop: Some(reason),
        },
        Err(_) => AttemptEnd::Aborted(reason),
    }
}
