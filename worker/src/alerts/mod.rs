//! Alerts (docs/alerts.md): when a task fails for good or a message is dead-lettered,
//! every `alerts.webhook` gets one signed POST with the task record.
//!
//! The delivery path never waits for a receiver: `AlertSink::send` is a `try_send`
//! into a bounded channel (`alerts.queue`; full ⇒ dropped and counted in
//! `taskfleet_alerts_dropped_total`). One background task reads the record and posts,
//! a few alerts at a time, each try bounded by `network_timeout`, failed tries retried
//! with doubling pauses (`alerts.attempts`, `alerts.backoff`); alerts that never got
//! through are counted in `taskfleet_alerts_failed_total`.
//!
//! - `post`: one signed HTTP/1.1 POST over TCP or TLS
//! - `sign`: the `X-Taskfleet-Signature` HMAC

mod post;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::config::AlertsConfig;
use taskfleet_common::{StateStore, TaskId};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Alerts being posted at once; the rest wait in the queue.
const IN_FLIGHT: usize = 8;

/// What happened to a task, as the alert's `event` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlertEvent {
    /// Its last attempt failed (or it failed permanently): state `failed`.
    Failed,
    /// Sent to the dead-letter queue for another reason (unknown type, poison,
    /// malformed message).
    DeadLettered,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failed => "task.failed",
            AlertEvent::DeadLettered => "task.dead_lettered",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Alert {
    pub event: AlertEvent,
    /// The task id, or the message id of an unparseable message (may be empty).
    pub id: String,
    pub task_type: String,
    pub reason: String,
    pub error: String,
    pub attempts: u32,
}

/// Cheap-to-clone sending side; off when no webhook is configured.
#[derive(Clone, Default)]
pub(crate) struct AlertSink(Option<mpsc::Sender<Alert>>);

impl AlertSink {
    pub fn off() -> Self {
        Self(None)
    }

    /// The sink and its sender task, or `off` without webhooks.
    pub fn start(
        config: &AlertsConfig,
        timeout: Duration,
        namespace: String,
        store: StateStore,
        stop: CancellationToken,
    ) -> Self {
        let Some(secret) = config.secret.clone().filter(|_| !config.webhook.is_empty()) else {
            return Self::off();
        };
        let (tx, rx) = mpsc::channel(config.queue);
        // Registered at 0, so dashboards show a flat line rather than no data.
        for name in [
            "taskfleet_alerts_sent_total",
            "taskfleet_alerts_failed_total",
            "taskfleet_alerts_dropped_total",
        ] {
            metrics::counter!(name).increment(0);
        }
        let sender = Sender {
            webhooks: config.webhook.clone(),
            secret,
            attempts: config.attempts,
            backoff: config.backoff,
            timeout,
            namespace,
            store,
        };
        tokio::spawn(send_loop(Arc::new(sender), rx, stop));
        Self(Some(tx))
    }

    /// Queues an alert; never waits.
    pub fn send(&self, alert: Alert) {
        let Some(tx) = &self.0 else { return };
        if tx.try_send(alert).is_err() {
            metrics::counter!("taskfleet_alerts_dropped_total").increment(1);
            tracing::warn!("alert queue full (alerts.queue); alert dropped");
        }
    }
}

struct Sender {
    webhooks: Vec<String>,
    secret: String,
    attempts: u32,
    backoff: Duration,
    timeout: Duration,
    namespace: String,
    store: StateStore,
}

async fn send_loop(sender: Arc<Sender>, mut rx: mpsc::Receiver<Alert>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let alert = tokio::select! {
            a = rx.recv() => a,
            _ = stop.cancelled() => None,
        };
        let Some(alert) = alert else { return };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let sender = sender.clone();
        tokio::spawn(async move {
            sender.deliver(&alert).await;
            drop(slot);
        });
    }
}

impl Sender {
    async fn deliver(&self, alert: &Alert) {
        let body = self.body(alert).await.to_string();
        let delivery = uuid::Uuid::new_v4().to_string();
        for url in &self.webhooks {
            let mut pause = self.backoff;
            let mut sent = false;
            for attempt in 1..=self.attempts {
                let signature = sign::signature(self.secret.as_bytes(), now_ms(), &body);
                let req = post::Request {
                    url,
                    body: &body,
                    signature: &signature,
                    delivery: &delivery,
                    timeout: self.timeout,
                };
                match post::post(&req).await {
                    Ok(()) => {
                        sent = true;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(url = %taskfleet_common::redact_url(url), attempt, error = %e, "alert not delivered")
                    }
                }
                if attempt < self.attempts {
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
            }
            if sent {
                metrics::counter!("taskfleet_alerts_sent_total").increment(1);
            } else {
                metrics::counter!("taskfleet_alerts_failed_total").increment(1);
                tracing::warn!(url = %taskfleet_common::redact_url(url), id = %alert.id, "alert not delivered after every try; given up");
            }
        }
    }

    /// The alert's JSON: what happened, and the task record as `taskfleet status --json`
    /// shows it (`null` when there is none: an unparseable message, a lost record).
    async fn body(&self, alert: &Alert) -> serde_json::Value {
        let record = match alert.id.parse::<TaskId>() {
            Ok(id) => match self.store.get(&id).await {
                Ok(r) => r.map(|r| r.to_json()),
                Err(e) => {
                    tracing::debug!(error = %e, "alert without the record: Redis did not answer");
                    None
                }
            },
            Err(_) => None,
        };
        serde_json::json!({
            "event": alert.event.as_str(),
            "namespace": self.namespace,
            "id": alert.id,
            "type": alert.task_type,
            "reason": alert.reason,
            "error": alert.error,
            "attempts": alert.attempts,
            "task": record,
        })
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
