//! `{ns}:type:{type}`: the effective settings of a task type as the workers serving
//! it declared them (docs/redis-keys.md). Workers write it when they start
//! (`declare`) and leave its `workers` list when they stop (`forget`); producers read
//! it for the AMQP priority and the "no live worker serves it" warning; `taskfleet
//! types` and `GET /v1/types` show it.
//!
//! Fields: `max_attempts timeout_ms priority` (the settings), `declared_by` and
//! `declared_at` (the worker that wrote them last, and when), `workers` (the ids of
//! the workers that declared the type, comma-separated; an id stays until its worker
//! deregisters or a starting worker finds its registry entry expired, so readers
//! check each against `{ns}:worker:{id}`), `paused` (`1` while the type is paused;
//! written by pause/resume, never by a declaration).

use super::calls::{DeclareArgs, ForgetArgs, worker_list};
use super::{Result, StateStore};
use crate::config::TypeSettings;
use crate::ids::{TaskType, WorkerId};
use serde::Serialize;
use std::collections::BTreeMap;

/// The settings of a type that a worker declares (and that govern its runs there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeclaredSettings {
    pub max_attempts: u32,
    pub timeout_ms: u64,
    pub priority: u8,
}

impl From<&TypeSettings> for DeclaredSettings {
    fn from(s: &TypeSettings) -> Self {
        Self {
            max_attempts: s.max_attempts,
            timeout_ms: u64::try_from(s.timeout.as_millis()).unwrap_or(u64::MAX),
            priority: s.priority,
        }
    }
}

impl std::fmt::Display for DeclaredSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max_attempts={} timeout_ms={} priority={}",
            self.max_attempts, self.timeout_ms, self.priority
        )
    }
}

/// What a declaration replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// The worker that declared the type before, with its settings.
    pub previous: Option<(String, DeclaredSettings)>,
    /// The `workers` list after the declaration (this worker included).
    pub workers: Vec<String>,
}

/// The hash of one type as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeDeclaration {
    /// `None` until a worker serving the type started.
    pub settings: Option<DeclaredSettings>,
    pub declared_by: Option<String>,
    pub declared_at: Option<u64>,
    /// Declared serving workers; some may be gone (check them against the registry).
    pub workers: Vec<String>,
    pub paused: bool,
    /// The fleet's flow limits (docs/flow-control.md), as declared.
    pub limits: FlowView,
    /// Deliveries held by flow control so far, by cause.
    pub waits: FlowWaits,
}

/// A type's flow limits as `taskfleet types` shows them (`None`: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowView {
    pub rate_limit: Option<String>,
    pub max_running: Option<u32>,
    pub group_max_running: Option<u32>,
}

/// Counters of deliveries that flow control held (`waits_*` in the type's hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowWaits {
    pub paused: u64,
    pub rate_limit: u64,
    pub cap: u64,
}

impl TypeDeclaration {
    fn from_fields(f: &BTreeMap<String, String>) -> Self {
        let num = |k: &str| f.get(k).and_then(|v| v.parse::<u64>().ok());
        let settings =
            match (num("max_attempts"), num("timeout_ms"), num("priority")) {
                (Some(m), Some(t), Some(p)) => u32::try_from(m).ok().zip(u8::try_from(p).ok()).map(
                    |(max_attempts, priority)| DeclaredSettings {
                        max_attempts,
                        timeout_ms: t,
                        priority,
                    },
                ),
                _ => None,
            };
        Self {
            settings,
            declared_by: f.get("declared_by").cloned(),
            declared_at: num("declared_at"),
            workers: f.get("workers").map(|w| worker_list(w)).unwrap_or_default(),
            paused: f
                .get("paused")
                .is_some_and(|p| p == "1" || p.eq_ignore_ascii_case("true")),
            limits: {
                let l = super::flow_settings::flow_of(f);
                FlowView {
                    rate_limit: l.rate.map(|r| r.to_string()),
                    max_running: l.max_running,
                    group_max_running: l.group_max_running,
                }
            },
            waits: FlowWaits {
                paused: num("waits_paused").unwrap_or(0),
                rate_limit: num("waits_rate").unwrap_or(0),
                cap: num("waits_cap").unwrap_or(0),
            },
        }
    }
}

impl StateStore {
    /// Declares this worker's settings of `task_type`; returns what they replaced.
    pub async fn declare_type(
        &self,
        worker: &WorkerId,
        task_type: &TaskType,
        settings: &DeclaredSettings,
    ) -> Result<Declaration> {
        self.call(&DeclareArgs {
            worker,
            task_type,
            settings,
        })
        .await
    }

    /// Removes `workers` from the type's `workers` list; returns the rest.
    pub async fn forget_workers(
        &self,
        task_type: &TaskType,
        workers: &[String],
    ) -> Result<Vec<String>> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        self.call(&ForgetArgs { task_type, workers }).await
    }

    /// The declarations of `types`, in order (one pipelined round trip).
    pub async fn type_declarations(&self, types: &[TaskType]) -> Result<Vec<TypeDeclaration>> {
        if types.is_empty() {
            // An empty pipeline is an error in redis-rs ("empty command").
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for t in types {
            pipe.hgetall(self.names.type_key(t));
        }
        let hashes: Vec<BTreeMap<String, String>> = pipe.query_async(&mut self.conn()).await?;
        Ok(hashes.iter().map(TypeDeclaration::from_fields).collect())
    }

    /// Which of `workers` still have a registry entry (it expires when beats stop).
    pub async fn workers_alive(&self, workers: &[String]) -> Result<Vec<bool>> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for w in workers {
            pipe.exists(self.names.worker_key(&WorkerId::from(w.clone())));
        }
        let alive: Vec<bool> = pipe.query_async(&mut self.conn()).await?;
        Ok(alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_hash_reads_back() {
        let f: BTreeMap<String, String> = [
            ("max_attempts", "1"),
            ("timeout_ms", "1000"),
            ("priority", "4"),
            ("declared_by", "w1"),
            ("declared_at", "17"),
            ("workers", "w1,w2"),
            ("paused", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let d = TypeDeclaration::from_fields(&f);
        assert_eq!(
            d.settings,
            Some(DeclaredSettings {
                max_attempts: 1,
                timeout_ms: 1000,
                priority: 4
            })
        );
        assert_eq!(d.workers, vec!["w1", "w2"]);
        assert!(d.paused);
        assert_eq!(
            TypeDeclaration::from_fields(&BTreeMap::new()),
            TypeDeclaration::default()
        );
    }
}
