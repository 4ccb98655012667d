//! Whether Redis is answering, as this worker last saw it. While it is not, the
//! consumer takes no deliveries (it could not record them) instead of bouncing them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct RedisHealth {
    down: AtomicBool,
    back: Notify,
}

impl RedisHealth {
    /// A Redis call failed for connection reasons.
    pub fn failed(&self) {
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!("Redis is not answering; pausing deliveries until it is back");
        }
    }

    pub fn ok(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; resuming deliveries");
            self.back.notify_waiters();
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Waits until Redis answers, calling `ping` every `probe` (heartbeats and
    /// commits also clear it).
    pub async fn wait_until_up<F, Fut, E>(&self, probe: Duration, ping: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        while self.is_down() {
            tokio::select! {
                _ = self.back.notified() => {}
                _ = tokio::time::sleep(probe) => {
                    if ping().await.is_ok() {
                        self.ok();
                    }
                }
            }
        }
    }
}
