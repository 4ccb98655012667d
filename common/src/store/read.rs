//! Records and counters as users see them (`status`, `stats`).

use super::fields::{FieldKind, TaskField};
use super::reply::{items, strings};
use super::{Result, StateStore};
use crate::ids::{TaskId, TaskType};
use crate::state::TaskState;
use redis::AsyncCommands;
use serde::Serialize;
use std::collections::BTreeMap;

/// The `{ns}:task:{id}` hash, fields as stored (strings), in a stable order.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub fields: BTreeMap<String, String>,
}

impl TaskRecord {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    pub fn field(&self, field: TaskField) -> Option<&str> {
        self.get(field.as_str())
    }

    pub fn state(&self) -> Option<TaskState> {
        self.field(TaskField::State).and_then(|s| s.parse().ok())
    }

    /// The last attempt started; 0 before the first.
    pub fn attempt(&self) -> u32 {
        self.field(TaskField::Attempt)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The record as JSON: `payload`, `result` and `checkpoint` as JSON values,
    /// numbers as numbers, so `--json` output is directly usable.
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for (k, v) in &self.fields {
            let as_string = || serde_json::Value::String(v.clone());
            let value = match TaskField::from_name(k).map(TaskField::kind) {
                Some(FieldKind::Json) => serde_json::from_str(v).unwrap_or_else(|_| as_string()),
                Some(FieldKind::Number) => v
                    .parse::<u64>()
                    .map(serde_json::Value::from)
                    .unwrap_or_else(|_| as_string()),
                Some(FieldKind::Text) | None => as_string(),
            };
            out.insert(k.clone(), value);
        }
        serde_json::Value::Object(out)
    }
}

/// The counters of one type (`{ns}:stats:{type}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeStats {
    pub scheduled: i64,
    pub waiting: i64,
    pub pending: i64,
    pub running: i64,
    pub retrying: i64,
    pub cancelling: i64,
    pub enqueued: i64,
    pub completed: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub retried: i64,
}

impl TypeStats {
    fn from_pairs(map: &BTreeMap<String, i64>) -> Self {
        let get = |k: &str| map.get(k).copied().unwrap_or(0);
        Self {
            scheduled: get("scheduled"),
            waiting: get("waiting"),
            pending: get("pending"),
            running: get("running"),
            retrying: get("retrying"),
            cancelling: get("cancelling"),
            enqueued: get("enqueued"),
            completed: get("completed"),
            failed: get("failed"),
            cancelled: get("cancelled"),
            retried: get("retried"),
        }
    }

    /// Tasks not yet in a terminal state.
    pub fn live(&self) -> i64 {
        self.scheduled
            + self.waiting
            + self.pending
            + self.running
            + self.retrying
            + self.cancelling
    }
}

impl StateStore {
    pub async fn get(&self, id: &TaskId) -> Result<Option<TaskRecord>> {
        let fields: BTreeMap<String, String> = self.conn().hgetall(self.names.task_key(id)).await?;
        Ok((!fields.is_empty()).then_some(TaskRecord { fields }))
    }

    pub(crate) async fn task_type_of(&self, id: &TaskId) -> Result<Option<TaskType>> {
        let t: Option<String> = self
            .conn()
            .hget(self.names.task_key(id), TaskField::Type.as_str())
            .await?;
        Ok(t.and_then(|t| t.parse().ok()))
    }

    pub async fn types(&self) -> Result<Vec<TaskType>> {
        let v: redis::Value = self.conn().smembers(self.names.types_key()).await?;
        let mut types: Vec<TaskType> = strings(v).iter().filter_map(|t| t.parse().ok()).collect();
        types.sort();
        Ok(types)
    }

    pub async fn type_stats(&self, task_type: &TaskType) -> Result<TypeStats> {
        let map: BTreeMap<String, i64> =
            self.conn().hgetall(self.names.stats_key(task_type)).await?;
        Ok(TypeStats::from_pairs(&map))
    }

    /// Counters of every type seen, in one pipelined round trip.
    pub async fn stats(&self) -> Result<BTreeMap<TaskType, TypeStats>> {
        let types = self.types().await?;
        if types.is_empty() {
            // An empty pipeline is an error in redis-rs ("empty command"): a namespace
            // with nothing in it yet has no counters, which is not an error.
            return Ok(BTreeMap::new());
        }
        let mut pipe = redis::pipe();
        for t in &types {
            pipe.hgetall(self.names.stats_key(t));
        }
        let replies: Vec<BTreeMap<String, i64>> = pipe.query_async(&mut self.conn()).await?;
        Ok(types
            .into_iter()
            .zip(replies.iter().map(TypeStats::from_pairs))
            .collect())
    }

    /// Ids of tasks with a lease in `{ns}:running`.
    pub async fn running_ids(&self) -> Result<Vec<String>> {
        let v: redis::Value = self.conn().zrange(self.names.running_key(), 0, -1).await?;
        Ok(strings(v))
    }

    /// Is the cancellation flag set for these ids? (One round trip.)
    pub async fn cancel_flags(&self, ids: &[TaskId]) -> Result<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.exists(self.names.cancel_key(id));
        }
        let v: redis::Value = pipe.query_async(&mut self.conn()).await?;
        Ok(items(v)
            .iter()
            .map(|x| matches!(x, redis::Value::Int(1)))
            .collect())
    }
}
