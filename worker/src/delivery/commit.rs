//! Commits a verdict to the state store (fenced), trying again while Redis restarts
//! and the delivery is still ours, then reports it in logs and metrics.

use super::ports::{Inbound, TaskStore};
use super::verdict::Verdict;
use crate::shared::Shared;
use std::time::{Duration, Instant};
use taskfleet_common::TaskState;
use taskfleet_common::envelope::Envelope;
use taskfleet_common::reconnect::ReconnectPolicy;
use taskfleet_common::store::{Commit, Fence};

/// What one commit records: whose run (the task and the run's fence) ended how.
pub(crate) struct Ending<'a> {
    pub env: &'a Envelope,
    pub fence: &'a Fence,
    pub verdict: &'a Verdict,
}

/// The commit's reply, or `None` when it could not be made within the patience (the
/// lease, at least a minute) or the delivery's connection broke meanwhile: the record
/// still says `running` and the redelivery takes the task over.
pub(crate) async fn commit<S: TaskStore, I: Inbound>(
    shared: &Shared<S>,
    inbound: &I,
    ending: Ending<'_>,
) -> Option<Commit> {
    let Ending {
        env,
        fence,
        verdict,
    } = ending;
    let outcome = verdict.outcome();
    let patience = Instant::now() + shared.config.worker.lease.max(Duration::from_secs(60));
    let mut backoff = ReconnectPolicy::CALL.start();
    loop {
        match shared.store.finish(env, fence, &outcome).await {
            Ok(c) => {
                shared.health.ok();
                return Some(c);
            }
            // A parked run's delivery is settled already: its connection does not matter.
            Err(e)
                if e.is_retryable()
                    && (inbound.parked() || inbound.is_connected())
                    && Instant::now() < patience =>
            {
                shared.health.failed();
                tracing::debug!(error = %e, "commit failed; retrying");
                tokio::time::sleep(backoff.pause()).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not commit the outcome; the task will run again");
                return None;
            }
        }
    }
}

/// Logs and counts what the commit did.
pub(crate) fn observe(commit: &Commit, verdict: &Verdict, env: &Envelope) {
    let task_type = env.task_type.to_string();
    match commit {
        Commit::Applied {
            state: TaskState::Retrying,
            ..
        } => {
            tracing::info!(error = verdict.error(), "attempt failed; retrying later");
            metrics::counter!("taskfleet_retries_total", "type" => task_type).increment(1);
        }
        Commit::Applied {
            state: TaskState::Pending,
            ..
        } => tracing::info!("interrupted; handing it back without using an attempt"),
        Commit::Applied {
            state,
            cancel_latency_ms,
            ..
        } => {
            match (state, cancel_latency_ms) {
                (TaskState::Failed, _) => {
                    tracing::warn!(error = verdict.error(), "failed for good")
                }
                (TaskState::Cancelled, Some(ms)) => {
                    metrics::histogram!("taskfleet_cancel_latency_seconds")
                        .record(*ms as f64 / 1000.0);
                    tracing::info!(cancel_latency_ms = ms, "cancelled");
                }
                _ => tracing::debug!(%state, "committed"),
            }
            metrics::counter!("taskfleet_tasks_total", "type" => task_type, "outcome" => state.as_str())
                .increment(1);
        }
        Commit::Refused { current: None } => {
            tracing::warn!("task record missing (Redis lost its data?); requeueing to recreate it")
        }
        Commit::Refused {
            current: Some(state),
        } => tracing::warn!(%state, "commit refused: this run was taken over"),
    }
}
