//! `replay.lua`: a failed task's new life (`taskfleet dead replay`).

use super::{Call, Context, Invocation};
use crate::envelope::{Envelope, Resolved};
use crate::store::ReplayRefusal;
use crate::store::reply::{array, is, state};
use crate::store::scripts::Scripts;
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct ReplayArgs<'a> {
    pub env: &'a Envelope,
    pub resolved: &'a Resolved,
}

impl Call for ReplayArgs<'_> {
    const SCRIPT: &'static str = "replay";
    const KEYS: &'static [&'static str] = &["task", "stats", "events", "cancel"];
    const ARGV: &'static [&'static str] = &[
        "id",
        "type",
        "payload",
        "max_attempts",
        "priority",
        "trace_id",
        "created_at",
    ];
    type Reply = Result<(), ReplayRefusal>;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.replay
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let (n, env) = (cx.names, self.env);
        inv.key(n.task_key(&env.id))
            .key(n.stats_key(&env.task_type))
            .key(n.events_channel())
            .key(n.cancel_key(&env.id));
        inv.arg(env.id.to_string())
            .arg(env.task_type.as_str())
            .arg(env.payload.get())
            .arg(self.resolved.max_attempts)
            .arg(self.resolved.priority)
            .arg(env.trace_id.as_deref().unwrap_or(""))
            .arg(env.created_at.unwrap_or(0));
    }

    fn read(&self, reply: &Value) -> Option<Result<(), ReplayRefusal>> {
        match array(reply)? {
            [tag] if is(tag, "ok") => Some(Ok(())),
            [tag, current] if is(tag, "refused") => Some(Err(ReplayRefusal {
                current: state(current)?,
            })),
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
        let env = Envelope::parse(
            br#"{"id":"01934f9e-7a3b-7c00-8000-000000000000","type":"echo","payload":1}"#,
            1024,
        )
        .expect("envelope");
        let resolved = env.resolve(&crate::Config::default());
        let call = ReplayArgs {
            env: &env,
            resolved: &resolved,
        };
        assert_fills_its_header(&call);
        assert_eq!(call.parse(arr(vec![s("ok")])).expect("valid"), Ok(()));
        assert_eq!(
            call.parse(arr(vec![s("refused"), s("pending")]))
                .expect("valid"),
            Err(ReplayRefusal {
                current: TaskState::Pending
            })
        );
        for bad in [
            arr(vec![s("refused")]),
            arr(vec![s("refused"), Value::Nil]),
            arr(vec![s("refused"), s("lost")]),
            arr(vec![s("ok"), s("pending")]),
            Value::Int(1),
        ] {
            assert_protocol("replay", call.parse(bad));
        }
    }
}
