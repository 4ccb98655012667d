//! `release.lua`: resolving the dependents of a finished task outside its own
//! transition (a redelivered copy, or a task the claim ended).

use super::{Call, Context, Invocation};
use crate::ids::TaskId;
use crate::store::reply::envelopes;
use crate::store::scripts::Scripts;
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct ReleaseArgs<'a> {
    pub id: &'a TaskId,
}

impl Call for ReleaseArgs<'_> {
    const SCRIPT: &'static str = "release";
    const KEYS: &'static [&'static str] = &["task", "events"];
    const ARGV: &'static [&'static str] = &["id", "key_prefix", "retention_ms"];
    /// The envelopes of dependents released and not yet published.
    type Reply = Vec<String>;

    fn script(scripts: &Scripts) -> &Script {
        &scripts.release
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.task_key(self.id)).key(n.events_channel());
        inv.arg(self.id.to_string())
            .arg(n.key_prefix())
            .arg(cx.retention_ms);
    }

    fn read(&self, reply: &Value) -> Option<Vec<String>> {
        envelopes(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let id = TaskId::new();
        let call = ReleaseArgs { id: &id };
        assert_fills_its_header(&call);
        assert_eq!(
            call.parse(arr(vec![s("{}")])).expect("valid"),
            vec!["{}".to_owned()]
        );
        assert_protocol("release", call.parse(Value::Int(1)));
    }
}
