//! `claim.lua`: whether a delivery may run.

use super::{Call, Context, Invocation};
use crate::envelope::{Envelope, Resolved};
use crate::flow::FlowWait;
use crate::store::reply::{array, count, is, optional, state, text};
use crate::store::scripts::Scripts;
use crate::store::{Claim, DeliveryClaim, DropReason, Fence};
use redis::{Script, Value};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct ClaimArgs<'a> {
    pub env: &'a Envelope,
    pub resolved: &'a Resolved,
    pub delivery: &'a DeliveryClaim<'a>,
}

impl Call for ClaimArgs<'_> {
    const SCRIPT: &'static str = "claim";
    const KEYS: &'static [&'static str] = &[
        "task",
        "stats",
        "types",
        "events",
        "cancel",
        "running",
        "type",
        "rate",
        "slots",
        "group_slots",
    ];
    const ARGV: &'static [&'static str] = &[
        "id",
        "type",
        "payload",
        "attempt",
        "max_attempts",
        "priority",
        "trace_id",
        "created_at",
        "worker",
        "lease_ms",
        "max_redeliveries",
        "retention_ms",
        "redelivered",
        "fence",
        "parked",
        "run_at",
        "expires_at",
        "group",
        "rate_interval_us",
        "rate_burst",
        "max_running",
        "group_max_running",
    ];
    type Reply = Claim;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.claim
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let (n, env, d) = (cx.names, self.env, self.delivery);
        inv.key(n.task_key(&env.id))
            .key(n.stats_key(&env.task_type))
            .key(n.types_key())
            .key(n.events_channel())
            .key(n.cancel_key(&env.id))
            .key(n.running_key())
            .key(n.type_key(&env.task_type))
            .key(n.rate_key(&env.task_type))
            .key(n.slots_key(&env.task_type))
            // Never touched without a group; a key all the same (KEYS is fixed).
            .key(n.group_slots_key(&env.task_type, env.group.as_deref().unwrap_or("")));
        let flow = &d.flow;
        inv.arg(env.id.to_string())
            .arg(env.task_type.as_str())
            .arg(env.payload.get())
            .arg(env.attempt)
            .arg(self.resolved.max_attempts)
            .arg(self.resolved.priority)
            .arg(env.trace_id.as_deref().unwrap_or(""))
            .arg(env.created_at.unwrap_or(0))
            .arg(d.worker.as_str())
            .arg(d.lease.as_millis() as u64)
            .arg(d.max_redeliveries)
            .arg(cx.retention_ms)
            .flag(d.redelivered)
            // A string: Lua numbers are doubles, which would round a u64 token.
            .arg(d.token.to_string())
            .flag(d.parked)
            .arg(env.run_at.unwrap_or(0))
            .arg(env.expires_at.unwrap_or(0))
            .arg(env.group.as_deref().unwrap_or(""))
            .arg(flow.rate.map_or(0, |r| r.interval_us()))
            .arg(flow.rate.map_or(0, |r| r.burst))
            .arg(flow.max_running.unwrap_or(0))
            .arg(flow.group_max_running.unwrap_or(0));
    }

    fn read(&self, reply: &Value) -> Option<Claim> {
        let claim = match array(reply)? {
            [tag, attempt, checkpoint] if is(tag, "run") => Claim::Run {
                fence: Fence {
                    worker: self.delivery.worker.clone(),
                    attempt: count(attempt)?,
                    token: self.delivery.token,
                },
                checkpoint: optional(checkpoint, |v| text(v).map(str::to_owned))?,
            },
            [tag, delay_ms] if is(tag, "reschedule") => Claim::Reschedule {
                next_attempt: self.env.attempt.saturating_add(1),
                delay: Duration::from_millis(count(delay_ms)?),
            },
            [tag, why, finished] if is(tag, "drop") && is(why, "finished") => Claim::Drop {
                reason: DropReason::Finished(state(finished).filter(|s| s.is_terminal())?),
            },
            [tag, why] if is(tag, "drop") => Claim::Drop {
                reason: match text(why)? {
                    "stale" => DropReason::Stale,
                    "duplicate" => DropReason::Duplicate,
                    _ => return None,
                },
            },
            [tag] if is(tag, "cancelled") => Claim::Cancelled,
            [tag, delay_ms] if is(tag, "park") => Claim::Park {
                delay: Duration::from_millis(count(delay_ms)?),
            },
            [tag, delay_ms] if is(tag, "hop") => Claim::Hop {
                delay: Duration::from_millis(count(delay_ms)?),
            },
            [tag] if is(tag, "expired") => Claim::Expired,
            [tag, reason, delay_ms] if is(tag, "wait") => Claim::Wait {
                reason: FlowWait::parse(text(reason)?)?,
                delay: Duration::from_millis(count(delay_ms)?),
            },
            [tag, deliveries] if is(tag, "poison") => Claim::Poison {
                deliveries: count(deliveries)?,
            },
            _ => return None,
        };
        Some(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::ids::WorkerId;
    use crate::state::TaskState;

    fn with(f: impl FnOnce(&ClaimArgs<'_>)) {
        let env = Envelope::parse(
            br#"{"id":"01934f9e-7a3b-7c00-8000-000000000000","type":"echo","payload":1,"attempt":2}"#,
            1024,
        )
        .expect("envelope");
        let resolved = env.resolve(&crate::Config::default());
        let worker = WorkerId::from("w1".to_owned());
        let delivery = DeliveryClaim {
            worker: &worker,
            token: 42,
            redelivered: true,
            parked: false,
            lease: Duration::from_secs(5),
            max_redeliveries: 5,
            flow: crate::flow::FlowLimits::default(),
        };
        f(&ClaimArgs {
            env: &env,
            resolved: &resolved,
            delivery: &delivery,
        });
    }

    #[test]
    fn fills_what_the_header_lists() {
        with(|c| assert_fills_its_header(c));
    }

    #[test]
    fn reads_every_answer() {
        with(|c| {
            let fence = Fence {
                worker: WorkerId::from("w1".to_owned()),
                attempt: 2,
                token: 42,
            };
            let cases = [
                (
                    arr(vec![s("run"), Value::Int(2), Value::Nil]),
                    Claim::Run {
                        fence: fence.clone(),
                        checkpoint: None,
                    },
                ),
                (
                    arr(vec![s("run"), Value::Int(2), Value::Boolean(false)]),
                    Claim::Run {
                        fence: fence.clone(),
                        checkpoint: None,
                    },
                ),
                (
                    arr(vec![s("run"), Value::Int(2), s(r#"{"at":3}"#)]),
                    Claim::Run {
                        fence,
                        checkpoint: Some(r#"{"at":3}"#.into()),
                    },
                ),
                (
                    arr(vec![s("reschedule"), Value::Int(1500)]),
                    Claim::Reschedule {
                        next_attempt: 3,
                        delay: Duration::from_millis(1500),
                    },
                ),
                (
                    arr(vec![s("drop"), s("finished"), s("completed")]),
                    Claim::Drop {
                        reason: DropReason::Finished(TaskState::Completed),
                    },
                ),
                (
                    arr(vec![s("drop"), s("stale")]),
                    Claim::Drop {
                        reason: DropReason::Stale,
                    },
                ),
                (
                    arr(vec![s("drop"), s("duplicate")]),
                    Claim::Drop {
                        reason: DropReason::Duplicate,
                    },
                ),
                (arr(vec![s("cancelled")]), Claim::Cancelled),
                (
                    arr(vec![s("hop"), Value::Int(900)]),
                    Claim::Hop {
                        delay: Duration::from_millis(900),
                    },
                ),
                (arr(vec![s("expired")]), Claim::Expired),
                (
                    arr(vec![s("wait"), s("rate_limit"), Value::Int(40)]),
                    Claim::Wait {
                        reason: FlowWait::Rate,
                        delay: Duration::from_millis(40),
                    },
                ),
                (
                    arr(vec![s("park"), Value::Int(2500)]),
                    Claim::Park {
                        delay: Duration::from_millis(2500),
                    },
                ),
                (
                    arr(vec![s("poison"), Value::Int(6)]),
                    Claim::Poison { deliveries: 6 },
                ),
            ];
            for (reply, expected) in cases {
                assert_eq!(c.parse(reply).expect("a valid reply"), expected);
            }
        });
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        with(|c| {
            for bad in [
                arr(vec![s("run"), Value::Int(-1), Value::Nil]),
                arr(vec![s("run"), s("2"), Value::Nil]),
                arr(vec![s("run"), Value::Int(2)]),
                arr(vec![s("run"), Value::Int(2), Value::Int(7)]),
                arr(vec![s("reschedule"), Value::Int(-5)]),
                arr(vec![s("drop"), s("running")]),
                arr(vec![s("drop"), s("finished"), s("running")]),
                arr(vec![s("drop"), s("finished"), s("done")]),
                arr(vec![s("drop")]),
                arr(vec![s("poison")]),
                arr(vec![s("park")]),
                arr(vec![s("park"), Value::Int(-1)]),
                arr(vec![s("cancelled"), Value::Int(1)]),
                arr(vec![s("go")]),
                arr(vec![s("wait"), s("tired"), Value::Int(1)]),
                arr(vec![s("wait"), s("paused")]),
                arr(vec![]),
                Value::Nil,
                s("run"),
            ] {
                assert_protocol("claim", c.parse(bad));
            }
        });
    }
}
