//! The worker registry, heartbeats and the reaper of expired leases.

use super::calls::{DeregisterArgs, ExpireArgs, ReapArgs};
use super::{Result, StateStore};
use crate::ids::{TaskId, WorkerId};
use redis::AsyncCommands;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a worker tells the registry about itself.
#[derive(Debug, Clone)]
pub struct Registration {
    pub host: String,
    pub pid: u32,
    pub types: Vec<String>,
    pub concurrency: usize,
}

/// A worker's status in its registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStatus {
    Running,
    /// Finishing its in-flight tasks; takes no new ones.
    Draining,
}

impl WorkerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Running => "running",
            WorkerStatus::Draining => "draining",
        }
    }
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Default)]
pub struct Beat {
    /// Redis server time of the beat (ms).
    pub now: u64,
    /// In-flight tasks whose cancellation was requested.
    pub cancelled: Vec<TaskId>,
    /// Runs of this worker that no longer own their task (taken over), with their fence.
    pub lost: Vec<(TaskId, u64)>,
}

/// A live worker as `taskfleet workers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    pub id: String,
    pub heartbeat_at: u64,
    pub fields: BTreeMap<String, String>,
}

/// One heartbeat of a worker (`heartbeat.lua`).
#[derive(Debug, Clone)]
pub struct HeartbeatArgs<'a> {
    pub worker: &'a WorkerId,
    pub registration: &'a Registration,
    pub status: WorkerStatus,
    /// The lease of each in-flight run is extended to now + `lease`.
    pub lease: Duration,
    /// The registry entry expires after this without another beat.
    pub entry_ttl: Duration,
    /// The runs of this worker: task id and fence token.
    pub inflight: &'a [(TaskId, u64)],
}

impl StateStore {
    /// Refreshes the registry entry and the leases of the in-flight runs.
    pub async fn heartbeat(&self, beat: &HeartbeatArgs<'_>) -> Result<Beat> {
        self.call(beat).await
    }

    pub async fn deregister(&self, worker: &WorkerId) -> Result<()> {
        self.call(&DeregisterArgs { worker }).await
    }

    /// Returns expired leases' tasks to `pending`; `None` when another worker holds the
    /// reaper lock.
    pub async fn reap(
        &self,
        worker: &WorkerId,
        lock_for: Duration,
        limit: usize,
    ) -> Result<Option<Vec<TaskId>>> {
        self.call(&ReapArgs {
            worker,
            lock_for,
            limit,
        })
        .await
    }

    /// The expiry sweep: tasks past their `expires_at` that never started end
    /// `cancelled`, reason `expired`; returns their ids. Visits at most `limit` due
    /// entries (the rest wait for the next sweep). Run by the reaper-lock holder.
    pub async fn expire(&self, worker: &WorkerId, limit: usize) -> Result<Vec<TaskId>> {
        self.call(&ExpireArgs { worker, limit }).await
    }

    /// Live workers: registry entries whose hash has not expired.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let n = &self.names;
        let ids: Vec<(String, f64)> = self
            .conn()
            .zrange_withscores(n.workers_key(), 0, -1)
            .await?;
        if ids.is_empty() {
            // An empty pipeline is an error in redis-rs ("empty command").
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &ids {
            pipe.hgetall(n.worker_key(&WorkerId::from(id.clone())));
        }
        let hashes: Vec<BTreeMap<String, String>> = pipe.query_async(&mut self.conn()).await?;
        Ok(ids
            .into_iter()
            .zip(hashes)
            .filter(|(_, fields)| !fields.is_empty())
            .map(|((id, score), fields)| WorkerInfo {
                id,
                heartbeat_at: score as u64,
                fields,
            })
            .collect())
    }

    /// Redis server time in ms (ages in `workers` are judged by the same clock).
    pub async fn server_time_ms(&self) -> Result<u64> {
        let (s, us): (u64, u64) = redis::cmd("TIME").query_async(&mut self.conn()).await?;
        Ok(s * 1000 + us / 1000)
    }
}
