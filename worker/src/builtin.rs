//! Built-in task types for demos and tests: `echo`, `sleep`, `flaky`.

use crate::handler::{Handler, TaskContext, TaskError, TaskResult};
use serde_json::{Value, json};
use std::time::Duration;

/// Result = payload.
pub struct Echo;

impl Handler for Echo {
    async fn run(&self, _ctx: TaskContext, payload: Value) -> TaskResult {
        Ok(payload)
    }
}

/// `{"ms": N}`: sleeps N ms, stopping at once when the task's token fires.
pub struct Sleep;

impl Handler for Sleep {
    async fn run(&self, ctx: TaskContext, payload: Value) -> TaskResult {
        let ms = payload.get("ms").and_then(Value::as_u64).ok_or_else(|| {
            TaskError::permanent("sleep expects {\"ms\": <non-negative integer>}")
        })?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms })),
            _ = ctx.token().cancelled() => Err(TaskError::Stopped),
        }
    }
}

/// `{"fail_times": K}`: attempts 1..=K fail, then it returns `{"attempt": n}`.
pub struct Flaky;

impl Handler for Flaky {
    async fn run(&self, ctx: TaskContext, payload: Value) -> TaskResult {
        let k = payload
            .get("fail_times")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let n = u64::from(ctx.attempt());
        if n <= k {
            Err(TaskError::retry(format!(
                "flaky: attempt {n} of the first {k} fails"
            )))
        } else {
            Ok(json!({ "attempt": n }))
        }
    }
}
