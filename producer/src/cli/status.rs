//! `taskfleet status ID` in its human form: the fields in the order a reader asks
//! about them (what, where it stands, when, what came out, the internals), times as
//! UTC timestamps with their age, and how long the task was queued and ran. `--json`
//! prints the record as stored instead (docs/cli.md "status").

use std::time::{Duration, UNIX_EPOCH};
use taskfleet_common::store::TaskRecord;

/// Field order of the human form; fields not listed follow, alphabetically.
const ORDER: [&str; 27] = [
    "id",
    "type",
    "state",
    "reason",
    "attempt",
    "priority",
    "worker",
    "progress",
    "error",
    "created_at",
    "run_at",
    "expires_at",
    "after",
    "dependents",
    "started_at",
    "finished_at",
    "next_attempt_at",
    "cancel_requested_at",
    "updated_at",
    "result",
    "payload",
    "checkpoint",
    "trace_id",
    "deliveries",
    "fence",
    "max_attempts",
    "progress_message",
];

/// The record as `status` prints it; `now` is the Redis server clock (ms), the
/// clock every timestamp in the record was taken from.
pub fn render(record: &TaskRecord, now: u64) -> String {
    let mut lines: Vec<(String, String)> = Vec::new();
    let get = |k: &str| record.get(k);
    let ms = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    for key in ORDER {
        let Some(value) = get(key) else { continue };
        match key {
            // Shown with `attempt` and `progress`.
            "max_attempts" | "progress_message" => continue,
            "attempt" => {
                let of = get("max_attempts").map_or(String::new(), |m| format!(" of {m}"));
                lines.push((key.into(), format!("{value}{of}")));
            }
            "progress" => {
                let msg = get("progress_message").map_or(String::new(), |m| format!(" {m}"));
                lines.push((key.into(), format!("{value}%{msg}")));
            }
            _ if is_time(key) => {
                let Some(at) = ms(key) else {
                    lines.push((key.into(), value.into()));
                    continue;
                };
                lines.push((key.into(), format!("{}  ({})", utc(at), relative(at, now))));
                if key == "created_at" {
                    push_duration(&mut lines, "queued for", at, ms("started_at"), now);
                }
                if key == "started_at" {
                    let end = ms("finished_at").or(match get("state") {
                        Some("running" | "cancelling") => None,
                        _ => ms("updated_at"),
                    });
                    push_duration(&mut lines, "ran for", at, end, now);
                }
            }
            _ => lines.push((key.into(), value.into())),
        }
    }
    for (k, v) in &record.fields {
        if !ORDER.contains(&k.as_str()) {
            lines.push((k.clone(), v.clone()));
        }
    }
    lines
        .iter()
        .map(|(k, v)| format!("{k:<20} {v}\n"))
        .collect()
}

fn is_time(key: &str) -> bool {
    key.ends_with("_at")
}

/// `from` until `to`, or until `now` ("so far") when `to` has not happened yet.
fn push_duration(
    lines: &mut Vec<(String, String)>,
    label: &str,
    from: u64,
    to: Option<u64>,
    now: u64,
) {
    let text = match to {
        Some(to) => span(to.saturating_sub(from)),
        None => format!("{} so far", span(now.saturating_sub(from))),
    };
    lines.push((label.into(), text));
}

/// `2026-12-01T10:00:00.123Z`.
pub fn utc(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `3m 2s ago` or `in 4.0s`.
fn relative(at: u64, now: u64) -> String {
    if at <= now {
        format!("{} ago", span(now - at))
    } else {
        format!("in {}", span(at - now))
    }
}

/// A duration as people read it: `350ms`, `4.2s`, `3m 2s`, `2h 5m`.
pub fn span(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn record(fields: &[(&str, &str)]) -> TaskRecord {
        TaskRecord {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_finished_task_shows_times_queued_and_ran_for() {
        let r = record(&[
            ("id", "01934f9e-7a3b-7c00-8000-000000000000"),
            ("type", "echo"),
            ("state", "completed"),
            ("attempt", "1"),
            ("max_attempts", "5"),
            ("created_at", "1764583200000"),
            ("started_at", "1764583201500"),
            ("finished_at", "1764583201850"),
            ("updated_at", "1764583201850"),
            ("result", "{}"),
            ("fence", "42"),
        ]);
        let out = render(&r, 1764583261850);
        let keys: Vec<&str> = out
            .lines()
            .map(|l| l.split("  ").next().unwrap_or("").trim())
            .collect();
        assert_eq!(
            keys,
            [
                "id",
                "type",
                "state",
                "attempt",
                "created_at",
                "queued for",
                "started_at",
                "ran for",
                "finished_at",
                "updated_at",
                "result",
                "fence"
            ],
            "{out}"
        );
        assert!(out.contains("attempt              1 of 5"), "{out}");
        assert!(
            out.contains("created_at           2025-12-01T10:00:00.000Z  (1m 1s ago)"),
            "{out}"
        );
        assert!(out.contains("queued for           1.5s"), "{out}");
        assert!(out.contains("ran for              350ms"), "{out}");
    }

    #[test]
    fn a_running_task_has_run_so_far_and_a_pending_one_is_still_queued() {
        let running = record(&[
            ("state", "running"),
            ("created_at", "1000"),
            ("started_at", "2000"),
            ("updated_at", "2000"),
        ]);
        assert!(render(&running, 5000).contains("ran for              3.0s so far"));
        let pending = record(&[("state", "pending"), ("created_at", "1000")]);
        let out = render(&pending, 3_601_000);
        assert!(out.contains("queued for           1h 0m so far"), "{out}");
        assert!(!out.contains("ran for"), "{out}");
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(0), "0ms");
        assert_eq!(span(999), "999ms");
        assert_eq!(span(4_200), "4.2s");
        assert_eq!(span(182_000), "3m 2s");
        assert_eq!(span(7_500_000), "2h 5m");
    }
}
