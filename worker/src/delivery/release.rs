//! Dependents of a finished task (docs/workflows.md): the commit that ended it
//! released them atomically (`finish.lua`); here their stored envelopes are published,
//! confirmed, before the parent's delivery is acknowledged. If the worker dies in
//! between, the parent's delivery comes back, its claim finds the record finished, and
//! [`after_drop`] publishes whatever is still released-but-unpublished: a child is
//! never left `pending` without a message. A child published twice runs once: its
//! claim drops the copy whose attempt is running or finished.

use super::ports::{CopyKind, Inbound, TaskStore};
use crate::shared::Shared;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::TaskId;
use taskfleet_common::envelope::Envelope;

/// Test hook (set by `main` from `TASKFLEET_TEST_ABORT_AFTER_COMMIT`): abort the
/// process right after a commit that released dependents, before publishing them or
/// acknowledging, to prove a crash at that instant strands no dependent.
static ABORT_AFTER_RELEASE: AtomicBool = AtomicBool::new(false);

pub fn abort_after_release_commit(on: bool) {
    ABORT_AFTER_RELEASE.store(on, Ordering::Relaxed);
}

/// Publishes the released dependents of `parent` (right after its commit); true when
/// every publish was confirmed, so the parent's delivery may be acknowledged.
pub(crate) async fn publish<S: TaskStore, I: Inbound>(
    shared: &Shared<S>,
    inbound: &I,
    parent: &TaskId,
    envelopes: &[String],
) -> bool {
    if envelopes.is_empty() {
        return true;
    }
    if ABORT_AFTER_RELEASE.load(Ordering::Relaxed) {
        tracing::error!(%parent, "test hook: aborting between the commit and the ack");
        std::process::abort();
    }
    let mut published = Vec::with_capacity(envelopes.len());
    for text in envelopes {
        let env = match Envelope::parse(text.as_bytes(), usize::MAX) {
            Ok(env) => env,
            Err(e) => {
                // Written by a producer of this fleet; unreadable means a foreign writer.
                tracing::error!(%parent, error = %e, "a stored dependent envelope is unreadable; skipping it");
                continue;
            }
        };
        let priority = env.resolve(&shared.config).priority;
        if let Err(e) = inbound
            .publish_copy(&env, Duration::ZERO, priority, CopyKind::Attempt)
            .await
        {
            tracing::warn!(%parent, child = %env.id, error = %e, "could not publish a released dependent; handing the parent back to publish it again");
            return false;
        }
        published.push(env.id);
    }
    if let Err(e) = shared.store.forget_released(parent, &published).await {
        // Harmless: a later redelivery would only publish duplicates, which claims drop.
        tracing::debug!(%parent, error = %e, "could not clear the released marks");
    }
    true
}

/// After a claim that found the task finished (or ended it): resolves and publishes
/// its dependents; true when nothing is left unpublished.
pub(crate) async fn after_drop<S: TaskStore, I: Inbound>(
    shared: &Shared<S>,
    inbound: &I,
    parent: &TaskId,
) -> bool {
    match shared.store.release(parent).await {
        Ok(envelopes) => publish(shared, inbound, parent, &envelopes).await,
        Err(e) => {
            tracing::warn!(%parent, error = %e, "could not resolve the dependents of a finished task; handing it back");
            false
        }
    }
}

/// The results of `parents`, by id, as the handler sees them (`null` when gone).
pub(crate) async fn parent_results<S: TaskStore>(
    store: &S,
    parents: &[TaskId],
) -> serde_json::Map<String, serde_json::Value> {
    if parents.is_empty() {
        return serde_json::Map::new();
    }
    let results = store.parent_results(parents).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not read the parents' results; handing nulls");
        Vec::new()
    });
    parents
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let value = results
                .get(i)
                .and_then(Option::as_deref)
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(serde_json::Value::Null);
            (p.to_string(), value)
        })
        .collect()
}
