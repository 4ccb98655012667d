//! After a run: map how it ended to an outcome, commit it (fenced), then settle the
//! delivery — ack, requeue, schedule the next attempt, or dead-letter.

use crate::dead::{self, DeadLetter, DeadReason};
use crate::handler::TaskError;
use crate::inflight::StopReason;
use crate::link::{Link, Settle};
use crate::process::Task;
use crate::reporter::{truncate_result, truncate_text};
use crate::runner::AttemptEnd;
use lapin::message::Delivery;
use std::time::{Duration, Instant};
use taskfleet_common::TaskState;
use taskfleet_common::amqp::{Publish, delay, publish_confirmed};
use taskfleet_common::envelope::Resolved;
use taskfleet_common::retry::RetryPolicy;
use taskfleet_common::store::{Commit, Fence, Outcome};

/// Longest error text stored in a record, in bytes.
const MAX_ERROR: usize = 4096;

impl Task {
    /// Maps how the attempt ended to what is recorded, and why it would be dead.
    pub(crate) fn outcome(
        &self,
        end: AttemptEnd,
        attempt: u32,
        resolved: &Resolved,
    ) -> (Outcome, DeadReason) {
        let failed_attempt = |error: String| {
            let error = truncate_text(error, MAX_ERROR);
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
            } => {
                let error = truncate_text(error, MAX_ERROR);
                return (Outcome::Failed { error }, DeadReason::Permanent);
            }
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

    pub(crate) async fn commit(
        self,
        fence: Fence,
        outcome: Outcome,
        dead_reason: DeadReason,
        resolved: &Resolved,
    ) {
        let Some(commit) = self.commit_state(&fence, &outcome).await else {
            return self.settle(Settle::Requeue).await;
        };
        let task_type = self.env.task_type.to_string();
        match commit {
            Commit::Applied {
                state: TaskState::Retrying,
                ..
            } => {
                let Outcome::Retrying { delay, error } = &outcome else {
                    unreachable!("finish.lua answers retrying only to a retrying outcome")
                };
                tracing::info!(
                    error,
                    delay_ms = delay.as_millis() as u64,
                    "attempt failed; retrying later"
                );
                metrics::counter!("taskfleet_retries_total", "type" => task_type).increment(1);
                self.publish_next(fence.attempt + 1, *delay, resolved).await
            }
            Commit::Applied {
                state: TaskState::Failed,
                ..
            } => {
                let error = match &outcome {
                    Outcome::Failed { error } => error.clone(),
                    _ => String::new(),
                };
                tracing::warn!(error, "failed for good");
                metrics::counter!("taskfleet_tasks_total", "type" => task_type, "outcome" => "failed").increment(1);
                self.dead(dead_reason, &error, fence.attempt).await
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
                metrics::counter!("taskfleet_tasks_total", "type" => task_type, "outcome" => state.as_str()).increment(1);
                self.settle(Settle::Ack).await
            }
            Commit::Refused { current } => {
                // Requeue only when no other delivery owns the task: the reaper handed it
                // back (`pending`) or Redis lost it. Otherwise another delivery is running
                // or finished it, and requeueing this copy would take the attempt back
                // and forth between workers.
                let orphaned = matches!(current, None | Some(TaskState::Pending));
                match current {
                    None => tracing::warn!(
                        "task record missing (Redis lost its data?); requeueing to recreate it"
                    ),
                    Some(state) => {
                        tracing::warn!(%state, "commit refused: this run was taken over")
                    }
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

    /// Commits, retrying while Redis does not answer and the delivery is still ours.
    async fn commit_state(&self, fence: &Fence, outcome: &Outcome) -> Option<Commit> {
        let s = &self.shared;
        let patience = Instant::now() + s.config.worker.lease.max(Duration::from_secs(60));
        let mut pause = Duration::from_millis(100);
        loop {
            match s
                .store
                .finish(&self.env.id, &self.env.task_type, fence, outcome)
                .await
            {
                Ok(c) => {
                    s.redis_ok();
                    return Some(c);
                }
                Err(e)
                    if e.is_retryable()
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

    /// Publishes attempt `next` to wait `delay` in a broker-held delay queue (or straight
    /// to `{ns}.tasks` when nothing is left to wait); the delivery is acked only once
    /// the broker confirmed the next attempt.
    pub(crate) async fn publish_next(self, next: u32, delay: Duration, resolved: &Resolved) {
        let body = self.env.next_attempt(next).to_bytes();
        let id = self.env.id.to_string();
        let tasks_exchange = self.link.names.tasks_exchange();
        let published = async {
            let delay_ms = delay::quantize(delay);
            let (exchange, routing_key) = if delay.is_zero() {
                (tasks_exchange.as_str(), self.env.task_type.to_string())
            } else {
                let queue = delay::declare(
                    &self.link.publish,
                    &self.link.names,
                    &self.env.task_type,
                    delay_ms,
                );
                (
                    "",
                    self.link.bounded("declaring a delay queue", queue).await?,
                )
            };
            let msg = Publish {
                exchange,
                routing_key: &routing_key,
                body: &body,
                message_id: &id,
                task_type: self.env.task_type.as_str(),
                priority: resolved.priority,
                headers: self
                    .env
                    .traceparent()
                    .map(|t| ("traceparent", t))
                    .into_iter()
                    .collect(),
            };
            publish_confirmed(&self.link.publish, &msg, self.link.timeout).await
        }
        .await;
        match published {
            Ok(()) => self.settle(Settle::Ack).await,
            Err(e) => {
                // The claim turns the redelivered failed attempt into a `Reschedule`.
                tracing::warn!(error = %e, "could not schedule the next attempt; handing the delivery back");
                self.settle(Settle::Requeue).await
            }
        }
    }

    pub(crate) async fn dead(self, reason: DeadReason, error: &str, attempts: u32) {
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
        if self.link.is_connected() {
            return dead_letter(&self.link, &self.delivery, &d).await;
        }
        // The record already says `failed`, and the redelivery of this message will
        // be dropped as finished: the dead copy must go out on the live link, or
        // `dead replay` would never see this task.
        let wait = self.shared.config.network_timeout * 3;
        match self.shared.live_link(wait).await {
            Some(live) => {
                if let Err(e) = dead::publish(&live, &d).await {
                    tracing::warn!(error = %e, "could not publish the dead copy on the new connection either");
                }
            }
            None => tracing::warn!("no RabbitMQ connection to publish the dead copy on"),
        }
    }
}

pub(crate) async fn dead_letter(link: &Link, delivery: &Delivery, d: &DeadLetter<'_>) {
    match dead::publish(link, d).await {
        Ok(()) => link.settle(delivery, Settle::Ack).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not publish to the dead-letter exchange; rejecting to the queue's DLX");
            link.settle(delivery, Settle::Reject).await
        }
    }
}
