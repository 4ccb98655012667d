//! `cancel.lua`: a cancellation request.

use super::{Call, Context, Invocation};
use crate::ids::{TaskId, TaskType};
use crate::store::CancelResult;
use crate::store::reply::{array, is, state};
use crate::store::scripts::Scripts;
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct CancelArgs<'a> {
    pub id: &'a TaskId,
    /// Read before the call: the stats key is named by it.
    pub task_type: &'a TaskType,
    /// Cancel its waiting dependents whatever its own state (`--with-dependents`).
    pub with_dependents: bool,
}

impl Call for CancelArgs<'_> {
    const SCRIPT: &'static str = "cancel";
    const KEYS: &'static [&'static str] = &["task", "stats", "events", "cancel", "cancellations"];
    const ARGV: &'static [&'static str] = &["id", "retention_ms", "key_prefix", "with_dependents"];
    type Reply = CancelResult;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.cancel
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.task_key(self.id))
            .key(n.stats_key(self.task_type))
            .key(n.events_channel())
            .key(n.cancel_key(self.id))
            .key(n.cancellations_channel());
        inv.arg(self.id.to_string())
            .arg(cx.retention_ms)
            .arg(n.key_prefix())
            .flag(self.with_dependents);
    }

    fn read(&self, reply: &Value) -> Option<CancelResult> {
        match array(reply)? {
            [tag] if is(tag, "not_found") => Some(CancelResult::NotFound),
            [tag, now] if is(tag, "ok") => state(now).map(CancelResult::State),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::state::TaskState;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let (id, t) = (TaskId::new(), "echo".parse().expect("type"));
        let call = CancelArgs {
            id: &id,
            task_type: &t,
            with_dependents: false,
        };
        assert_fills_its_header(&call);
        assert_eq!(
            call.parse(arr(vec![s("not_found")])).expect("valid"),
            CancelResult::NotFound
        );
        assert_eq!(
            call.parse(arr(vec![s("ok"), s("cancelling")]))
                .expect("valid"),
            CancelResult::State(TaskState::Cancelling)
        );
        for bad in [
            arr(vec![s("ok")]),
            arr(vec![s("ok"), s("stopped")]),
            arr(vec![s("not_found"), s("x")]),
            arr(vec![s("refused"), s("running")]),
            Value::Nil,
        ] {
            assert_protocol("cancel", call.parse(bad));
        }
    }
}
