//! Runs one attempt: the handler races its timeout and its stop signal; once asked to
//! stop, it gets the grace period, after which its future is dropped (aborted).

use crate::handler::{BoxFuture, TaskResult};
use crate::inflight::{StopReason, StopSignal};
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
    let mut fut = fut;
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
