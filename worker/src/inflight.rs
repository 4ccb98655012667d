//! The tasks this worker is running now: their ids (for heartbeats and lease renewal)
//! and a way to stop each one, with the reason it was stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use taskfleet_common::TaskId;
use tokio_util::sync::CancellationToken;

/// Why a running attempt was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    TimedOut,
    /// The worker is draining and the grace period ran out.
    Drained,
    /// Another worker took the lease over; this attempt's commit would be refused.
    LeaseLost,
}

/// One running attempt's stop switch.
#[derive(Debug, Clone)]
pub struct StopSignal {
    token: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl StopSignal {
    fn new() -> Self {
        Self {
            token: CancellationToken::new(),
            reason: Arc::new(Mutex::new(None)),
        }
    }

    /// Fires the token; the first reason given is the one that counts.
    pub fn stop(&self, reason: StopReason) {
        let mut r = lock(&self.reason);
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.token.cancel();
    }

    pub fn reason(&self) -> Option<StopReason> {
        *lock(&self.reason)
    }

    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// A mutex poisoned by a panicking holder still guards plain data; keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Running attempts by registration number: (task id, fence token, stop switch).
type Runs = HashMap<u64, (TaskId, u64, StopSignal)>;

#[derive(Debug, Default, Clone)]
pub struct Inflight {
    // Keyed by a sequence number, not the task id: after a reconnect the same task
    // may briefly run twice here (the old delivery and its redelivery).
    entries: Arc<Mutex<Runs>>,
    next: Arc<AtomicU64>,
    // Set by `stop_all`: an attempt registered afterwards (its claim was still in
    // flight) starts already stopped instead of escaping the drain.
    stopping: Arc<Mutex<Option<StopReason>>>,
}

/// Removes its entry when the attempt ends, however it ends.
#[derive(Debug)]
pub struct InflightGuard {
    inflight: Inflight,
    key: u64,
    pub signal: StopSignal,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        lock(&self.inflight.entries).remove(&self.key);
    }
}

impl Inflight {
    /// Registers a run of `id` with its fence token.
    pub fn register(&self, id: TaskId, fence: u64) -> InflightGuard {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let signal = StopSignal::new();
        let mut entries = lock(&self.entries);
        if let Some(reason) = *lock(&self.stopping) {
            signal.stop(reason);
        }
        entries.insert(key, (id, fence, signal.clone()));
        drop(entries);
        InflightGuard {
            inflight: self.clone(),
            key,
            signal,
        }
    }

    /// (task id, fence token) of every running attempt.
    pub fn runs(&self) -> Vec<(TaskId, u64)> {
        lock(&self.entries)
            .values()
            .map(|(id, fence, _)| (*id, *fence))
            .collect()
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Stops every running attempt of `id`; true if there was one.
    pub fn stop(&self, id: &TaskId, reason: StopReason) -> bool {
        let mut found = false;
        for (task, _, signal) in lock(&self.entries).values() {
            if task == id {
                signal.stop(reason);
                found = true;
            }
        }
        found
    }

    /// Stops the one run of `id` holding `fence`; true if it was running here.
    pub fn stop_run(&self, id: &TaskId, fence: u64, reason: StopReason) -> bool {
        let entries = lock(&self.entries);
        let run = entries
            .values()
            .find(|(task, f, _)| task == id && *f == fence);
        run.inspect(|(_, _, signal)| signal.stop(reason)).is_some()
    }

    pub fn stop_all(&self, reason: StopReason) {
        let entries = lock(&self.entries);
        *lock(&self.stopping) = Some(reason);
        for (_, _, signal) in entries.values() {
            signal.stop(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_leave_when_their_guard_drops() {
        let inflight = Inflight::default();
        let id = TaskId::new();
        let g = inflight.register(id, 7);
        let other = inflight.register(id, 8);
        assert_eq!(inflight.runs().len(), 2);
        assert!(inflight.stop_run(&id, 8, StopReason::LeaseLost));
        assert_eq!(g.signal.reason(), None, "only the run with that fence");
        assert_eq!(other.signal.reason(), Some(StopReason::LeaseLost));
        drop(other);
        assert!(inflight.stop(&id, StopReason::Cancelled));
        assert_eq!(g.signal.reason(), Some(StopReason::Cancelled));
        inflight.stop(&id, StopReason::TimedOut);
        assert_eq!(
            g.signal.reason(),
            Some(StopReason::Cancelled),
            "first reason wins"
        );
        drop(g);
        assert_eq!(inflight.len(), 0);
    }

    #[test]
    fn attempts_registered_after_stop_all_start_stopped() {
        let inflight = Inflight::default();
        inflight.stop_all(StopReason::Drained);
        let g = inflight.register(TaskId::new(), 1);
        assert_eq!(g.signal.reason(), Some(StopReason::Drained));
        assert!(g.signal.token().is_cancelled());
    }
}
