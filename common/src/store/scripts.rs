//! The Lua scripts under `common/lua/`, each prefixed with the shared prelude. The
//! prelude's tables of states are rendered from Rust (see [`PRELUDE_CONSTANTS`]), so a
//! script and the Rust state machine cannot disagree. Built once per `StateStore`;
//! `redis::Script` uses EVALSHA and reloads a script by itself after a Redis restart.

use crate::state::{TaskState, lua_state_set, lua_total_on_entry, lua_transition_table};
use redis::Script;

pub(crate) const PRELUDE: &str = include_str!("../../lua/lib.lua");

/// The dependency helpers (docs/workflows.md), after the prelude in the scripts that
/// end a task or create one `--after` others.
pub(crate) const DEPS: &str = include_str!("../../lua/deps.lua");

/// Renders one table of the prelude as a Lua literal.
pub(crate) type Render = fn() -> String;

/// Each placeholder of `lib.lua` with the Lua table literal that replaces it. `lib.lua`
/// declares `local NAME = __NAME__` for each, and no script types these tables itself.
pub(crate) const PRELUDE_CONSTANTS: [(&str, Render); 4] = [
    ("TRANSITIONS", lua_transition_table),
    ("LIVE", || lua_state_set(&TaskState::LIVE)),
    ("TERMINAL", || lua_state_set(&TaskState::TERMINAL)),
    ("TOTAL_ON_ENTRY", lua_total_on_entry),
];

/// `lib.lua` with every placeholder replaced by its table.
pub(crate) fn prelude() -> String {
    PRELUDE_CONSTANTS
        .iter()
        .fold(PRELUDE.to_owned(), |lua, (name, render)| {
            lua.replace(&format!("__{name}__"), &render())
        })
}

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
    pub expire: Script,
    pub replay: Script,
    pub lead: Script,
    pub fired: Script,
    pub declare: Script,
    pub forget: Script,
    pub release: Script,
}

impl Scripts {
    pub fn load() -> Self {
        let prelude = prelude();
        let with_prelude = |body: &str| Script::new(&format!("{prelude}\n{body}"));
        let with_deps = |body: &str| Script::new(&format!("{prelude}\n{DEPS}\n{body}"));
        Self {
            enqueue: with_deps(include_str!("../../lua/enqueue.lua")),
            abandon: with_prelude(include_str!("../../lua/abandon.lua")),
            // `flow.lua` is a library of the claim only: its checks run inside it.
            claim: with_prelude(concat!(
                include_str!("../../lua/flow.lua"),
                "\n",
                include_str!("../../lua/claim.lua")
            )),
            finish: with_deps(include_str!("../../lua/finish.lua")),
            cancel: with_deps(include_str!("../../lua/cancel.lua")),
            report: with_prelude(include_str!("../../lua/report.lua")),
            heartbeat: with_prelude(include_str!("../../lua/heartbeat.lua")),
            deregister: with_prelude(include_str!("../../lua/deregister.lua")),
            reap: with_prelude(include_str!("../../lua/reap.lua")),
            expire: with_prelude(include_str!("../../lua/expire.lua")),
            replay: with_prelude(include_str!("../../lua/replay.lua")),
            lead: with_prelude(include_str!("../../lua/lead.lua")),
            fired: with_prelude(include_str!("../../lua/fired.lua")),
            declare: with_prelude(include_str!("../../lua/declare.lua")),
            forget: with_prelude(include_str!("../../lua/forget.lua")),
            release: with_deps(include_str!("../../lua/release.lua")),
        }
    }
}
