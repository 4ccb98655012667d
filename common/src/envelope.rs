//! The message body every producer publishes (docs/envelope.md). Parsed once per
//! delivery; the payload stays raw JSON text so it is never re-serialized on the hot path.

use crate::config::Config;
use crate::ids::{TaskId, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub id: TaskId,
    #[serde(rename = "type")]
    pub task_type: TaskType,
    pub payload: Box<RawValue>,
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Not to start before this time (ms since the epoch): `scheduled` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<u64>,
    /// Not started by this time (ms): never run, `cancelled` with reason `expired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The `--group` key (tenant, customer, API key) that `group_max_running` caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The tasks it waited for (`--after`): the worker hands their results to the
    /// handler (docs/workflows.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<TaskId>,
}

/// Most attempts a task may have: a poison task must end, whoever published it.
pub const MAX_ATTEMPTS: u32 = 100;

fn first_attempt() -> u32 {
    1
}

/// Why a message could not be taken as a task: it goes to the dead-letter queue with this text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvelopeError {
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid envelope field {field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

/// The per-task settings after applying the type's configuration to missing fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    pub max_attempts: u32,
    pub priority: u8,
    pub timeout: Duration,
}

impl Envelope {
    /// Parses and checks a message body; `payload_limit` bounds the payload's size.
    pub fn parse(body: &[u8], payload_limit: usize) -> Result<Self, EnvelopeError> {
        let env: Envelope =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let size = env.payload.get().len();
        if size > payload_limit {
            return Err(EnvelopeError::TooLarge {
                size,
                limit: payload_limit,
            });
        }
        if env.attempt == 0 {
            return Err(EnvelopeError::Invalid {
                field: "attempt",
                problem: "must be at least 1".into(),
            });
        }
        if env.max_attempts.is_some_and(|n| n == 0 || n > MAX_ATTEMPTS) {
            return Err(EnvelopeError::Invalid {
                field: "max_attempts",
                problem: format!("must be between 1 and {MAX_ATTEMPTS}"),
            });
        }
        if env.attempt > MAX_ATTEMPTS {
            return Err(EnvelopeError::Invalid {
                field: "attempt",
                problem: format!("must be at most {MAX_ATTEMPTS}"),
            });
        }
        if env.priority.is_some_and(|p| p > 9) {
            return Err(EnvelopeError::Invalid {
                field: "priority",
                problem: "must be between 0 and 9".into(),
            });
        }
        if let Some(group) = &env.group
            && let Err(problem) = crate::flow::check_group(group)
        {
            return Err(EnvelopeError::Invalid {
                field: "group",
                problem,
            });
        }
        Ok(env)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain fields and a RawValue cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Fills missing settings from the type's configuration.
    pub fn resolve(&self, config: &Config) -> Resolved {
        let s = config.type_settings(&self.task_type);
        Resolved {
            max_attempts: self.max_attempts.unwrap_or(s.max_attempts),
            priority: self.priority.unwrap_or(s.priority),
            timeout: self
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(s.timeout),
        }
    }

    /// The W3C `traceparent` header of this task, when a trace is known. The span id
    /// is derived from the task id so every publish of one task names the same span.
    pub fn traceparent(&self) -> Option<String> {
        let trace = self.trace_id.as_deref()?;
        let span: String = self.id.as_uuid().simple().to_string()[16..32].to_owned();
        Some(format!("00-{trace}-{span}-01"))
    }

    /// The same task at the next attempt, as published for a retry.
    pub fn next_attempt(&self, attempt: u32) -> Self {
        Self {
            attempt,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_envelope_gets_defaults() {
        let e = Envelope::parse(
            br#"{"id":"01934f9e-7a3b-7c00-8000-000000000000","type":"echo","payload":{"a":[1,2]}}"#,
            1024,
        )
        .expect("valid");
        assert_eq!(e.attempt, 1);
        assert_eq!(e.payload.get(), r#"{"a":[1,2]}"#);
        let r = e.resolve(&Config::default());
        assert_eq!(r.max_attempts, 5);
        assert_eq!(r.priority, 0);
    }

    #[test]
    fn bad_envelopes_say_why() {
        let id = "01934f9e-7a3b-7c00-8000-000000000000";
        let cases: [(String, &str); 5] = [
            ("not json".into(), "malformed"),
            (
                format!(r#"{{"id":"{id}","type":"Bad Type","payload":1}}"#),
                "malformed",
            ),
            (
                r#"{"id":"nope","type":"echo","payload":1}"#.to_string(),
                "malformed",
            ),
            (format!(r#"{{"id":"{id}","type":"echo"}}"#), "malformed"),
            (
                format!(
                    r#"{{"id":"{id}","type":"echo","payload":"{}"}}"#,
                    "x".repeat(64)
                ),
                "too_large",
            ),
        ];
        for (body, reason) in cases {
            let err = Envelope::parse(body.as_bytes(), 32).expect_err(&body);
            let got = crate::amqp::dead::DeadReason::from(&err);
            assert_eq!(got.as_str(), reason, "{body}: {err}");
        }
    }

    #[test]
    fn envelope_round_trips() {
        let e = Envelope::parse(
            br#"{"id":"01934f9e-7a3b-7c00-8000-000000000000","type":"echo","payload":"hi","attempt":2,"priority":3}"#,
            1024,
        )
        .expect("valid");
        let again = Envelope::parse(&e.next_attempt(3).to_bytes(), 1024).expect("valid");
        assert_eq!(again.attempt, 3);
        assert_eq!(again.priority, Some(3));
        assert_eq!(again.payload.get(), "\"hi\"");
    }
}
