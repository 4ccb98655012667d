//! Declaring this worker's settings of each type it serves in `{ns}:type:{type}`
//! (docs/redis-keys.md), so producers publish with the right priority, `taskfleet
//! types` shows them, and a worker configured differently from a live peer says so.
//!
//! The worker registers (its first heartbeat) before it declares, so every id in a
//! type's `workers` list belongs to a worker whose registry entry existed when it
//! declared; an id whose entry is gone now belongs to a worker that stopped beating,
//! and is removed.

use crate::shared::Shared;
use taskfleet_common::TaskType;
use taskfleet_common::flow::FlowLimits;
use taskfleet_common::store::{DeclaredSettings, StoreError};

/// Declares every served type; logs, never fails: a worker whose declaration did not
/// reach Redis still runs its tasks with its own settings.
pub(crate) async fn declare_all(shared: &Shared) {
    for t in &shared.types {
        if let Err(e) = declare(shared, t).await {
            tracing::warn!(r#type = %t, error = %e, "could not declare the type's settings");
        }
    }
}

async fn declare(shared: &Shared, task_type: &TaskType) -> Result<(), StoreError> {
    let me = shared.worker_id.as_str();
    let mine = DeclaredSettings::from(&shared.config.type_settings(task_type));
    let store = &shared.store;
    let flow_before = store.declared_flow(task_type).await?;
    let declaration = store
        .declare_type(&shared.worker_id, task_type, &mine)
        .await?;
    let alive = store.workers_alive(&declaration.workers).await?;
    let gone: Vec<String> = declaration
        .workers
        .iter()
        .zip(&alive)
        .filter(|(id, alive)| !**alive && id.as_str() != me)
        .map(|(id, _)| id.clone())
        .collect();
    if let Some((other, theirs)) = &declaration.previous
        && other != me
        && *theirs != mine
        && !gone.contains(other)
        && declaration.workers.contains(other)
    {
        tracing::warn!(
            r#type = %task_type,
            other_worker = %other,
            this_worker = %me,
            "workers disagree on the settings of type {task_type}: {other} declared {theirs}, \
             {me} (this worker) declares {mine}; each runs tasks with its own, \
             {} now shows this worker's",
            shared.names.type_key(task_type)
        );
    }
    let live_peer = declaration
        .previous
        .as_ref()
        .map(|(other, _)| other.as_str())
        .filter(|other| {
            *other != me
                && !gone.iter().any(|g| g == other)
                && declaration.workers.iter().any(|w| w == other)
        });
    declare_flow(shared, task_type, flow_before, live_peer).await?;
    store.forget_workers(task_type, &gone).await?;
    Ok(())
}

/// Declares the type's flow limits: this worker's, or, when the worker that declared
/// the type before is live and disagrees, the stricter of both (with a warning), so
/// every worker's claims obey the stricter limit (`flow.lua` reads the hash).
async fn declare_flow(
    shared: &Shared,
    task_type: &TaskType,
    before: FlowLimits,
    live_peer: Option<&str>,
) -> Result<(), StoreError> {
    let mine = shared.config.type_settings(task_type).flow;
    let declared = match live_peer {
        Some(other) if before != mine => {
            let stricter = mine.stricter(before);
            tracing::warn!(
                r#type = %task_type,
                other_worker = %other,
                "workers disagree on the fleet-wide limits of type {task_type}: the fleet \
                 had {}, this worker has {}; the stricter ({}) holds on every worker",
                show(&before),
                show(&mine),
                show(&stricter)
            );
            stricter
        }
        _ => mine,
    };
    shared.store.set_declared_flow(task_type, &declared).await
}

fn show(l: &FlowLimits) -> String {
    let opt = |v: Option<u32>| v.map_or("none".to_owned(), |n| n.to_string());
    format!(
        "rate_limit={} max_running={} group_max_running={}",
        l.rate.map_or("none".to_owned(), |r| r.to_string()),
        opt(l.max_running),
        opt(l.group_max_running)
    )
}

/// Leaves the `workers` list of every served type (at deregistration).
pub(crate) async fn forget_all(shared: &Shared) {
    let me = [shared.worker_id.as_str().to_owned()];
    for t in &shared.types {
        if let Err(e) = shared.store.forget_workers(t, &me).await {
            tracing::warn!(r#type = %t, error = %e, "could not leave the type's worker list");
        }
    }
}
