//! The task types of a namespace as `taskfleet types` and `GET /v1/types` show them:
//! each type's declared settings, the live workers serving it, its paused flag and
//! its queue depth (docs/cli.md "types").

use crate::Producer;
use crate::error::Result;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use taskfleet_common::TaskType;
use taskfleet_common::store::DeclaredSettings;

/// One type's row.
#[derive(Debug, Clone, Serialize)]
pub struct TypeView {
    /// What the workers serving it declared; `null` before any worker served it.
    pub settings: Option<DeclaredSettings>,
    /// The worker whose declaration `settings` shows.
    pub declared_by: Option<String>,
    /// Live workers serving the type (from the worker registry).
    pub workers: Vec<String>,
    pub paused: bool,
    /// The fleet's `rate_limit max_running group_max_running` (docs/flow-control.md).
    pub limits: taskfleet_common::store::FlowView,
    /// Deliveries flow control held so far: `paused rate_limit cap`.
    pub waits: taskfleet_common::store::FlowWaits,
    /// Messages ready in `{ns}.q.{type}`; `null` when the queue does not exist.
    pub queue_depth: Option<u32>,
}

/// Every type seen (enqueued) or served by a live worker, by name.
pub async fn types(producer: &Producer) -> Result<BTreeMap<TaskType, TypeView>> {
    let store = producer.store();
    let workers = store.workers().await?;
    let mut serving: BTreeMap<TaskType, Vec<String>> = BTreeMap::new();
    for w in &workers {
        let served = w.fields.get("types").map(String::as_str).unwrap_or("");
        for t in served.split(',').filter_map(|t| t.parse::<TaskType>().ok()) {
            serving.entry(t).or_default().push(w.id.clone());
        }
    }
    let all: Vec<TaskType> = store
        .types()
        .await?
        .into_iter()
        .chain(serving.keys().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let declarations = store.type_declarations(&all).await?;
    let names = store.names();
    let queues: Vec<String> = all.iter().map(|t| names.queue(t)).collect();
    let depths = if queues.is_empty() {
        Vec::new()
    } else {
        producer.publisher().queue_depths(&queues).await?
    };
    Ok(all
        .into_iter()
        .zip(declarations)
        .zip(depths)
        .map(|((t, d), depth)| {
            let view = TypeView {
                settings: d.settings,
                declared_by: d.declared_by,
                workers: serving.remove(&t).unwrap_or_default(),
                paused: d.paused,
                limits: d.limits,
                waits: d.waits,
                queue_depth: depth,
            };
            (t, view)
        })
        .collect())
}

/// `{"types": {TYPE: {settings, declared_by, workers, paused, queue_depth}}}`.
pub async fn types_json(producer: &Producer) -> Result<serde_json::Value> {
    let types: serde_json::Map<String, serde_json::Value> = types(producer)
        .await?
        .into_iter()
        .map(|(t, v)| (t.to_string(), serde_json::to_value(v).unwrap_or_default()))
        .collect();
    Ok(serde_json::json!({ "types": types }))
}
