//! `deregister.lua`: a worker leaving the registry.

use super::{Call, Context, Invocation};
use crate::ids::WorkerId;
use crate::store::reply::int;
use crate::store::scripts::Scripts;
use redis::{Script, Value};

#[derive(Debug)]
pub(crate) struct DeregisterArgs<'a> {
    pub worker: &'a WorkerId,
}

impl Call for DeregisterArgs<'_> {
    const SCRIPT: &'static str = "deregister";
    const KEYS: &'static [&'static str] = &["workers", "worker"];
    const ARGV: &'static [&'static str] = &["worker"];
    type Reply = ();

    fn script(scripts: &Scripts) -> &Script {
        &scripts.deregister
    }

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation) {
        let n = cx.names;
        inv.key(n.workers_key()).key(n.worker_key(self.worker));
        inv.arg(self.worker.as_str());
    }

    fn read(&self, reply: &Value) -> Option<()> {
        (int(reply)? == 1).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[test]
    fn fills_what_the_header_lists_and_reads_its_replies() {
        let worker = WorkerId::from("w1".to_owned());
        let call = DeregisterArgs { worker: &worker };
        assert_fills_its_header(&call);
        call.parse(Value::Int(1)).expect("removed");
        for bad in [Value::Int(0), s("1"), Value::Nil] {
            assert_protocol("deregister", call.parse(bad));
        }
    }
}
