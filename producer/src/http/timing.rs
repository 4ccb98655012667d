//! When a task enqueued over HTTP may start and until when: `delay_ms` or `run_at`
//! (RFC 3339) and `expires_at` (RFC 3339), resolved to the millisecond times of an
//! `EnqueueRequest`, and their description in the OpenAPI document.
//!
//! Refused with 400: `delay_ms` together with `run_at` (two answers to one question),
//! a negative `delay_ms` (by the body's parser), a start more than the longest delay
//! ahead, and a time that is not RFC 3339. A `run_at` in the past runs now, and an
//! `expires_at` already past is accepted: the task never starts and ends `cancelled`,
//! reason `expired`, at the next expiry sweep (docs/http-api.md).

use super::error::ApiError;
use axum::http::StatusCode;
use serde_json::{Value, json};
use taskfleet_common::amqp::delay::MAX_SCHEDULE_AHEAD;

/// The start and expiry times (ms since the epoch) a request asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Times {
    pub run_at: Option<u64>,
    pub expires_at: Option<u64>,
}

/// The longest `delay_ms`, and the furthest `run_at` from now.
fn max_ahead_ms() -> u64 {
    u64::try_from(MAX_SCHEDULE_AHEAD.as_millis()).unwrap_or(u64::MAX)
}

fn invalid(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
}

/// Resolves the request's fields against `now` (ms, this machine's clock).
pub(super) fn resolve(
    delay_ms: Option<u64>,
    run_at: Option<&str>,
    expires_at: Option<&str>,
    now: u64,
) -> Result<Times, ApiError> {
    let days = MAX_SCHEDULE_AHEAD.as_secs() / 86_400;
    let run_at = match (delay_ms, run_at) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "delay_ms and run_at were both given: send one (delay_ms counts from now, run_at is a time)"
                    .into(),
            ));
        }
        (Some(d), None) if d > max_ahead_ms() => {
            return Err(invalid(format!(
                "delay_ms {d} is more than {days} days, the longest delay supported"
            )));
        }
        (Some(d), None) => Some(now.saturating_add(d)),
        (None, Some(text)) => {
            let at = parse("run_at", text)?;
            if at > now.saturating_add(max_ahead_ms()) {
                return Err(invalid(format!(
                    "run_at {text} is more than {days} days ahead, the longest delay supported"
                )));
            }
            Some(at)
        }
        (None, None) => None,
    };
    let expires_at = expires_at.map(|t| parse("expires_at", t)).transpose()?;
    Ok(Times { run_at, expires_at })
}

/// An RFC 3339 time as ms since the epoch. A time before the epoch is 1 ms, long
/// past but still a time: 0 means "none" to the store's scripts.
fn parse(field: &str, text: &str) -> Result<u64, ApiError> {
    let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        invalid(format!(
            "{field} {text:?} is not an RFC 3339 time such as 2026-12-01T12:00:00Z: {e}"
        ))
    })?;
    Ok(u64::try_from(at.timestamp_millis()).unwrap_or(0).max(1))
}

/// Fills in what the derived schema of a task request cannot say: the longest
/// `delay_ms` (rendered from the constant, never typed twice) and that `delay_ms`
/// and `run_at` exclude each other.
pub(super) fn describe(doc: &mut Value) {
    let Some(task) = doc
        .pointer_mut("/components/schemas/TaskRequest")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if let Some(delay) = task
        .get_mut("properties")
        .and_then(|p| p.get_mut("delay_ms"))
        .and_then(Value::as_object_mut)
    {
        delay.insert("maximum".into(), max_ahead_ms().into());
    }
    task.insert("not".into(), json!({ "required": ["delay_ms", "run_at"] }));
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_590_400_000; // 2025-12-01T12:00:00Z

    fn message(e: ApiError) -> String {
        format!("{e:?}")
    }

    #[test]
    fn a_delay_counts_from_now_and_a_time_is_taken_as_written() {
        let t = resolve(Some(1500), None, None, NOW).expect("valid");
        assert_eq!(t.run_at, Some(NOW + 1500));
        let t = resolve(
            None,
            Some("2025-12-01T13:00:00+01:00"),
            Some("2025-12-01T12:00:10.5Z"),
            NOW,
        )
        .expect("valid");
        assert_eq!(t.run_at, Some(NOW), "an offset is honoured");
        assert_eq!(t.expires_at, Some(NOW + 10_500));
        let t = resolve(None, Some("1969-01-01T00:00:00Z"), None, NOW).expect("past");
        assert_eq!(t.run_at, Some(1), "a time in the past runs now");
        let t = resolve(None, None, Some("1969-01-01T00:00:00Z"), NOW).expect("past");
        assert_eq!(t.expires_at, Some(1), "long expired, not never");
    }

    #[test]
    fn delay_and_run_at_together_are_refused_naming_both() {
        let e = message(
            resolve(Some(1), Some("2025-12-01T12:00:00Z"), None, NOW).expect_err("refused"),
        );
        assert!(e.contains("delay_ms") && e.contains("run_at"), "{e}");
    }

    #[test]
    fn too_far_ahead_and_unparsable_times_are_refused() {
        let e = message(resolve(Some(max_ahead_ms() + 1), None, None, NOW).expect_err("refused"));
        assert!(e.contains("delay_ms") && e.contains("45 days"), "{e}");
        assert!(resolve(Some(max_ahead_ms()), None, None, NOW).is_ok());
        let e =
            message(resolve(None, Some("2099-01-01T00:00:00Z"), None, NOW).expect_err("refused"));
        assert!(e.contains("run_at") && e.contains("45 days"), "{e}");
        let e = message(resolve(None, Some("tomorrow"), None, NOW).expect_err("refused"));
        assert!(e.contains("run_at") && e.contains("RFC 3339"), "{e}");
        let e = message(resolve(None, None, Some("2025-12-01 12:00"), NOW).expect_err("refused"));
        assert!(e.contains("expires_at"), "{e}");
    }

    #[test]
    fn the_document_bounds_delay_ms_and_excludes_it_with_run_at() {
        let mut doc = serde_json::to_value(super::super::doc::openapi(10)).expect("doc");
        describe(&mut doc);
        let task = &doc["components"]["schemas"]["TaskRequest"];
        assert_eq!(task["properties"]["delay_ms"]["maximum"], max_ahead_ms());
        assert_eq!(task["properties"]["run_at"]["format"], "date-time");
        assert_eq!(task["properties"]["expires_at"]["format"], "date-time");
        assert_eq!(task["not"], json!({ "required": ["delay_ms", "run_at"] }));
    }
}
