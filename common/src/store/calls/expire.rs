//! `expire.lua`: the expiry sweep (tasks not started by their `expires_at`).

use super::{Call, Context, Invocation};
use crate::ids::{TaskId, WorkerId};
use crate::store::reply::task_ids;
use crate::store::scripts::Scripts;
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct ExpireArgs<'a> {
    /// The sweeping worker, named in each `cancelled` event.
    pub worker: &'a WorkerId,
    /// Most entries one sweep visits: the rest wait for the next sweep.
    pub limit: usize,
}

impl Call for ExpireArgs<'_> {
    const SCRIPT: &'static str = "expire";
    const KEYS: &'static [&'static str] = &["expiring"];
    const ARGV: &'static [&'static str] = &[
        "worker",
        "limit",
        "task_key_prefix",
        "stats_key_prefix",
        "events",
        "retention_ms",
    ];
    /// The ids that ended `cancelled`, reason `expired`.
    type Reply = Vec<TaskId>;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.expire
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.expiring_key());
        inv.arg(self.worker.as_str())
            .arg(self.limit)
            .arg(n.task_key_prefix())
            .arg(n.stats_key_prefix())
            .arg(n.events_channel())
            .arg(cx.retention_ms);
    }

    fn read(&self, reply: &Value) -> Option<Vec<TaskId>> {
        task_ids(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let worker = WorkerId::from("w1".to_owned());
        let call = ExpireArgs {
            worker: &worker,
            limit: 100,
        };
        assert_fills_its_header(&call);
        assert_eq!(call.parse(arr(vec![])).expect("valid"), vec![]);
        let id = TaskId::new();
        assert_eq!(
            call.parse(arr(vec![s(&id.to_string())])).expect("valid"),
            vec![id]
        );
        for bad in [arr(vec![s("nope")]), Value::Int(1), Value::Nil] {
            assert_protocol("expire", call.parse(bad));
        }
    }
}
