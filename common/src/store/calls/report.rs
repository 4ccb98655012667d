//! `report.lua`: progress and checkpoints of a running handler.

use super::{Call, Context, Invocation};
use crate::ids::TaskId;
use crate::store::TaskField;
use crate::store::reply::int;
use crate::store::scripts::Scripts;
use crate::store::{Fence, Report};
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct ReportArgs<'a> {
    pub id: &'a TaskId,
    pub fence: &'a Fence,
    pub report: &'a Report,
}

impl Call for ReportArgs<'_> {
    const SCRIPT: &'static str = "report";
    const KEYS: &'static [&'static str] = &["task", "events"];
    const ARGV: &'static [&'static str] = &["id", "worker", "attempt", "fence"];
    const VARIADIC: bool = true;
    /// Whether it was stored (false: fenced off).
    type Reply = bool;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.report
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.task_key(self.id)).key(n.events_channel());
        inv.arg(self.id.to_string())
            .arg(self.fence.worker.as_str())
            .arg(self.fence.attempt)
            .arg(self.fence.token.to_string());
        match self.report {
            Report::Progress { percent, message } => {
                inv.arg(TaskField::Progress.as_str()).arg(percent.min(&100));
                if let Some(m) = message {
                    inv.arg(TaskField::ProgressMessage.as_str()).arg(m);
                }
            }
            Report::Checkpoint(json) => {
                inv.arg(TaskField::Checkpoint.as_str()).arg(json);
            }
        }
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
    use crate::ids::WorkerId;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let id = TaskId::new();
        let fence = Fence {
            worker: WorkerId::from("w1".to_owned()),
            attempt: 1,
            token: 3,
        };
        for report in [
            Report::Progress {
                percent: 140,
                message: Some("m".into()),
            },
            Report::Progress {
                percent: 1,
                message: None,
            },
            Report::Checkpoint("{}".into()),
        ] {
            let call = ReportArgs {
                id: &id,
                fence: &fence,
                report: &report,
            };
            assert_fills_its_header(&call);
            assert!(call.parse(Value::Int(1)).expect("stored"));
            assert!(!call.parse(Value::Int(0)).expect("refused"));
            for bad in [Value::Int(-1), s("1"), Value::Nil] {
                assert_protocol("report", call.parse(bad));
            }
        }
    }
}
