//! Runs one claimed attempt: registers it in flight (heartbeats renew its lease and
//! can stop it), hands the handler its context, and races it against its timeout.
//! A run still going after `worker.park_after` parks its delivery (see
//! `executor::park`) and goes on undisturbed: RabbitMQ's `consumer_timeout` never
//! sees a delivery held for long, however long the task runs.

use super::executor;
use super::ports::{Inbound, TaskStore};
use crate::handler::{DynHandler, TaskContext};
use crate::inflight::InflightGuard;
use crate::runner::{AttemptEnd, run_attempt};
use crate::shared::Shared;
use crate::task_logs::LoggingReporter;
use std::sync::Arc;
use std::time::Instant;
use taskfleet_common::envelope::{Envelope, Resolved};
use taskfleet_common::reconnect::ReconnectPolicy;
use taskfleet_common::store::Fence;

/// One claimed attempt of a delivery's task.
pub(crate) struct Attempt<'a> {
    pub env: &'a Envelope,
    pub resolved: &'a Resolved,
    pub fence: &'a Fence,
    /// The last checkpoint stored by an earlier attempt, as stored (JSON text).
    pub checkpoint: Option<String>,
}

pub(crate) async fn run<S: TaskStore, I: Inbound>(
    shared: &Shared<S>,
    inbound: &I,
    handler: Arc<dyn DynHandler>,
    attempt: Attempt<'_>,
) -> (AttemptEnd, InflightGuard) {
    let Attempt {
        env,
        resolved,
        fence,
        checkpoint,
    } = attempt;
    let guard = shared.inflight.register(env.id, fence.token);
    let reporter: Arc<dyn crate::handler::Reporter> = Arc::new(LoggingReporter {
        inner: shared
            .store
            .reporter(env.id, fence.clone(), shared.config.result_limit),
        sink: shared.logs.clone(),
        id: env.id,
        attempt: fence.attempt,
    });
    let ctx = TaskContext::new(
        env.id,
        env.task_type.clone(),
        fence.attempt,
        guard.signal.token().clone(),
        checkpoint.and_then(|c| serde_json::from_str(&c).ok()),
        reporter,
    )
    .with_parent_results(super::release::parent_results(&shared.store, &env.after).await);
    // The envelope parser checked that the payload is JSON.
    let payload = serde_json::from_str(env.payload.get()).unwrap_or(serde_json::Value::Null);
    let started = Instant::now();
    observe_wait(env);
    let running = run_attempt(
        handler.call(ctx, payload),
        &guard.signal,
        resolved.timeout,
        shared.config.worker.cancel_grace,
    );
    let end = tokio::select! {
        end = running => end,
        never = park_when_long(shared, inbound, env, resolved.priority) => never,
    };
    metrics::histogram!("taskfleet_task_duration_seconds", "type" => env.task_type.to_string())
        .record(started.elapsed().as_secs_f64());
    // The caller holds the registration until the outcome is committed: heartbeats go
    // on renewing the lease, so a parked copy cannot take a finished run over while
    // its commit rides out a Redis restart.
    (end, guard)
}

/// Parks the delivery once the run has lasted `park_after`, then waits forever: the
/// attempt's own end finishes the race.
async fn park_when_long<S, I: Inbound>(
    shared: &Shared<S>,
    inbound: &I,
    env: &Envelope,
    priority: u8,
) -> AttemptEnd {
    let w = &shared.config.worker;
    tokio::time::sleep(w.park_after).await;
    // Keep trying while the delivery can still be settled: an unparked delivery would
    // trip the broker's consumer_timeout and take its channel down.
    let mut backoff = ReconnectPolicy::CALL.start();
    while inbound.is_connected() {
        match executor::park(inbound, env, w.park_check_back(), priority).await {
            Ok(()) => {
                tracing::info!(
                    check_back = ?w.park_check_back(),
                    "still running after park_after; delivery parked, the run goes on"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not park a long run's delivery; trying again");
                tokio::time::sleep(backoff.pause()).await;
            }
        }
    }
    std::future::pending().await
}

/// `taskfleet_queue_head_age_seconds{type}`: how long the task starting now waited
/// since it was created or due (this machine's clock). Queues are FIFO per priority,
/// so this is the age of the queue's head as the workers reach it: with
/// `taskfleet_queue_depth` (the API), the autoscaling signal.
fn observe_wait(env: &Envelope) {
    let Some(since) = env.run_at.or(env.created_at) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let age = now.saturating_sub(since) as f64 / 1000.0;
    metrics::gauge!("taskfleet_queue_head_age_seconds", "type" => env.task_type.to_string())
        .set(age);
}
