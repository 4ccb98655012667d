//! Counting handler runs: "exactly once" proven by what the handlers did, not only by
//! the `completed` counter (which a second run of a finished task does not move).

use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskfleet_common::TaskId;
use taskfleet_worker::{Handler, handler_fn};

/// Every handler run of the handlers made by [`RunLog::echo`], per task id.
#[derive(Clone, Default)]
pub struct RunLog {
    runs: Arc<Mutex<HashMap<TaskId, u32>>>,
    // Runs whose handler returned (its outcome then goes to the commit).
    returned: Arc<AtomicU64>,
}

impl RunLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A handler that counts its run of the task, sleeps `pause` (so that work is in
    /// flight when a test injects a fault) and returns the payload, like `echo`.
    pub fn echo(&self, pause: Duration) -> impl Handler {
        let log = self.clone();
        handler_fn(move |ctx, payload: Value| {
            log.count(ctx.id());
            let returned = log.returned.clone();
            async move {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                returned.fetch_add(1, Ordering::SeqCst);
                Ok(payload)
            }
        })
    }

    fn count(&self, id: TaskId) {
        // A poisoned lock means a handler panicked holding it: the count is still right.
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        *runs.entry(id).or_default() += 1;
    }

    /// How many times the task ran (0: never).
    pub fn of(&self, id: &TaskId) -> u32 {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.get(id).copied().unwrap_or(0)
    }

    /// Runs of all tasks together.
    pub fn total(&self) -> u64 {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.values().map(|&n| u64::from(n)).sum()
    }

    /// Runs started whose handler has not returned yet.
    pub fn in_flight(&self) -> u64 {
        self.total()
            .saturating_sub(self.returned.load(Ordering::SeqCst))
    }

    /// The tasks of `ids` that did not run exactly once, with their run counts.
    pub fn not_once(&self, ids: &[TaskId]) -> Vec<(TaskId, u32)> {
        ids.iter()
            .map(|id| (*id, self.of(id)))
            .filter(|(_, n)| *n != 1)
            .collect()
    }
}
