//! What a producer knows of a task type's declared settings (`{ns}:type:{type}`,
//! written by the workers serving it): the priority to publish with when the enqueuer
//! set none, the settings to record until a worker claims the task, and whether any
//! live worker serves the type. Read with a short cache, so an enqueue costs no extra
//! round trip most of the time; a failed read means "unknown", never a failed enqueue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use taskfleet_common::store::DeclaredSettings;
use taskfleet_common::{StateStore, TaskType};
use tokio::sync::Mutex;

/// How long a read of a type's declaration is reused. Short: a worker that just
/// started (or stopped) is seen within this.
pub const TYPE_INFO_TTL: Duration = Duration::from_secs(2);

/// Longest an enqueue waits for the declaration (the lock is held meanwhile): while
/// Redis is down, enqueues go on to their own, patient, record write instead.
const TYPE_INFO_PATIENCE: Duration = Duration::from_secs(1);

/// A type as the producer sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeInfo {
    /// What the workers serving the type declared; `None` before any did.
    pub settings: Option<DeclaredSettings>,
    /// Whether a live worker declared the type; `None` when Redis could not say.
    pub served: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct TypeInfoCache {
    // One lock across the read, so a burst of enqueues of a new type reads it once.
    entries: Arc<Mutex<HashMap<TaskType, (Instant, TypeInfo)>>>,
}

impl TypeInfoCache {
    pub async fn get(&self, store: &StateStore, task_type: &TaskType) -> TypeInfo {
        let mut entries = self.entries.lock().await;
        if let Some((at, info)) = entries.get(task_type)
            && at.elapsed() < TYPE_INFO_TTL
        {
            return *info;
        }
        let info = match tokio::time::timeout(TYPE_INFO_PATIENCE, read(store, task_type)).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                tracing::debug!(%task_type, error = %e, "could not read the type's declared settings");
                TypeInfo::default()
            }
            Err(_) => {
                tracing::debug!(%task_type, "reading the type's declared settings timed out");
                TypeInfo::default()
            }
        };
        entries.insert(task_type.clone(), (Instant::now(), info));
        info
    }
}

async fn read(
    store: &StateStore,
    task_type: &TaskType,
) -> Result<TypeInfo, taskfleet_common::store::StoreError> {
    let declared = store
        .type_declarations(std::slice::from_ref(task_type))
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    let alive = store.workers_alive(&declared.workers).await?;
    Ok(TypeInfo {
        settings: declared.settings,
        served: Some(alive.contains(&true)),
    })
}

/// The one-line warning for a type no live worker serves.
pub fn unserved_warning(store: &StateStore, task_type: &TaskType) -> String {
    let names = store.names();
    format!(
        "no live worker serves type {task_type} in namespace {}: the task waits in queue {} until one starts",
        names.namespace(),
        names.queue(task_type)
    )
}
