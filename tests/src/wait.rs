//! Waiting by polling with a deadline, never a fixed sleep.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long to wait between two checks.
const POLL: Duration = Duration::from_millis(25);

/// Polls `check` until it returns `Some`, or gives `None` after `deadline`.
pub async fn poll_until<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(deadline, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for: {what}"))
}
