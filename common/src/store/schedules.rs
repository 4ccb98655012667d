//! Schedules as the store keeps them: each one's leader lease and ticks in
//! `{ns}:schedule:{name}`, and the list `taskfleet schedules` shows.

use super::calls::{FiredArgs, LeadArgs};
use super::{Result, StateStore};
use crate::ids::{TaskId, WorkerId};
use redis::AsyncCommands;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The answer to a leader's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lead {
    /// This worker leads the schedule; `next_at` is the tick due next, if recorded.
    Leading { now: u64, next_at: Option<u64> },
    /// Another worker leads it.
    Follower { leader: String },
}

/// One schedule's hash, fields as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

/// What a scheduler asks for each schedule it may lead.
#[derive(Debug, Clone, Copy)]
pub struct LeadRequest<'a> {
    pub schedule: &'a str,
    pub worker: &'a WorkerId,
    pub lease: Duration,
    pub task_type: &'a str,
}

impl StateStore {
    /// Takes or renews the lead of a schedule; `timing` is shown in its hash.
    pub async fn lead(&self, r: LeadRequest<'_>, timing: (&'static str, String)) -> Result<Lead> {
        self.call(&LeadArgs {
            schedule: r.schedule,
            worker: r.worker,
            lease: r.lease,
            task_type: r.task_type,
            timing,
        })
        .await
    }

    /// Records the next tick (and the one just fired); false if the lead was lost.
    pub async fn fired(
        &self,
        schedule: &str,
        worker: &WorkerId,
        next_at: u64,
        fired: Option<(u64, TaskId)>,
    ) -> Result<bool> {
        self.call(&FiredArgs {
            schedule,
            worker,
            next_at,
            fired,
        })
        .await
    }

    /// Every schedule the fleet has run, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        let mut conn = self.conn();
        let prefix = self.names.schedule_key("");
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.names.schedule_pattern())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let fields: BTreeMap<String, String> = conn.hgetall(&key).await?;
            let name = key.strip_prefix(&prefix).unwrap_or(&key).to_owned();
            out.push(ScheduleInfo { name, fields });
        }
        Ok(out)
    }
}
