//! The fields of the task hash `{ns}:task:{id}` (docs/redis-keys.md), named once.
//! The Lua scripts spell them as literals; a unit test (`contract_tests`) scans
//! `common/lua/` and fails on a field a script uses that is not listed here.

/// One field of the task hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskField {
    Id,
    Type,
    State,
    Attempt,
    MaxAttempts,
    Priority,
    Payload,
    Result,
    Error,
    Progress,
    /// The message of the last progress report.
    ProgressMessage,
    Checkpoint,
    Worker,
    TraceId,
    CreatedAt,
    StartedAt,
    FinishedAt,
    UpdatedAt,
    CancelRequestedAt,
    NextAttemptAt,
    /// Claims of the current attempt: the poison bound.
    Deliveries,
    /// The token of the run that owns the task (see `Fence`).
    Fence,
    /// When a `scheduled` task is due (ms).
    RunAt,
    /// A task not started by then is never run (ms).
    ExpiresAt,
    /// Why a `cancelled` record was cancelled: `requested`, `expired` or `dependency_failed`.
    Reason,
    /// The `--group` key that `group_max_running` caps.
    Group,
    /// The ids of the tasks it waits for (`--after`), a JSON array (docs/workflows.md).
    After,
    /// The envelope to publish once released: present while `waiting`, and while
    /// `pending` until its publish was confirmed (the released-not-published marker).
    Envelope,
}

/// How a field's stored string reads as JSON (`taskfleet status --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    /// An integer (a count or a timestamp in ms).
    Number,
    /// JSON stored as text.
    Json,
}

impl TaskField {
    pub const ALL: [TaskField; 28] = [
        TaskField::Id,
        TaskField::Type,
        TaskField::State,
        TaskField::Attempt,
        TaskField::MaxAttempts,
        TaskField::Priority,
        TaskField::Payload,
        TaskField::Result,
        TaskField::Error,
        TaskField::Progress,
        TaskField::ProgressMessage,
        TaskField::Checkpoint,
        TaskField::Worker,
        TaskField::TraceId,
        TaskField::CreatedAt,
        TaskField::StartedAt,
        TaskField::FinishedAt,
        TaskField::UpdatedAt,
        TaskField::CancelRequestedAt,
        TaskField::NextAttemptAt,
        TaskField::Deliveries,
        TaskField::Fence,
        TaskField::RunAt,
        TaskField::ExpiresAt,
        TaskField::Reason,
        TaskField::Group,
        TaskField::After,
        TaskField::Envelope,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskField::Id => "id",
            TaskField::Type => "type",
            TaskField::State => "state",
            TaskField::Attempt => "attempt",
            TaskField::MaxAttempts => "max_attempts",
            TaskField::Priority => "priority",
            TaskField::Payload => "payload",
            TaskField::Result => "result",
            TaskField::Error => "error",
            TaskField::Progress => "progress",
            TaskField::ProgressMessage => "progress_message",
            TaskField::Checkpoint => "checkpoint",
            TaskField::Worker => "worker",
            TaskField::TraceId => "trace_id",
            TaskField::CreatedAt => "created_at",
            TaskField::StartedAt => "started_at",
            TaskField::FinishedAt => "finished_at",
            TaskField::UpdatedAt => "updated_at",
            TaskField::CancelRequestedAt => "cancel_requested_at",
            TaskField::NextAttemptAt => "next_attempt_at",
            TaskField::Deliveries => "deliveries",
            TaskField::Fence => "fence",
            TaskField::RunAt => "run_at",
            TaskField::ExpiresAt => "expires_at",
            TaskField::Reason => "reason",
            TaskField::Group => "group",
            TaskField::After => "after",
            TaskField::Envelope => "envelope",
        }
    }

    pub fn from_name(name: &str) -> Option<TaskField> {
        TaskField::ALL.into_iter().find(|f| f.as_str() == name)
    }

    pub fn kind(self) -> FieldKind {
        use TaskField::*;
        match self {
            Payload | Result | Checkpoint | After | Envelope => FieldKind::Json,
            Attempt | MaxAttempts | Priority | Progress | Deliveries | CreatedAt | StartedAt
            | FinishedAt | UpdatedAt | CancelRequestedAt | NextAttemptAt | RunAt | ExpiresAt => {
                FieldKind::Number
            }
            // The fence token is a u64 that JSON numbers (f64 in most readers) would round.
            Id | Type | State | Error | ProgressMessage | Worker | TraceId | Fence | Reason
            | Group => FieldKind::Text,
        }
    }
}

impl std::fmt::Display for TaskField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_their_names() {
        for f in TaskField::ALL {
            assert_eq!(TaskField::from_name(f.as_str()), Some(f));
        }
        let mut names: Vec<_> = TaskField::ALL.iter().map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TaskField::ALL.len(), "one name per field");
    }
}
