//! One delivery, start to end: parse → claim → run → commit → settle.
//! The delivery is acknowledged only after its new state is committed in Redis.

use crate::dead::{self, DeadLetter, DeadReason};
use crate::handler::{BoxFuture, Reporter, TaskContext, TaskError};
use crate::inflight::StopReason;
use crate::link::{Link, Settle};
use crate::runner::{AttemptEnd, run_attempt};
use crate::shared::Shared;
use lapin::message::Delivery;
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskfleet_common::amqp::{Publish, delay, publish_confirmed};
use taskfleet_common::envelope::{Envelope, Resolved};
use taskfleet_common::retry::RetryPolicy;
use taskfleet_common::store::{Claim, Commit, Outcome, Report};
use taskfleet_common::{StateStore, TaskId, TaskState, WorkerId};
use tracing::Instrument;

pub(crate) async fn process(
    shared: Arc<Shared>,
    link: Arc<Link>,
    delivery: Delivery,
    queue: String,
) {
    let env = match Envelope::parse(&delivery.data, shared.config.payload_limit) {
        Ok(env) => env,
        Err(e) => {
            tracing::warn!(queue, error = %e, "malformed message; dead-lettering it");
            metrics::counter!("taskfleet_malformed_total").increment(1);
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            let d = DeadLetter {
                body: &delivery.data,
                message_id: &id,
                task_type: "",
                queue: &queue,
                reason: DeadReason::from(&e),
                error: &e.to_string(),
                attempts: 0,
            };
            return dead_letter(&link, &delivery, &d).await;
        }
    };
    let span =
        tracing::info_span!("task", id = %env.id, r#type = %env.task_type, attempt = env.attempt);
    Task {
        shared,
        link,
        delivery,
        queue,
        env,
    }
    .run()
    .instrument(span)
    .await
}

struct Task {
    shared: Arc<Shared>,
    link: Arc<Link>,
    delivery: Delivery,
    queue: String,
    env: Envelope,
}

impl Task {
    async fn run(self) {
        let s = &self.shared;
        let Some(handler) = s.handlers.get(&self.env.task_type).cloned() else {
            let error = format!(
                "no handler for task type {:?} on this worker",
                self.env.task_type.as_str()
            );
            tracing::warn!(error, "dead-lettering");
            let attempt = self.env.attempt;
            return self.dead(DeadReason::UnknownType, &error, attempt).await;
        };
        let resolved = self.env.resolve(&s.config);
        let claim = s
            .store
            .claim(
                &self.env,
                &resolved,
                &s.worker_id,
                s.config.worker.lease,
                s.config.max_redeliveries,
                self.delivery.redelivered,
            )
            .await;
        let (attempt, checkpoint) = match claim {
            Ok(Claim::Run {
                attempt,
                checkpoint,
            }) => (attempt, checkpoint),
            Ok(Claim::Drop { reason }) => {
                tracing::debug!(
                    reason,
                    "dropping a delivery of a finished or superseded attempt"
                );
                return self.settle(Settle::Ack).await;
            }
            Ok(Claim::Cancelled) => {
                tracing::info!("cancelled before it started; dropping");
                return self.settle(Settle::Ack).await;
            }
            Ok(Claim::Poison { deliveries }) => {
                let error =
                    format!("poison message: delivered {deliveries} times without finishing");
                tracing::error!(error, "dead-lettering");
                let attempt = self.env.attempt;
                return self.dead(DeadReason::Poison, &error, attempt).await;
            }
            Err(e) => {
                if e.is_connection_error() {
                    s.redis_failed();
                }
                tracing::warn!(error = %e, "could not claim; handing the delivery back");
                return self.settle(Settle::Requeue).await;
            }
        };

        let guard = s.inflight.register(self.env.id);
        let reporter = Arc::new(StoreReporter {
            store: s.store.clone(),
            id: self.env.id,
            worker: s.worker_id.clone(),
            attempt,
        });
        let checkpoint = checkpoint.and_then(|c| serde_json::from_str(&c).ok());
        let ctx = TaskContext::new(
            self.env.id,
            self.env.task_type.clone(),
            attempt,
            guard.signal.token().clone(),
            checkpoint,
            reporter,
        );
        let payload =
            serde_json::from_str(self.env.payload.get()).unwrap_or(serde_json::Value::Null);
        let started = Instant::now();
        let end = run_attempt(
            handler.call(ctx, payload),
            &guard.signal,
            resolved.timeout,
            s.config.worker.cancel_grace,
        )
        .await;
        drop(guard);
        let (outcome, dead_reason) = self.outcome(end, attempt, &resolved);
        metrics::histogram!("taskfleet_task_duration_seconds", "type" => self.env.task_type.to_string())
            .record(started.elapsed().as_secs_f64());
        self.commit(attempt, outcome, dead_reason).await;
    }

    /// Maps how the attempt ended to what is recorded, and why it would be dead.
    fn outcome(&self, end: AttemptEnd, attempt: u32, resolved: &Resolved) -> (Outcome, DeadReason) {
        let failed_attempt = |error: String| {
            let policy = RetryPolicy {
                max_attempts: resolved.max_attempts,
                backoff: self
                    .shared
                    .config
                    .type_settings(&self.env.task_type)
                    .backoff,
            };
            if policy.should_retry(attempt) {
                let delay = Duration::from_millis(delay::quantize(policy.delay_after(attempt)));
                Outcome::Retrying { error, delay }
            } else {
                Outcome::Failed { error }
            }
        };
        let stopped = |reason: StopReason| match reason {
            StopReason::Cancelled => Outcome::Cancelled,
            StopReason::Drained | StopReason::LeaseLost => Outcome::Interrupted,
            StopReason::TimedOut => {
                failed_attempt(format!("timed out after {:?}", resolved.timeout))
            }
        };
        let outcome = match end {
            AttemptEnd::Returned {
                result: Ok(value), ..
            } => Outcome::Completed {
                result: truncate_result(value.to_string(), self.shared.config.result_limit),
            },
            AttemptEnd::Returned {
                result: Err(TaskError::Permanent(error)),
                ..
            } => return (Outcome::Failed { error }, DeadReason::Permanent),
            AttemptEnd::Returned {
                stop: Some(reason), ..
            } => stopped(reason),
            AttemptEnd::Returned {
                result: Err(TaskError::Retry(error)),
                ..
            } => failed_attempt(error),
            AttemptEnd::Returned {
                result: Err(TaskError::Stopped),
                stop: None,
            } => failed_attempt("handler stopped without being asked to".into()),
            AttemptEnd::Aborted(reason) => stopped(reason),
        };
        (outcome, DeadReason::Exhausted)
    }

    async fn commit(self, attempt: u32, outcome: Outcome, dead_reason: DeadReason) {
        let Some(commit) = self.commit_state(attempt, &outcome).await else {
            return self.settle(Settle::Requeue).await;
        };
        match commit {
            Commit::Applied {
                state: TaskState::Retrying,
                ..
            } => self.publish_retry(attempt, &outcome).await,
            Commit::Applied {
                state: TaskState::Failed,
                ..
            } => {
                let error = match &outcome {
                    Outcome::Failed { error } => error.clone(),
                    _ => String::new(),
                };
                tracing::warn!(error, "failed for good");
                metrics::counter!("taskfleet_tasks_total", "type" => self.env.task_type.to_string(), "outcome" => "failed").increment(1);
                self.dead(dead_reason, &error, attempt).await
            }
            Commit::Applied {
                state: TaskState::Pending,
                ..
            } => {
                tracing::info!("interrupted; handing it back without using an attempt");
                self.settle(Settle::Requeue).await
            }
            Commit::Applied {
                state,
                cancel_latency_ms,
            } => {
                if let Some(ms) = cancel_latency_ms.filter(|_| state == TaskState::Cancelled) {
                    metrics::histogram!("taskfleet_cancel_latency_seconds")
                        .record(ms as f64 / 1000.0);
                    tracing::info!(cancel_latency_ms = ms, "cancelled");
                } else {
                    tracing::debug!(%state, "committed");
                }
                metrics::counter!("taskfleet_tasks_total", "type" => self.env.task_type.to_string(), "outcome" => state.as_str()).increment(1);
                self.settle(Settle::Ack).await
            }
            Commit::Refused { current } => {
                // Requeue only when no other delivery owns the task: the reaper handed it
                // back (`pending`) or Redis lost it. Otherwise another delivery is running
                // or finished it, and requeueing this copy would take the attempt back
                // and forth between workers.
                let orphaned = current == "missing" || current == TaskState::Pending.as_str();
                if current == "missing" {
                    tracing::warn!(
                        "task record missing (Redis lost its data?); requeueing to recreate it"
                    );
                } else {
                    tracing::warn!(current, "commit refused: this attempt was taken over");
                }
                self.settle(if orphaned {
                    Settle::Requeue
                } else {
                    Settle::Ack
                })
                .await
            }
        }
    }

    /// Commits, retrying while Redis is unreachable and the delivery is still ours.
    async fn commit_state(&self, attempt: u32, outcome: &Outcome) -> Option<Commit> {
        let s = &self.shared;
        let patience = Instant::now() + s.config.worker.lease.max(Duration::from_secs(60));
        let mut pause = Duration::from_millis(100);
        loop {
            match s
                .store
                .finish(
                    &self.env.id,
                    &self.env.task_type,
                    &s.worker_id,
                    attempt,
                    outcome,
                )
                .await
            {
                Ok(c) => {
                    s.redis_ok();
                    return Some(c);
                }
                Err(e)
                    if e.is_connection_error()
                        && self.link.is_connected()
                        && Instant::now() < patience =>
                {
                    s.redis_failed();
                    tracing::debug!(error = %e, "commit failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not commit the outcome; the task will run again");
                    return None;
                }
            }
        }
    }

    /// The retry waits in a broker-held delay queue; the failed delivery is acked
    /// only once the next attempt is confirmed there.
    async fn publish_retry(self, attempt: u32, outcome: &Outcome) {
        let Outcome::Retrying { delay, error } = outcome else {
            return self.settle(Settle::Requeue).await;
        };
        let delay_ms = delay.as_millis() as u64;
        let next = self.env.next_attempt(attempt + 1);
        let body = next.to_bytes();
        let id = self.env.id.to_string();
        let published = async {
            let queue = delay::declare(
                &self.link.publish,
                &self.link.names,
                &self.env.task_type,
                delay_ms,
            )
            .await?;
            let msg = Publish {
                exchange: "",
                routing_key: &queue,
                body: &body,
                message_id: &id,
                task_type: self.env.task_type.as_str(),
                priority: self.env.priority.unwrap_or(0),
                headers: Vec::new(),
            };
            publish_confirmed(&self.link.publish, &msg, self.link.timeout).await
        }
        .await;
        match published {
            Ok(()) => {
                tracing::info!(error, delay_ms, "attempt failed; retrying later");
                metrics::counter!("taskfleet_retries_total", "type" => self.env.task_type.to_string()).increment(1);
                self.settle(Settle::Ack).await
            }
            Err(e) => {
                // The claim treats the redelivered failed attempt as the next one.
                tracing::warn!(error = %e, "could not schedule the retry; handing the delivery back");
                self.settle(Settle::Requeue).await
            }
        }
    }

    async fn dead(self, reason: DeadReason, error: &str, attempts: u32) {
        let id = self.env.id.to_string();
        let d = DeadLetter {
            body: &self.delivery.data,
            message_id: &id,
            task_type: self.env.task_type.as_str(),
            queue: &self.queue,
            reason,
            error,
            attempts,
        };
        dead_letter(&self.link, &self.delivery, &d).await
    }

    async fn settle(self, how: Settle) {
        self.link.settle(&self.delivery, how).await
    }
}

async fn dead_letter(link: &Link, delivery: &Delivery, d: &DeadLetter<'_>) {
    match dead::publish(link, d).await {
        Ok(()) => link.settle(delivery, Settle::Ack).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not publish to the dead-letter exchange; rejecting to the queue's DLX");
            link.settle(delivery, Settle::Reject).await
        }
    }
}

