//! Counting what a chaos scenario completed, from Redis: the ids of the completed
//! records and the `completed` counter, so that a verdict can say whether a task was
//! lost or completed twice (exactly-once state means the counter equals the number of
//! distinct completed records).

use crate::redis_direct;
use std::collections::BTreeSet;
use taskfleet_common::{Names, TaskId};

/// The completed records and the counter, read in one moment (a paused one, when
/// the caller paused writes).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub completed: BTreeSet<String>,
    pub count: i64,
}

/// Ids of every completed task record of the namespace (a fresh connection each
/// time: this must work across a Redis restart).
pub async fn completed_records(redis_url: &str, names: &Names) -> BTreeSet<String> {
    let Ok(mut conn) = redis_direct::connect(redis_url).await else {
        return BTreeSet::new();
    };
    let prefix = format!("{}:task:", names.namespace());
    let keys = redis_direct::keys_matching(&mut conn, &format!("{prefix}*"))
        .await
        .unwrap_or_default();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("HGET").arg(k).arg("state");
    }
    let states: Vec<Option<String>> = pipe.query_async(&mut conn).await.unwrap_or_default();
    keys.iter()
        .zip(states)
        .filter(|(_, s)| s.as_deref() == Some("completed"))
        .filter_map(|(k, _)| k.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

/// The `completed` counter of `sleep` (0 when Redis does not answer).
pub async fn counter(redis_url: &str, names: &Names) -> i64 {
    try_counter(redis_url, names).await.unwrap_or(0)
}

/// The `completed` counter of `sleep`, `None` when Redis does not answer.
pub async fn try_counter(redis_url: &str, names: &Names) -> Option<i64> {
    let mut conn = redis_direct::connect(redis_url).await.ok()?;
    let key = names.stats_key(&crate::task_type("sleep"));
    let mut hget = redis::cmd("HGET");
    hget.arg(key).arg("completed");
    let read = hget.query_async::<Option<i64>>(&mut conn);
    let n = tokio::time::timeout(std::time::Duration::from_secs(2), read)
        .await
        .ok()?
        .ok()?;
    Some(n.unwrap_or(0))
}

pub async fn snapshot(redis_url: &str, names: &Names) -> Snapshot {
    Snapshot {
        completed: completed_records(redis_url, names).await,
        count: counter(redis_url, names).await,
    }
}

/// The enqueued ids completed so far: now, or (across a Redis restart, which loses
/// everything) before it.
pub fn completed_ids(
    ids: &BTreeSet<String>,
    now: &BTreeSet<String>,
    pre: Option<&Snapshot>,
) -> usize {
    ids.iter()
        .filter(|id| now.contains(*id) || pre.is_some_and(|p| p.completed.contains(*id)))
        .count()
}

/// The verdict's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub enqueued: usize,
    pub completed: usize,
    pub lost: i64,
    pub completed_twice: i64,
}

impl Verdict {
    pub fn of(ids: &[TaskId], post: &Snapshot, pre: Option<&Snapshot>) -> Self {
        let ids: BTreeSet<String> = ids.iter().map(ToString::to_string).collect();
        let done = completed_ids(&ids, &post.completed, pre);
        // Counted minus distinct records, before and after; a record completed in both
        // (it survived the restart? impossible after SHUTDOWN NOSAVE) counts once.
        let (pre_count, pre_n, both) = pre.map_or((0, 0, 0), |p| {
            let both = p.completed.intersection(&post.completed).count();
            (p.count, p.completed.len() as i64, both as i64)
        });
        Self {
            enqueued: ids.len(),
            completed: done,
            lost: ids.len() as i64 - done as i64,
            completed_twice: pre_count - pre_n + post.count - post.completed.len() as i64 + both,
        }
    }

    pub fn ok(&self) -> bool {
        self.lost == 0 && self.completed_twice == 0
    }

    /// `verdict SCENARIO: enqueued=N completed=C lost=L completed_twice=D`
    pub fn line(&self, scenario: &str) -> String {
        format!(
            "verdict {scenario}: enqueued={} completed={} lost={} completed_twice={}",
            self.enqueued, self.completed, self.lost, self.completed_twice
        )
    }
}
