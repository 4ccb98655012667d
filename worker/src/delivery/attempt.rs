//! Runs one claimed attempt: registers it in flight (heartbeats renew its lease and
//! can stop it), hands the handler its context, and races it against its timeout.

use super::ports::TaskStore;
use crate::handler::{DynHandler, TaskContext};
use crate::runner::{AttemptEnd, run_attempt};
use crate::shared::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskfleet_common::envelope::Envelope;
use taskfleet_common::store::Fence;

pub(crate) async fn run<S: TaskStore>(
    shared: &Shared<S>,
    handler: Arc<dyn DynHandler>,
    env: &Envelope,
    fence: &Fence,
    checkpoint: Option<String>,
    timeout: Duration,
) -> AttemptEnd {
    let guard = shared.inflight.register(env.id, fence.token);
    let reporter = shared
        .store
        .reporter(env.id, fence.clone(), shared.config.result_limit);
    let ctx = TaskContext::new(
        env.id,
        env.task_type.clone(),
        fence.attempt,
        guard.signal.token().clone(),
        checkpoint.and_then(|c| serde_json::from_str(&c).ok()),
        reporter,
    );
    // The envelope parser checked that the payload is JSON.
    let payload = serde_json::from_str(env.payload.get()).unwrap_or(serde_json::Value::Null);
    let started = Instant::now();
    let end = run_attempt(
        handler.call(ctx, payload),
        &guard.signal,
        timeout,
        shared.config.worker.cancel_grace,
    )
    .await;
    drop(guard);
    metrics::histogram!("taskfleet_task_duration_seconds", "type" => env.task_type.to_string())
        .record(started.elapsed().as_secs_f64());
    end
}
