//! `enqueue.lua`: the record of a new task.

use super::{Call, Context, Invocation};
use crate::store::reply::{array, is, state, task_id};
use crate::store::scripts::Scripts;
use crate::store::{EnqueueOutcome, NewTask};
use redis::{Script, Value};

impl Call for NewTask<'_> {
    const SCRIPT: &'static str = "enqueue";
    const KEYS: &'static [&'static str] = &[
        "task",
        "stats",
        "types",
        "events",
        "idempotency",
        "expiring",
    ];
    const ARGV: &'static [&'static str] = &[
        "id",
        "type",
        "payload",
        "max_attempts",
        "priority",
        "trace_id",
        "created_at",
        "use_idempotency",
        "retention_ms",
        "run_at",
        "expires_at",
        "key_prefix",
        "envelope",
        "after",
        "group",
    ];
    type Reply = EnqueueOutcome;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.enqueue
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        // Scripts declare every key they touch, so an unused idempotency key is a
        // placeholder rather than absent.
        inv.key(n.task_key(&self.id))
            .key(n.stats_key(self.task_type))
            .key(n.types_key())
            .key(n.events_channel())
            .key(n.idempotency_key(self.idempotency_key.unwrap_or("-")))
            .key(n.expiring_key());
        inv.arg(self.id.to_string())
            .arg(self.task_type.as_str())
            .arg(self.payload)
            .arg(self.max_attempts.map(|n| n.to_string()).unwrap_or_default())
            .arg(self.priority.map(|p| p.to_string()).unwrap_or_default())
            .arg(self.trace_id.unwrap_or(""))
            .arg(self.created_at.unwrap_or(0))
            .flag(self.idempotency_key.is_some())
            .arg(cx.retention_ms)
            .arg(self.run_at.unwrap_or(0))
            .arg(self.expires_at.unwrap_or(0))
            .arg(n.key_prefix())
            .arg(self.envelope.unwrap_or(""))
            .arg(serde_json::to_string(self.after).unwrap_or_else(|_| "[]".into()))
            .arg(self.group.unwrap_or(""));
    }

    fn read(&self, reply: &Value) -> Option<EnqueueOutcome> {
        match array(reply)? {
            [tag, state]
                if is(tag, "created") && (is(state, "pending") || is(state, "scheduled")) =>
            {
                Some(EnqueueOutcome::Created)
            }
            [tag, held] if is(tag, "created") && (is(held, "waiting") || is(held, "cancelled")) => {
                state(held).map(|state| EnqueueOutcome::Held { state })
            }
            [tag, id] if is(tag, "unknown_parent") => {
                task_id(id).map(EnqueueOutcome::UnknownParent)
            }
            [tag, id] if is(tag, "exists") => task_id(id).map(EnqueueOutcome::Exists),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::ids::{TaskId, TaskType};

    fn with(f: impl FnOnce(&NewTask<'_>)) {
        let t: TaskType = "echo".parse().expect("type");
        f(&NewTask {
            id: TaskId::new(),
            task_type: &t,
            payload: "{}",
            max_attempts: Some(3),
            priority: None,
            trace_id: None,
            created_at: None,
            idempotency_key: Some("k"),
            run_at: None,
            expires_at: None,
            group: Some("acme"),
            after: &[],
            envelope: None,
        });
    }

    #[test]
    fn fills_what_the_header_lists() {
        with(|t| assert_fills_its_header(t));
    }

    #[test]
    fn reads_created_and_exists() {
        with(|t| {
            let id = t.id.to_string();
            assert_eq!(
                t.parse(arr(vec![s("created"), s("scheduled")]))
                    .expect("created"),
                EnqueueOutcome::Created
            );
            assert_eq!(
                t.parse(arr(vec![s("exists"), s(&id)])).expect("exists"),
                EnqueueOutcome::Exists(t.id)
            );
        });
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        with(|t| {
            for bad in [
                arr(vec![s("exists"), s("not-an-id")]),
                arr(vec![s("exists")]),
                arr(vec![s("created")]),
                arr(vec![s("made"), s("x")]),
                Value::Int(1),
                Value::Nil,
            ] {
                assert_protocol("enqueue", t.parse(bad));
            }
        });
    }
}
