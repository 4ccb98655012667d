//! `finish.lua`: committing the outcome of a run.

use super::{Call, Context, Invocation};
use crate::ids::{TaskId, TaskType};
use crate::store::reply::{array, count, envelopes, is, optional, state};
use crate::store::scripts::Scripts;
use crate::store::{Commit, Fence, Outcome};
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct FinishArgs<'a> {
    pub id: &'a TaskId,
    pub task_type: &'a TaskType,
    pub fence: &'a Fence,
    pub outcome: &'a Outcome,
}

impl Call for FinishArgs<'_> {
    const SCRIPT: &'static str = "finish";
    const KEYS: &'static [&'static str] = &["task", "stats", "events", "running"];
    const ARGV: &'static [&'static str] = &[
        "id",
        "worker",
        "attempt",
        "outcome",
        "result",
        "error",
        "retry_delay_ms",
        "retention_ms",
        "fence",
        "key_prefix",
    ];
    type Reply = Commit;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.finish
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        let (result, error, delay_ms) = match self.outcome {
            Outcome::Completed { result } => (result.as_str(), "", 0),
            Outcome::Failed { error } => ("", error.as_str(), 0),
            Outcome::Retrying { error, delay } => ("", error.as_str(), delay.as_millis() as u64),
            Outcome::Cancelled | Outcome::Interrupted => ("", "", 0),
        };
        inv.key(n.task_key(self.id))
            .key(n.stats_key(self.task_type))
            .key(n.events_channel())
            .key(n.running_key());
        inv.arg(self.id.to_string())
            .arg(self.fence.worker.as_str())
            .arg(self.fence.attempt)
            .arg(self.outcome.name())
            .arg(result)
            .arg(error)
            .arg(delay_ms)
            .arg(cx.retention_ms)
            .arg(self.fence.token.to_string())
            .arg(n.key_prefix());
    }

    fn read(&self, reply: &Value) -> Option<Commit> {
        match array(reply)? {
            [tag, to, latency, released] if is(tag, "ok") => Some(Commit::Applied {
                state: state(to)?,
                cancel_latency_ms: optional(latency, count)?,
                released: envelopes(released)?,
            }),
            [tag, current] if is(tag, "refused") => Some(Commit::Refused {
                current: optional(current, state)?,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::ids::WorkerId;
    use crate::state::TaskState;
    use std::time::Duration;

    fn with(outcome: Outcome, f: impl FnOnce(&FinishArgs<'_>)) {
        let (id, t) = (TaskId::new(), "echo".parse().expect("type"));
        let fence = Fence {
            worker: WorkerId::from("w1".to_owned()),
            attempt: 1,
            token: 9,
        };
        f(&FinishArgs {
            id: &id,
            task_type: &t,
            fence: &fence,
            outcome: &outcome,
        });
    }

    #[test]
    fn fills_what_the_header_lists() {
        for outcome in [
            Outcome::Completed { result: "1".into() },
            Outcome::Retrying {
                error: "e".into(),
                delay: Duration::from_secs(1),
            },
            Outcome::Interrupted,
        ] {
            with(outcome, |c| assert_fills_its_header(c));
        }
    }

    #[test]
    fn reads_every_answer() {
        with(Outcome::Cancelled, |c| {
            let cases = [
                (
                    arr(vec![s("ok"), s("cancelled"), Value::Int(12), arr(vec![])]),
                    Commit::Applied {
                        state: TaskState::Cancelled,
                        cancel_latency_ms: Some(12),
                        released: vec![],
                    },
                ),
                (
                    arr(vec![
                        s("ok"),
                        s("completed"),
                        Value::Nil,
                        arr(vec![s("{}")]),
                    ]),
                    Commit::Applied {
                        state: TaskState::Completed,
                        cancel_latency_ms: None,
                        released: vec!["{}".into()],
                    },
                ),
                (
                    arr(vec![s("refused"), s("running")]),
                    Commit::Refused {
                        current: Some(TaskState::Running),
                    },
                ),
                (
                    arr(vec![s("refused"), Value::Nil]),
                    Commit::Refused { current: None },
                ),
                (
                    arr(vec![s("refused"), Value::Boolean(false)]),
                    Commit::Refused { current: None },
                ),
            ];
            for (reply, expected) in cases {
                assert_eq!(c.parse(reply).expect("a valid reply"), expected);
            }
        });
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        with(Outcome::Cancelled, |c| {
            for bad in [
                // The sentinel the script answered before it said "missing" with `false`.
                arr(vec![s("refused"), s("missing")]),
                arr(vec![s("refused")]),
                arr(vec![s("ok"), s("cancelled")]),
                arr(vec![s("ok"), s("cancelled"), Value::Int(-1), arr(vec![])]),
                arr(vec![s("ok"), s("completed"), Value::Nil]),
                arr(vec![s("ok"), s("gone"), Value::Nil]),
                arr(vec![s("ok"), Value::Nil, Value::Nil]),
                arr(vec![s("fine"), s("completed"), Value::Nil]),
                Value::Nil,
                Value::Int(1),
            ] {
                assert_protocol("finish", c.parse(bad));
            }
        });
    }
}
