//! Where a handler's progress and checkpoints go: the state store, fenced on the run,
//! and bounded so a handler cannot flood Redis or the events channel.

use crate::handler::{BoxFuture, Reporter};
use taskfleet_common::store::{Fence, Report};
use taskfleet_common::{StateStore, TaskId};

/// Longest progress message kept, in bytes.
const MAX_PROGRESS_MESSAGE: usize = 1024;

pub(crate) struct StoreReporter {
    pub store: StateStore,
    pub id: TaskId,
    pub fence: Fence,
    /// Largest checkpoint accepted, in bytes (the result limit).
    pub checkpoint_limit: usize,
}

impl StoreReporter {
    fn send(&self, report: Report) -> BoxFuture<bool> {
        let store = self.store.clone();
        let (id, fence) = (self.id, self.fence.clone());
        Box::pin(async move {
            match store.report(&id, &fence, &report).await {
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
        let message = message.map(|m| truncate_text(m, MAX_PROGRESS_MESSAGE));
        self.send(Report::Progress { percent, message })
    }

    fn checkpoint(&self, value: String) -> BoxFuture<bool> {
        if value.len() > self.checkpoint_limit {
            tracing::warn!(
                size = value.len(),
                limit = self.checkpoint_limit,
                "checkpoint over the result limit; not stored"
            );
            return Box::pin(std::future::ready(false));
        }
        self.send(Report::Checkpoint(value))
    }
}

/// Cuts `text` to at most `limit` bytes on a character boundary.
pub(crate) fn truncate_text(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// Results over the limit are stored as a JSON string with a marker, never longer than
/// `limit` once encoded (escaping can grow the kept text, so the cut shrinks until it fits).
pub(crate) fn truncate_result(json: String, limit: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::{truncate_result, truncate_text};

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

    #[test]
    fn text_is_cut_on_a_character_boundary() {
        assert_eq!(truncate_text("ééé".into(), 3), "é");
        assert_eq!(truncate_text("abc".into(), 10), "abc");
    }
}
