//! `lead.lua` and `fired.lua`: a schedule's leader lease and its ticks.

use super::{Call, Context, Invocation};
use crate::ids::{TaskId, WorkerId};
use crate::store::Lead;
use crate::store::reply::{array, count, int, optional, text};
use crate::store::scripts::Scripts;
use redis::{Script, Value};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct LeadArgs<'a> {
    pub schedule: &'a str,
    pub worker: &'a WorkerId,
    pub lease: Duration,
    pub task_type: &'a str,
    /// (`cron` | `every`, its spec), shown in the hash.
    pub timing: (&'static str, String),
}

impl Call for LeadArgs<'_> {
    const SCRIPT: &'static str = "lead";
    const KEYS: &'static [&'static str] = &["schedule"];
    const ARGV: &'static [&'static str] =
        &["worker", "lease_ms", "type", "timing_kind", "timing_spec"];
    type Reply = Lead;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.lead
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        inv.key(cx.names.schedule_key(self.schedule));
        inv.arg(self.worker.as_str())
            .arg(self.lease.as_millis() as u64)
            .arg(self.task_type)
            .arg(self.timing.0)
            .arg(self.timing.1.as_str());
    }

    fn read(&self, reply: &Value) -> Option<Lead> {
        match array(reply)? {
            [flag, now, next] if int(flag)? == 1 => Some(Lead::Leading {
                now: count(now)?,
                next_at: optional(next, count)?,
            }),
            [flag, _, leader] if int(flag)? == 0 => Some(Lead::Follower {
                leader: text(leader)?.to_owned(),
            }),
            _ => None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct FiredArgs<'a> {
    pub schedule: &'a str,
    pub worker: &'a WorkerId,
    pub next_at: u64,
    /// The tick enqueued now and its task, if one was.
    pub fired: Option<(u64, TaskId)>,
}

impl Call for FiredArgs<'_> {
    const SCRIPT: &'static str = "fired";
    const KEYS: &'static [&'static str] = &["schedule"];
    const ARGV: &'static [&'static str] = &["worker", "next_at", "tick_at", "task_id"];
    /// Whether it was recorded (false: this worker lost the lead).
    type Reply = bool;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.fired
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        inv.key(cx.names.schedule_key(self.schedule));
        let (tick, id) = match &self.fired {
            Some((t, id)) => (*t, id.to_string()),
            None => (0, String::new()),
        };
        inv.arg(self.worker.as_str())
            .arg(self.next_at)
            .arg(tick)
            .arg(id);
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
    fn lead_fills_its_header_and_reads_both_answers() {
        let w = WorkerId::from("w1".to_owned());
        let call = LeadArgs {
            schedule: "nightly",
            worker: &w,
            lease: Duration::from_secs(4),
            task_type: "echo",
            timing: ("every", "1s".into()),
        };
        assert_fills_its_header(&call);
        assert_eq!(
            call.parse(arr(vec![Value::Int(1), Value::Int(5), Value::Nil]))
                .expect("lead"),
            Lead::Leading {
                now: 5,
                next_at: None
            }
        );
        assert_eq!(
            call.parse(arr(vec![Value::Int(1), Value::Int(5), Value::Int(9)]))
                .expect("lead"),
            Lead::Leading {
                now: 5,
                next_at: Some(9)
            }
        );
        assert_eq!(
            call.parse(arr(vec![Value::Int(0), Value::Int(5), s("w2")]))
                .expect("follow"),
            Lead::Follower {
                leader: "w2".into()
            }
        );
        for bad in [
            arr(vec![Value::Int(2), Value::Int(5), Value::Nil]),
            Value::Nil,
            arr(vec![]),
        ] {
            assert_protocol("lead", call.parse(bad));
        }
    }

    #[test]
    fn fired_fills_its_header_and_reads_its_answers() {
        let w = WorkerId::from("w1".to_owned());
        let call = FiredArgs {
            schedule: "nightly",
            worker: &w,
            next_at: 10,
            fired: Some((9, TaskId::new())),
        };
        assert_fills_its_header(&call);
        assert!(call.parse(Value::Int(1)).expect("ok"));
        assert!(!call.parse(Value::Int(0)).expect("ok"));
        assert_protocol("fired", call.parse(Value::Int(3)));
    }
}
