//! A task's log lines (`{ns}:logs:{id}`), as `taskfleet logs ID` and
//! `GET /v1/tasks/{id}/logs` show them.

use crate::error::{ProducerError, Result};
use taskfleet_common::{StateStore, TaskId};

/// The lines, oldest first; `NotFound` when the task has neither a record nor lines.
pub async fn task_logs(store: &StateStore, id: &TaskId) -> Result<Vec<String>> {
    let lines = store.task_logs(id).await?;
    if lines.is_empty() && store.get(id).await?.is_none() {
        return Err(ProducerError::NotFound(format!(
            "task {id} not found (records and logs of finished tasks expire after the retention period)"
        )));
    }
    Ok(lines)
}

/// `{"id": ID, "lines": [...]}`.
pub async fn task_logs_json(store: &StateStore, id: &TaskId) -> Result<serde_json::Value> {
    let lines = task_logs(store, id).await?;
    Ok(serde_json::json!({ "id": id.to_string(), "lines": lines }))
}
