//! The dead-letter queue's vocabulary: why a message is there, in headers that
//! workers write and `taskfleet dead list` (or anyone reading the queue) reads.

/// Header names on dead-lettered messages.
pub const REASON: &str = "x-taskfleet-reason";
pub const ERROR: &str = "x-taskfleet-error";
pub const ATTEMPTS: &str = "x-taskfleet-attempts";
pub const QUEUE: &str = "x-taskfleet-queue";
/// When the message was dead-lettered (ms since the Unix epoch, the worker's clock: the
/// broker keeps no such time for messages published to the dead exchange).
pub const DEAD_AT: &str = "x-taskfleet-dead-at";

/// Why a message is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Not a valid envelope (not JSON, or a required field missing or wrong).
    Malformed,
    /// A payload over the configured limit.
    TooLarge,
    /// A valid envelope with a field out of range (attempt 0, priority 12, ...).
    Invalid,
    /// No handler for its type on a worker that consumed it.
    UnknownType,
    /// The last attempt failed.
    Exhausted,
    /// The handler said another attempt cannot help.
    Permanent,
    /// Redelivered too often without finishing (it kept killing its worker).
    Poison,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Malformed => "malformed",
            DeadReason::TooLarge => "too_large",
            DeadReason::Invalid => "invalid",
            DeadReason::UnknownType => "unknown_type",
            DeadReason::Exhausted => "exhausted",
            DeadReason::Permanent => "permanent",
            DeadReason::Poison => "poison",
        }
    }
}

impl From<&crate::envelope::EnvelopeError> for DeadReason {
    fn from(e: &crate::envelope::EnvelopeError) -> Self {
        use crate::envelope::EnvelopeError;
        match e {
            EnvelopeError::Malformed(_) => DeadReason::Malformed,
            EnvelopeError::TooLarge { .. } => DeadReason::TooLarge,
            EnvelopeError::Invalid { .. } => DeadReason::Invalid,
        }
    }
}

impl std::str::FromStr for DeadReason {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            DeadReason::Malformed,
            DeadReason::TooLarge,
            DeadReason::Invalid,
            DeadReason::UnknownType,
            DeadReason::Exhausted,
            DeadReason::Permanent,
            DeadReason::Poison,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or(())
    }
}
