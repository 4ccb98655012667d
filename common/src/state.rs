//! The task state machine, defined once. The Lua scripts receive the same table
//! (rendered by [`lua_transition_table`]) so Redis enforces exactly what Rust allows.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Waiting for its `run_at` in a broker-held delay.
    Scheduled,
    /// Waiting for every task it was enqueued `--after` to complete (docs/workflows.md).
    Waiting,
    Pending,
    Running,
    Retrying,
    Cancelling,
    Completed,
    Failed,
    Cancelled,
}

impl TaskState {
    pub const ALL: [TaskState; 9] = [
        TaskState::Scheduled,
        TaskState::Waiting,
        TaskState::Pending,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Cancelling,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    /// States counted by the live counters in `{ns}:stats:{type}`.
    pub const LIVE: [TaskState; 6] = [
        TaskState::Scheduled,
        TaskState::Waiting,
        TaskState::Pending,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Cancelling,
    ];

    /// States a record never leaves (docs/states.md).
    pub const TERMINAL: [TaskState; 3] = [
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduled => "scheduled",
            TaskState::Waiting => "waiting",
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Cancelling => "cancelling",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        TaskState::TERMINAL.contains(&self)
    }

    /// The total counter of `{ns}:stats:{type}` (a `TypeStats` field) bumped when a
    /// record enters this state. `enqueued` is bumped by record creation instead.
    pub fn total_on_entry(self) -> Option<&'static str> {
        match self {
            TaskState::Completed => Some("completed"),
            TaskState::Failed => Some("failed"),
            TaskState::Cancelled => Some("cancelled"),
            TaskState::Retrying => Some("retried"),
            TaskState::Scheduled
            | TaskState::Waiting
            | TaskState::Pending
            | TaskState::Running
            | TaskState::Cancelling => None,
        }
    }

    /// The transition table of docs/states.md. Everything not listed is refused.
    pub fn can_transition_to(self, to: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, to),
            (Scheduled, Pending)
                | (Scheduled, Cancelled)
                | (Waiting, Pending)
                | (Waiting, Cancelled)
                | (Pending, Running)
                | (Pending, Cancelled)
                | (Running, Completed)
                | (Running, Failed)
                | (Running, Retrying)
                | (Running, Cancelling)
                | (Running, Pending)
                | (Retrying, Running)
                | (Retrying, Cancelled)
                | (Cancelling, Cancelled)
                // A cancel that loses the race with the handler's success keeps the result.
                | (Cancelling, Completed)
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown task state {s:?}"))
    }
}

/// The transition table as a Lua table literal, `{pending={running=true,...},...}`,
/// spliced into every script so the two definitions cannot drift apart.
pub fn lua_transition_table() -> String {
    let rows: Vec<String> = TaskState::ALL
        .iter()
        .map(|from| {
            let tos: Vec<String> = TaskState::ALL
                .iter()
                .filter(|to| from.can_transition_to(**to))
                .map(|to| format!("{}=true", to.as_str()))
                .collect();
            format!("{}={{{}}}", from.as_str(), tos.join(","))
        })
        .collect();
    format!("{{{}}}", rows.join(","))
}

/// A set of states as a Lua table literal, `{pending=true,...}` (for `LIVE`, `TERMINAL`).
pub fn lua_state_set(states: &[TaskState]) -> String {
    let items: Vec<String> = states
        .iter()
        .map(|s| format!("{}=true", s.as_str()))
        .collect();
    format!("{{{}}}", items.join(","))
}

/// [`TaskState::total_on_entry`] as a Lua table literal, `{retrying='retried',...}`.
pub fn lua_total_on_entry() -> String {
    let items: Vec<String> = TaskState::ALL
        .iter()
        .filter_map(|s| Some(format!("{}='{}'", s.as_str(), s.total_on_entry()?)))
        .collect();
    format!("{{{}}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::TaskState::*;
    use super::*;

    #[test]
    fn terminal_states_never_leave() {
        for from in TaskState::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in TaskState::ALL {
                assert!(!from.can_transition_to(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn documented_transitions_are_allowed() {
        for (from, to) in [
            (Pending, Running),
            (Pending, Cancelled),
            (Running, Completed),
            (Running, Failed),
            (Running, Retrying),
            (Running, Cancelling),
            (Running, Pending),
            (Retrying, Running),
            (Retrying, Cancelled),
            (Cancelling, Cancelled),
        ] {
            assert!(from.can_transition_to(to), "{from} -> {to}");
        }
    }

    #[test]
    fn shortcuts_are_refused() {
        for (from, to) in [
            (Pending, Completed),
            (Pending, Failed),
            (Pending, Retrying),
            (Retrying, Completed),
            (Retrying, Pending),
            (Cancelling, Running),
            (Cancelling, Failed),
            (Running, Cancelled),
            (Running, Running),
        ] {
            assert!(!from.can_transition_to(to), "{from} -> {to}");
        }
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
        }
    }

    #[test]
    fn every_state_is_live_or_terminal_never_both() {
        for s in TaskState::ALL {
            assert_ne!(TaskState::LIVE.contains(&s), s.is_terminal(), "{s}");
        }
    }

    #[test]
    fn lua_table_lists_every_state() {
        let t = lua_transition_table();
        for s in TaskState::ALL {
            assert!(t.contains(&format!("{}={{", s.as_str())), "{t}");
        }
        assert!(t.contains("pending={running=true,cancelled=true}"), "{t}");
    }
}
