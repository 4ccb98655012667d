//! `heartbeat.lua`: a worker's beat.

use super::{Call, Context, Invocation};
use crate::store::reply::{array, count, task_id, task_ids, text};
use crate::store::scripts::Scripts;
use crate::store::{Beat, HeartbeatArgs};
use redis::{Script, Value};

impl Call for HeartbeatArgs<'_> {
    const SCRIPT: &'static str = "heartbeat";
    const KEYS: &'static [&'static str] = &["workers", "worker", "running"];
    const ARGV: &'static [&'static str] = &[
        "worker",
        "lease_ms",
        "entry_ttl_ms",
        "status",
        "task_key_prefix",
        "cancel_key_prefix",
        "n_fields",
    ];
    const VARIADIC: bool = true;
    type Reply = Beat;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.heartbeat
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let (n, r) = (cx.names, self.registration);
        let entry: [(&str, String); 4] = [
            ("host", r.host.clone()),
            ("pid", r.pid.to_string()),
            ("types", r.types.join(",")),
            ("concurrency", r.concurrency.to_string()),
        ];
        inv.key(n.workers_key())
            .key(n.worker_key(self.worker))
            .key(n.running_key());
        inv.arg(self.worker.as_str())
            .arg(self.lease.as_millis() as u64)
            .arg(self.entry_ttl.as_millis() as u64)
            .arg(self.status.as_str())
            .arg(n.task_key_prefix())
            .arg(n.cancel_key_prefix())
            .arg(entry.len());
        for (field, value) in &entry {
            inv.arg(*field).arg(value);
        }
        for (id, fence) in self.inflight {
            inv.arg(id.to_string()).arg(fence.to_string());
        }
    }

    fn read(&self, reply: &Value) -> Option<Beat> {
        let [now, cancelled, lost] = array(reply)? else {
            return None;
        };
        let lost = array(lost)?;
        if lost.len() % 2 != 0 {
            return None;
        }
        Some(Beat {
            now: count(now)?,
            cancelled: task_ids(cancelled)?,
            lost: lost
                .chunks_exact(2)
                .map(|pair| Some((task_id(&pair[0])?, text(&pair[1])?.parse().ok()?)))
                .collect::<Option<_>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::ids::{TaskId, WorkerId};
    use crate::store::{Registration, WorkerStatus};
    use std::time::Duration;

    fn with(inflight: &[(TaskId, u64)], f: impl FnOnce(&HeartbeatArgs<'_>)) {
        let worker = WorkerId::from("w1".to_owned());
        let registration = Registration {
            host: "h".into(),
            pid: 1,
            types: vec!["echo".into()],
            concurrency: 2,
        };
        f(&HeartbeatArgs {
            worker: &worker,
            registration: &registration,
            status: WorkerStatus::Running,
            lease: Duration::from_secs(5),
            entry_ttl: Duration::from_secs(15),
            inflight,
        });
    }

    #[test]
    fn fills_what_the_header_lists() {
        with(&[(TaskId::new(), 1), (TaskId::new(), 2)], |c| {
            assert_fills_its_header(c)
        });
    }

    #[test]
    fn reads_its_reply() {
        let (a, b) = (TaskId::new(), TaskId::new());
        with(&[], |c| {
            let beat = c
                .parse(arr(vec![
                    Value::Int(1000),
                    arr(vec![s(&a.to_string())]),
                    arr(vec![s(&b.to_string()), s("18446744073709551615")]),
                ]))
                .expect("valid");
            assert_eq!(beat.now, 1000);
            assert_eq!(beat.cancelled, vec![a]);
            assert_eq!(beat.lost, vec![(b, u64::MAX)]);
            let idle = c
                .parse(arr(vec![Value::Int(5), arr(vec![]), arr(vec![])]))
                .expect("valid");
            assert!(idle.cancelled.is_empty() && idle.lost.is_empty());
        });
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        let a = TaskId::new().to_string();
        with(&[], |c| {
            for bad in [
                arr(vec![Value::Int(1), arr(vec![]), arr(vec![s(&a)])]),
                arr(vec![Value::Int(1), arr(vec![s("x")]), arr(vec![])]),
                arr(vec![Value::Int(1), arr(vec![]), arr(vec![s(&a), s("f")])]),
                arr(vec![Value::Int(-1), arr(vec![]), arr(vec![])]),
                arr(vec![Value::Int(1), arr(vec![])]),
                arr(vec![s("1"), arr(vec![]), arr(vec![])]),
                Value::Nil,
            ] {
                assert_protocol("heartbeat", c.parse(bad));
            }
        });
    }
}
