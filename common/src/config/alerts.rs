//! `[alerts]`: webhooks told when a task fails for good or is dead-lettered
//! (docs/alerts.md). Delivery is the worker's business (`worker/src/alerts.rs`).

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `Debug` is written by hand: the signing secret never reaches a log.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// `http://` or `https://` URLs, each sent every alert (env
    /// `TASKFLEET_ALERTS__WEBHOOK=url1,url2`).
    pub webhook: Vec<String>,
    /// HMAC-SHA256 key of the `X-Taskfleet-Signature` header; required with `webhook`.
    pub secret: Option<String>,
    /// Alerts waiting to be sent, at most; more are dropped and counted
    /// (`taskfleet_alerts_dropped_total`), so a dead receiver never holds a worker back.
    pub queue: usize,
    /// Tries per alert and webhook (the first included), with doubling pauses.
    pub attempts: u32,
    /// The pause after the first failed try.
    #[serde(with = "humantime_serde")]
    pub backoff: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            webhook: Vec::new(),
            secret: None,
            queue: 1024,
            attempts: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

impl std::fmt::Debug for AlertsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertsConfig")
            .field(
                "webhook",
                &self
                    .webhook
                    .iter()
                    .map(|u| crate::redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("queue", &self.queue)
            .field("attempts", &self.attempts)
            .field("backoff", &self.backoff)
            .finish()
    }
}

impl AlertsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: String| {
            Err(ConfigError::Invalid {
                key: format!("alerts.{key}"),
                problem,
            })
        };
        for url in &self.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid(
                    "webhook",
                    format!(
                        "{:?} must start with http:// or https://",
                        crate::redact_url(url)
                    ),
                );
            }
        }
        if !self.webhook.is_empty() && self.secret.as_ref().is_none_or(|s| s.len() < 16) {
            return invalid(
                "secret",
                "required with alerts.webhook, at least 16 bytes: receivers check the X-Taskfleet-Signature HMAC with it".into(),
            );
        }
        if self.queue == 0 || self.attempts == 0 {
            return invalid(
                "queue",
                "alerts.queue and alerts.attempts must be at least 1".into(),
            );
        }
        Ok(())
    }
}
