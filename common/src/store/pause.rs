//! Pausing a type fleet-wide (docs/flow-control.md): `paused` in `{ns}:type:{type}`,
//! which every claim of the type reads atomically (`flow.lua`), so no new task of a
//! paused type starts on any worker from the moment the write returns; the flag
//! lives in Redis, so it survives worker restarts.

use super::{Result, StateStore};
use crate::ids::TaskType;

impl StateStore {
    /// Sets (`true`) or clears the type's `paused` flag; the type joins `{ns}:types`
    /// so `taskfleet types` lists it even before its first task.
    pub async fn set_paused(&self, task_type: &TaskType, paused: bool) -> Result<()> {
        let key = self.names.type_key(task_type);
        let mut pipe = redis::pipe();
        if paused {
            pipe.hset(&key, "paused", "1").ignore();
        } else {
            pipe.hdel(&key, "paused").ignore();
        }
        // Two keys, two commands: each touches one key (Redis Cluster).
        pipe.sadd(self.names.types_key(), task_type.as_str())
            .ignore();
        let () = pipe.query_async(&mut self.conn()).await?;
        Ok(())
    }
}
