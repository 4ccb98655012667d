//! What a caller asks to enqueue, validated before anything is written.

use crate::error::{ProducerError, Result};
use serde_json::value::RawValue;
use std::time::Duration;
use taskfleet_common::{TaskId, TaskType};

/// Most tasks one task may wait for (`--after`): each is one edge written atomically
/// with the task's record, so the bound keeps that script call short.
pub const MAX_PARENTS: usize = 1000;

/// Longest accepted idempotency key, in characters (it becomes part of a Redis key,
/// so at most 1 KiB). Counted in characters so that the HTTP API's schema
/// (`maxLength`) says exactly what is accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

#[derive(Debug, Clone)]
pub struct EnqueueRequest {
    pub task_type: TaskType,
    pub payload: Box<RawValue>,
    pub priority: Option<u8>,
    pub max_attempts: Option<u32>,
    pub timeout: Option<Duration>,
    pub idempotency_key: Option<String>,
    pub trace_id: Option<String>,
    /// Not to start before this time (ms since the epoch): `scheduled` until then.
    pub run_at: Option<u64>,
    /// Not started by this time (ms since the epoch): `cancelled`, reason `expired`.
    pub expires_at: Option<u64>,
    /// The `--group` key (tenant, customer, API key) that `group_max_running` caps.
    pub group: Option<String>,
    /// `waiting` until every one of these completed (docs/workflows.md).
    pub after: Vec<TaskId>,
}

/// Milliseconds since the Unix epoch, this machine's clock (a first estimate; the
/// workers judge due times by the Redis clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl EnqueueRequest {
    /// Parses a type name and a JSON payload text, refusing what the contract refuses.
    pub fn new(task_type: &str, payload_json: &str) -> Result<Self> {
        let task_type: TaskType = task_type.parse()?;
        let payload = RawValue::from_string(payload_json.trim().to_owned())
            .map_err(|e| ProducerError::Invalid(format!("payload is not valid JSON: {e}")))?;
        Ok(Self {
            task_type,
            payload,
            priority: None,
            max_attempts: None,
            timeout: None,
            idempotency_key: None,
            trace_id: None,
            run_at: None,
            expires_at: None,
            group: None,
            after: Vec::new(),
        })
    }

    pub fn validate(&self, payload_limit: usize) -> Result<()> {
        let size = self.payload.get().len();
        if size > payload_limit {
            return Err(ProducerError::TooLarge(format!(
                "payload of {size} bytes exceeds the limit of {payload_limit} bytes (payload_limit)"
            )));
        }
        if self.priority.is_some_and(|p| p > 9) {
            return Err(ProducerError::Invalid(
                "priority must be between 0 and 9".into(),
            ));
        }
        if self.max_attempts.is_some_and(|n| n == 0 || n > 100) {
            return Err(ProducerError::Invalid(
                "max attempts must be between 1 and 100".into(),
            ));
        }
        let latest =
            now_ms() + taskfleet_common::amqp::delay::MAX_SCHEDULE_AHEAD.as_millis() as u64;
        if self.run_at.is_some_and(|at| at > latest) {
            return Err(ProducerError::Invalid(format!(
                "run_at (--delay, --at) is more than {} days ahead, the longest delay supported",
                taskfleet_common::amqp::delay::MAX_SCHEDULE_AHEAD.as_secs() / 86_400
            )));
        }
        if self.after.len() > MAX_PARENTS {
            return Err(ProducerError::TooLarge(format!(
                "--after lists {} tasks; at most {MAX_PARENTS} are allowed (fan in through intermediate tasks)",
                self.after.len()
            )));
        }
        if !self.after.is_empty() && self.run_at.is_some() {
            return Err(ProducerError::Invalid(
                "--after cannot be combined with --delay or --at: a waiting task runs when its dependencies completed".into(),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ProducerError::Invalid(
                "timeout must be greater than 0".into(),
            ));
        }
        if let Some(k) = &self.idempotency_key
            && (k.is_empty()
                || k.chars().count() > MAX_IDEMPOTENCY_KEY
                || k.chars().any(char::is_control))
        {
            return Err(ProducerError::Invalid(format!(
                "idempotency key must be 1-{MAX_IDEMPOTENCY_KEY} characters without control characters"
            )));
        }
        if let Some(g) = &self.group
            && let Err(problem) = taskfleet_common::flow::check_group(g)
        {
            return Err(ProducerError::Invalid(format!("group {problem}")));
        }
        if let Some(t) = &self.trace_id
            && (t.len() != 32 || !t.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(ProducerError::Invalid(
                "trace id must be 32 hex digits".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        assert!(EnqueueRequest::new("Bad Type", "{}").is_err());
        let e = EnqueueRequest::new("echo", "{not json").expect_err("invalid json");
        assert!(e.to_string().contains("not valid JSON"), "{e}");
        let big = format!("\"{}\"", "x".repeat(100));
        let r = EnqueueRequest::new("echo", &big).expect("valid json");
        assert!(r.validate(50).is_err());
        assert!(r.validate(500).is_ok());
    }
}
