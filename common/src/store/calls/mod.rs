//! One typed call per Lua script. Each module holds the script's argument struct,
//! whose `fill` is the one place that knows the order of its KEYS and ARGV (the same
//! order as the script's header comment, which a test compares with `KEYS`/`ARGV`),
//! and the parser of its reply: a typed value, or `StoreError::Protocol` for
//! anything the script does not answer.

mod abandon;
mod cancel;
mod claim;
mod declare;
mod deregister;
mod enqueue;
mod expire;
mod finish;
mod heartbeat;
mod reap;
mod release;
mod replay;
mod report;
mod schedule;

pub(crate) use abandon::AbandonArgs;
pub(crate) use cancel::CancelArgs;
pub(crate) use claim::ClaimArgs;
pub(crate) use declare::{DeclareArgs, ForgetArgs, worker_list};
pub(crate) use deregister::DeregisterArgs;
pub(crate) use expire::ExpireArgs;
pub(crate) use finish::FinishArgs;
pub(crate) use reap::ReapArgs;
pub(crate) use release::ReleaseArgs;
pub(crate) use replay::ReplayArgs;
pub(crate) use report::ReportArgs;
pub(crate) use schedule::{FiredArgs, LeadArgs};

use super::reply::unexpected;
use super::scripts::Scripts;
use super::{Result, StateStore};
use crate::names::Names;
use redis::{Script, ToRedisArgs, Value};

/// What a call needs from the store besides its own arguments.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub names: &'a Names,
    /// How long finished records (and idempotency keys) are kept.
    pub retention_ms: u64,
}

/// KEYS and ARGV of one script call, in order.
#[derive(Debug, Default)]
pub(crate) struct Invocation {
    pub keys: Vec<String>,
    pub args: Vec<Vec<u8>>,
}

impl Invocation {
    pub fn key(&mut self, key: String) -> &mut Self {
        self.keys.push(key);
        self
    }

    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// `0`/`1`, as the scripts compare flags with `'1'`.
    pub fn flag(&mut self, on: bool) -> &mut Self {
        self.arg(u8::from(on))
    }
}

/// The Rust side of one script.
pub(crate) trait Call {
    /// The script's file name under `common/lua/`, without `.lua`.
    const SCRIPT: &'static str;
    /// The names of its KEYS, in the order of its header comment.
    const KEYS: &'static [&'static str];
    /// The names of its fixed ARGV, in the order of its header comment.
    const ARGV: &'static [&'static str];
    /// Whether more ARGV follow the fixed ones (pairs of a variable list).
    const VARIADIC: bool = false;
    type Reply;

    fn script(scripts: &Scripts) -> &Script;

    fn fill(&self, cx: Context<'_>, inv: &mut Invocation);

    /// The typed reply, or `None` when the reply is none of the script's answers.
    fn read(&self, reply: &Value) -> Option<Self::Reply>;

    fn parse(&self, reply: Value) -> Result<Self::Reply> {
        self.read(&reply)
            .ok_or_else(|| unexpected(Self::SCRIPT, &reply))
    }
}

impl StateStore {
    pub(crate) fn context(&self) -> Context<'_> {
        Context {
            names: &self.names,
            retention_ms: self.retention_ms(),
        }
    }

    /// Runs one script call and parses its reply.
    pub(crate) async fn call<C: Call>(&self, call: &C) -> Result<C::Reply> {
        let mut inv = Invocation::default();
        call.fill(self.context(), &mut inv);
        debug_assert_eq!(inv.keys.len(), C::KEYS.len(), "{}.lua KEYS", C::SCRIPT);
        debug_assert!(
            inv.args.len() == C::ARGV.len() || C::VARIADIC && inv.args.len() >= C::ARGV.len(),
            "{}.lua ARGV",
            C::SCRIPT
        );
        let mut script = C::script(&self.scripts).prepare_invoke();
        for key in &inv.keys {
            script.key(key);
        }
        for arg in &inv.args {
            script.arg(arg.as_slice());
        }
        let reply: Value = script.invoke_async(&mut self.conn()).await?;
        call.parse(reply)
    }
}

#[cfg(test)]
pub(crate) mod testing;
