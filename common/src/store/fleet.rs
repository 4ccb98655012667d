//! The worker registry, heartbeats and the reaper of expired leases.

use super::reply::{int, items, strings};
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

impl StateStore {
    /// Refreshes the registry entry and the leases of `inflight`.
    pub async fn heartbeat(
        &self,
        worker: &WorkerId,
        registration: &Registration,
        status: WorkerStatus,
        lease: Duration,
        entry_ttl: Duration,
        inflight: &[(TaskId, u64)],
    ) -> Result<Beat> {
        let n = &self.names;
        let types = registration.types.join(",");
        let fields: [(&str, String); 4] = [
            ("host", registration.host.clone()),
            ("pid", registration.pid.to_string()),
            ("types", types),
            ("concurrency", registration.concurrency.to_string()),
        ];
        let mut inv = self.scripts.heartbeat.prepare_invoke();
        inv.key(n.workers_key())
            .key(n.worker_key(worker))
            .key(n.running_key())
            .arg(worker.as_str())
            .arg(lease.as_millis() as u64)
            .arg(entry_ttl.as_millis() as u64)
            .arg(status.as_str())
            .arg(n.task_key_prefix())
            .arg(n.cancel_key_prefix())
            .arg(fields.len());
        for (k, v) in &fields {
            inv.arg(*k).arg(v);
        }
        for (id, fence) in inflight {
            inv.arg(id.to_string()).arg(fence.to_string());
        }
        let reply: redis::Value = inv.invoke_async(&mut self.conn()).await?;
        let mut r = items(reply).into_iter();
        let now = r.next().as_ref().and_then(int).unwrap_or(0) as u64;
        let parse = |v: Option<redis::Value>| -> Vec<TaskId> {
            v.map(strings)
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect()
        };
        let cancelled = parse(r.next());
        let lost_pairs = r.next().map(strings).unwrap_or_default();
        let lost = lost_pairs
            .chunks(2)
            .filter_map(|p| Some((p.first()?.parse().ok()?, p.get(1)?.parse().ok()?)))
            .collect();
        Ok(Beat {
            now,
            cancelled,
            lost,
        })
    }

    pub async fn deregister(&self, worker: &WorkerId) -> Result<()> {
        let n = &self.names;
        let _: i64 = self
            .scripts
            .deregister
            .key(n.workers_key())
            .key(n.worker_key(worker))
            .arg(worker.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Returns expired leases' tasks to `pending`; `None` when another worker holds the
    /// reaper lock.
    pub async fn reap(
        &self,
        worker: &WorkerId,
        lock_for: Duration,
        limit: usize,
    ) -> Result<Option<Vec<TaskId>>> {
        let n = &self.names;
        let reply: redis::Value = self
            .scripts
            .reap
            .key(n.running_key())
            .key(n.reaper_lock())
            .key(n.workers_key())
            .arg(worker.as_str())
            .arg(lock_for.as_millis() as u64)
            .arg(limit)
            .arg(n.task_key_prefix())
            .arg(n.stats_key_prefix())
            .arg(n.events_channel())
            .arg(self.retention_ms())
            .arg(n.worker_key_prefix())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match reply {
            redis::Value::Nil | redis::Value::Boolean(false) => None,
            other => Some(
                strings(other)
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect(),
            ),
        })
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
