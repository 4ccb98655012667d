//! One delivery, start to end: parse → claim → run → commit (`commit.rs`) → settle.
//! The delivery is acknowledged only after its new state is committed in Redis.

use crate::commit::dead_letter;
use crate::dead::{DeadLetter, DeadReason};
use crate::handler::TaskContext;
use crate::link::{Link, Settle};
use crate::reporter::StoreReporter;
use crate::runner::run_attempt;
use crate::shared::Shared;
use lapin::message::Delivery;
use std::sync::Arc;
use std::time::Instant;
use taskfleet_common::envelope::Envelope;
use taskfleet_common::store::{Claim, DeliveryClaim};
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

/// A delivery with its parsed envelope, on the link it came from.
pub(crate) struct Task {
    pub shared: Arc<Shared>,
    pub link: Arc<Link>,
    pub delivery: Delivery,
    pub queue: String,
    pub env: Envelope,
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
        // A fresh token per delivery: every write of this run must carry it.
        let token = uuid::Uuid::new_v4().as_u64_pair().0;
        let claim = s
            .store
            .claim(
                &self.env,
                &resolved,
                &DeliveryClaim {
                    worker: &s.worker_id,
                    token,
                    redelivered: self.delivery.redelivered,
                    lease: s.config.worker.lease,
                    max_redeliveries: s.config.max_redeliveries,
                },
            )
            .await;
        let (fence, checkpoint) = match claim {
            Ok(Claim::Run { fence, checkpoint }) => (fence, checkpoint),
            Ok(Claim::Drop { reason }) => {
                tracing::debug!(
                    %reason,
                    "dropping a delivery of a finished or superseded attempt"
                );
                return self.settle(Settle::Ack).await;
            }
            Ok(Claim::Cancelled) => {
                tracing::info!("cancelled before it started; dropping");
                return self.settle(Settle::Ack).await;
            }
            Ok(Claim::Reschedule {
                next_attempt,
                delay,
            }) => {
                tracing::info!(
                    next_attempt,
                    "a failed attempt came back without its retry; scheduling the retry"
                );
                return self.publish_next(next_attempt, delay, &resolved).await;
            }
            Ok(Claim::Poison { deliveries }) => {
                let error =
                    format!("poison message: delivered {deliveries} times without finishing");
                tracing::error!(error, "dead-lettering");
                let attempt = self.env.attempt;
                return self.dead(DeadReason::Poison, &error, attempt).await;
            }
            Err(e) => {
                // Whatever Redis said (unreachable, LOADING, READONLY, ...), taking more
                // deliveries now would only bounce them: pause until it answers a PING.
                s.redis_failed();
                tracing::warn!(error = %e, "could not claim; handing the delivery back");
                return self.settle(Settle::Requeue).await;
            }
        };

        let guard = s.inflight.register(self.env.id, fence.token);
        let reporter = Arc::new(StoreReporter {
            store: s.store.clone(),
            id: self.env.id,
            fence: fence.clone(),
            checkpoint_limit: s.config.result_limit,
        });
        let checkpoint = checkpoint.and_then(|c| serde_json::from_str(&c).ok());
        let ctx = TaskContext::new(
            self.env.id,
            self.env.task_type.clone(),
            fence.attempt,
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
        metrics::histogram!("taskfleet_task_duration_seconds", "type" => self.env.task_type.to_string())
            .record(started.elapsed().as_secs_f64());
        let (outcome, dead_reason) = self.outcome(end, fence.attempt, &resolved);
        self.commit(fence, outcome, dead_reason, &resolved).await;
    }

    pub async fn settle(self, how: Settle) {
        self.link.settle(&self.delivery, how).await
    }
}
