//! `abandon.lua`: undoing an enqueue whose publish was not confirmed.

use super::{Call, Context, Invocation};
use crate::ids::{TaskId, TaskType};
use crate::store::reply::int;
use crate::store::scripts::Scripts;
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct AbandonArgs<'a> {
    pub id: &'a TaskId,
    pub task_type: &'a TaskType,
    pub idempotency_key: Option<&'a str>,
}

impl Call for AbandonArgs<'_> {
    const SCRIPT: &'static str = "abandon";
    const KEYS: &'static [&'static str] = &["task", "stats", "events", "idempotency"];
    const ARGV: &'static [&'static str] = &["id", "use_idempotency"];
    /// Whether the record was removed.
    type Reply = bool;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.abandon
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.task_key(self.id))
            .key(n.stats_key(self.task_type))
            .key(n.events_channel())
            .key(n.idempotency_key(self.idempotency_key.unwrap_or("-")));
        inv.arg(self.id.to_string())
            .flag(self.idempotency_key.is_some());
    }

    fn read(&self, reply: &Value) -> Option<bool> {
        match int(reply)? {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let (id, t) = (TaskId::new(), "echo".parse().expect("type"));
        let call = AbandonArgs {
            id: &id,
            task_type: &t,
            idempotency_key: None,
        };
        assert_fills_its_header(&call);
        assert!(call.parse(Value::Int(1)).expect("removed"));
        assert!(!call.parse(Value::Int(0)).expect("kept"));
        for bad in [Value::Int(2), s("1"), Value::Nil, arr(vec![])] {
            assert_protocol("abandon", call.parse(bad));
        }
    }
}
