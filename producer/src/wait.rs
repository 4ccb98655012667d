//! Waiting for a task to finish (`taskfleet wait`, `enqueue --wait`,
//! `GET /v1/tasks/{id}?wait=`, `Producer::wait`), driven by `{ns}:events`: subscribe
//! first, then read the record, then wait for a terminal event of that id. A
//! transition between the subscription and the read is in the record; one after the
//! read arrives as an event; none is missed and nothing polls.

use crate::error::{ProducerError, Result};
use futures_util::StreamExt;
use std::time::Duration;
use taskfleet_common::store::TaskRecord;
use taskfleet_common::{StateStore, TaskId, TaskState};
use tokio::time::Instant;

/// Longest wait accepted (`--timeout`, `?wait=`): a caller that wants longer waits again.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// The record once it is terminal; `TimedOut` after `timeout`, `NotFound` without one.
pub async fn wait(store: &StateStore, id: &TaskId, timeout: Duration) -> Result<TaskRecord> {
    let deadline = Instant::now() + timeout.min(MAX_WAIT);
    loop {
        let mut pubsub = store.subscribe(&store.names().events_channel()).await?;
        let record = crate::producer::status(store, id).await?;
        if record.state().is_some_and(TaskState::is_terminal) {
            return Ok(record);
        }
        let mut messages = pubsub.on_message();
        loop {
            let next = tokio::time::timeout_at(deadline, messages.next()).await;
            let msg = match next {
                Err(_) => {
                    let state = record.state().map(|s| s.to_string()).unwrap_or_default();
                    return Err(ProducerError::TimedOut(format!(
                        "task {id} is still {state} after {}; it goes on (wait again, or cancel it)",
                        humantime::format_duration(timeout)
                    )));
                }
                // The subscription broke (Redis restarted): subscribe and read again.
                Ok(None) => break,
                Ok(Some(m)) => m,
            };
            if ends(msg.get_payload_bytes(), id) {
                return crate::producer::status(store, id).await;
            }
        }
    }
}

/// Whether an event says that task `id` reached a terminal state.
fn ends(event: &[u8], id: &TaskId) -> bool {
    #[derive(serde::Deserialize)]
    struct Event {
        id: Option<String>,
        to: Option<String>,
    }
    let Ok(e) = serde_json::from_slice::<Event>(event) else {
        return false;
    };
    e.id.as_deref() == Some(id.to_string().as_str())
        && e.to
            .and_then(|t| t.parse::<TaskState>().ok())
            .is_some_and(TaskState::is_terminal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_terminal_event_of_the_task_ends_the_wait() {
        let id = TaskId::new();
        let other = TaskId::new();
        let ev = |id: &TaskId, to: &str| format!(r#"{{"id":"{id}","type":"echo","to":"{to}"}}"#);
        assert!(ends(ev(&id, "completed").as_bytes(), &id));
        assert!(ends(ev(&id, "cancelled").as_bytes(), &id));
        assert!(!ends(ev(&id, "running").as_bytes(), &id));
        assert!(!ends(ev(&other, "failed").as_bytes(), &id));
        assert!(!ends(br#"{"id":"x","progress":5}"#, &id));
    }
}
