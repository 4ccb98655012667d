//! The Lua scripts under `common/lua/`, each prefixed with the shared prelude and the
//! transition table rendered from Rust. Built once per `StateStore`; `redis::Script`
//! uses EVALSHA and reloads a script by itself after a Redis restart.

use crate::state::lua_transition_table;
use redis::Script;

const PRELUDE: &str = include_str!("../../lua/lib.lua");

#[derive(Debug)]
pub(crate) struct Scripts {
    pub enqueue: Script,
    pub abandon: Script,
    pub claim: Script,
    pub finish: Script,
    pub cancel: Script,
    pub report: Script,
    pub heartbeat: Script,
    pub deregister: Script,
    pub reap: Script,
    pub replay: Script,
}

impl Scripts {
    pub fn load() -> Self {
        let prelude = PRELUDE.replace("__TRANSITIONS__", &lua_transition_table());
        let with_prelude = |body: &str| Script::new(&format!("{prelude}\n{body}"));
        Self {
            enqueue: with_prelude(include_str!("../../lua/enqueue.lua")),
            abandon: with_prelude(include_str!("../../lua/abandon.lua")),
            claim: with_prelude(include_str!("../../lua/claim.lua")),
            finish: with_prelude(include_str!("../../lua/finish.lua")),
            cancel: with_prelude(include_str!("../../lua/cancel.lua")),
            report: with_prelude(include_str!("../../lua/report.lua")),
            heartbeat: with_prelude(include_str!("../../lua/heartbeat.lua")),
            deregister: with_prelude(include_str!("../../lua/deregister.lua")),
            reap: with_prelude(include_str!("../../lua/reap.lua")),
            replay: with_prelude(include_str!("../../lua/replay.lua")),
        }
    }
}
