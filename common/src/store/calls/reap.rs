//! `reap.lua`: returning expired leases' tasks.

use super::{Call, Context, Invocation};
use crate::ids::{TaskId, WorkerId};
use crate::store::reply::{absent, task_ids};
use crate::store::scripts::Scripts;
use redis::{Script, Value};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct ReapArgs<'a> {
    pub worker: &'a WorkerId,
    /// How long the reaper lock is held: the next reap of another worker waits that long.
    pub lock_for: Duration,
    pub limit: usize,
}

impl Call for ReapArgs<'_> {
    const SCRIPT: &'static str = "reap";
    const KEYS: &'static [&'static str] = &["running", "lock", "workers"];
    const ARGV: &'static [&'static str] = &[
        "worker",
        "lock_ms",
        "limit",
        "task_key_prefix",
        "stats_key_prefix",
        "events",
        "retention_ms",
        "worker_key_prefix",
    ];
    /// The ids reaped; `None` when another worker holds the lock.
    type Reply = Option<Vec<TaskId>>;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.reap
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.running_key())
            .key(n.reaper_lock())
            .key(n.workers_key());
        inv.arg(self.worker.as_str())
            .arg(self.lock_for.as_millis() as u64)
            .arg(self.limit)
            .arg(n.task_key_prefix())
            .arg(n.stats_key_prefix())
            .arg(n.events_channel())
            .arg(cx.retention_ms)
            .arg(n.worker_key_prefix());
    }

    fn read(&self, reply: &Value) -> Option<Option<Vec<TaskId>>> {
        if absent(reply) {
            return Some(None);
        }
        task_ids(reply).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let worker = WorkerId::from("w1".to_owned());
        let call = ReapArgs {
            worker: &worker,
            lock_for: Duration::from_secs(1),
            limit: 100,
        };
        assert_fills_its_header(&call);
        assert_eq!(call.parse(Value::Nil).expect("valid"), None);
        assert_eq!(call.parse(Value::Boolean(false)).expect("valid"), None);
        assert_eq!(call.parse(arr(vec![])).expect("valid"), Some(vec![]));
        let id = TaskId::new();
        assert_eq!(
            call.parse(arr(vec![s(&id.to_string())])).expect("valid"),
            Some(vec![id])
        );
        for bad in [arr(vec![s("nope")]), Value::Int(1), s("x")] {
            assert_protocol("reap", call.parse(bad));
        }
    }
}