/// Results over the limit are stored as a JSON string with a marker, never longer than
/// `limit` once encoded (escaping can grow the kept text, so the cut shrinks until it fits).
fn truncate_result(json: String, limit: usize) -> String {
    if json.len() <= limit {
        return json;
    }
    let mut cut = limit.saturating_sub(64);
    loop {
        while !json.is_char_boundary(cut) {
            cut -= 1;
        }
        let marked = format!(
            "{}…[truncated: {} of {} bytes kept]",
            &json[..cut],
            cut,
            json.len()
        );
        let encoded = serde_json::Value::String(marked).to_string();
        if encoded.len() <= limit || cut == 0 {
            return encoded;
        }
        cut = cut.saturating_sub((encoded.len() - limit).max(1));
    }
}

/// Progress and checkpoints go to the store, fenced on this worker and attempt.
struct StoreReporter {
    store: StateStore,
    id: TaskId,
    worker: WorkerId,
    attempt: u32,
}

impl StoreReporter {
    fn send(&self, report: Report) -> BoxFuture<bool> {
        let store = self.store.clone();
        let (id, worker, attempt) = (self.id, self.worker.clone(), self.attempt);
        Box::pin(async move {
            match store.report(&id, &worker, attempt, &report).await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(error = %e, "could not store progress");
                    false
                }
            }
        })
    }
}

impl Reporter for StoreReporter {
    fn progress(&self, percent: u8, message: Option<String>) -> BoxFuture<bool> {
        self.send(Report::Progress { percent, message })
    }

    fn checkpoint(&self, value: String) -> BoxFuture<bool> {
        self.send(Report::Checkpoint(value))
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_result;

    #[test]
    fn long_results_are_truncated_with_a_marker() {
        let long = format!("\"{}\"", "é".repeat(1000));
        let t = truncate_result(long.clone(), 200);
        assert!(t.len() <= 200, "{}", t.len());
        let quotes = serde_json::json!(vec!["a"; 500]).to_string();
        assert!(truncate_result(quotes, 1000).len() <= 1000);
        assert!(t.contains("truncated"), "{t}");
        assert!(serde_json::from_str::<serde_json::Value>(&t).is_ok());
        assert_eq!(truncate_result("42".into(), 200), "42");
    }
}
