//! `{ns}:logs:{id}`: the log lines of a task (an exec program's stderr, a Rust
//! handler's `ctx.log`), a bounded list written in batches by the worker's log
//! writer and read by `taskfleet logs` and `GET /v1/tasks/{id}/logs`.

use super::{Result, StateStore};
use crate::ids::TaskId;

/// Lines kept per task: older ones are trimmed (`LTRIM`) as new ones arrive.
pub const MAX_LOG_LINES: usize = 1000;
/// Longest line kept, in bytes; longer ones are cut on a character boundary.
pub const MAX_LOG_LINE: usize = 2048;

impl StateStore {
    /// Appends each task's lines, trims every list to [`MAX_LOG_LINES`] and gives it
    /// the retention period, all in one pipelined round trip. Each key is written by
    /// its own commands (no script), so tasks on different shards do not conflict.
    pub async fn append_logs(&self, batch: &[(TaskId, Vec<String>)]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        let keep = MAX_LOG_LINES as isize;
        for (id, lines) in batch.iter().filter(|(_, l)| !l.is_empty()) {
            let key = self.names.task_logs_key(id);
            pipe.cmd("RPUSH").arg(&key).arg(lines).ignore();
            pipe.cmd("LTRIM").arg(&key).arg(-keep).arg(-1).ignore();
            // The record expires the retention period after it finishes, which is
            // after its last line: the list goes at about the same time.
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(self.retention_ms())
                .ignore();
        }
        let mut conn = self.conn();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// A task's log lines, oldest first (empty when it logged nothing or expired).
    pub async fn task_logs(&self, id: &TaskId) -> Result<Vec<String>> {
        let mut conn = self.conn();
        let lines: Vec<String> = redis::cmd("LRANGE")
            .arg(self.names.task_logs_key(id))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        Ok(lines)
    }
}
