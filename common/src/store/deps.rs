//! Dependencies between tasks as the worker and the producer use them
//! (docs/workflows.md): releasing the dependents of a finished task, forgetting the
//! ones whose publish was confirmed, reading the parents' results, counting dependents.

use super::calls::ReleaseArgs;
use super::fields::TaskField;
use super::{Result, StateStore};
use crate::ids::TaskId;
use redis::AsyncCommands;

impl StateStore {
    /// Resolves the dependents of a task that is terminal, outside its own transition
    /// (idempotent). Returns the envelopes of those released and not yet published.
    pub async fn release(&self, id: &TaskId) -> Result<Vec<String>> {
        self.call(&ReleaseArgs { id }).await
    }

    /// The dependents `children` of `parent` were published (confirmed): they are no
    /// longer released-but-unpublished, and the parent's set of them is done with.
    pub async fn forget_released(&self, parent: &TaskId, children: &[TaskId]) -> Result<()> {
        let mut pipe = redis::pipe();
        for c in children {
            pipe.hdel(self.names.task_key(c), TaskField::Envelope.as_str())
                .ignore();
        }
        pipe.del(self.names.dependents_key(parent)).ignore();
        pipe.query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    /// The `result` of each parent (absent: none stored, or the record expired), in
    /// one round trip.
    pub async fn results_of(&self, parents: &[TaskId]) -> Result<Vec<Option<String>>> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for p in parents {
            pipe.hget(self.names.task_key(p), TaskField::Result.as_str());
        }
        Ok(pipe.query_async(&mut self.conn()).await?)
    }

    /// How many tasks were enqueued `--after` this one and are not yet released.
    pub async fn dependents_count(&self, id: &TaskId) -> Result<u64> {
        Ok(self.conn().scard(self.names.dependents_key(id)).await?)
    }
}
