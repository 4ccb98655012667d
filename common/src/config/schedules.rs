//! `[schedules.NAME]`: tasks enqueued on a cron or interval schedule, fired by the
//! workers' elected scheduler (worker/src/scheduler.rs), once per tick fleet-wide.

use super::ConfigError;
use crate::ids::TaskType;
use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default = "empty_object")]
    pub payload: serde_json::Value,
    /// 5 fields, or 6 with seconds first.
    pub cron: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// IANA name of the zone `cron` is read in (default UTC).
    pub timezone: Option<String>,
    #[serde(default)]
    pub catch_up: CatchUp,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// What a scheduler that takes over does with ticks missed while none ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Skip them: the next tick is the next one from now.
    #[default]
    None,
    /// Fire the latest missed tick once, then go on from now.
    One,
}

/// When a schedule fires, parsed once.
#[derive(Debug, Clone)]
pub enum Timing {
    Every(Duration),
    Cron(Box<Cron>, chrono_tz::Tz),
}

/// A schedule ready to fire: its name, task and timing.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub task_type: TaskType,
    pub payload: String,
    pub timing: Timing,
    pub catch_up: CatchUp,
}

impl Timing {
    /// The first tick strictly after `after_ms` (ms since the epoch).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Timing::Every(d) => {
                let every = (d.as_millis() as u64).max(1);
                Some((after_ms / every + 1) * every)
            }
            Timing::Cron(cron, tz) => {
                let after: DateTime<Utc> = DateTime::from_timestamp_millis(after_ms as i64)?;
                let local = tz.from_utc_datetime(&after.naive_utc());
                let next = cron.find_next_occurrence(&local, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }

    /// As `{ns}:schedule:{name}` shows it.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            Timing::Every(d) => ("every", humantime::format_duration(*d).to_string()),
            Timing::Cron(c, _) => ("cron", c.pattern.to_string()),
        }
    }
}

impl ScheduleConfig {
    /// Checks and parses; every error names `schedules.NAME.<key>`.
    pub fn parse(&self, name: &str) -> Result<Schedule, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            key: format!("schedules.{name}{key}"),
            problem,
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(
                "",
                "a schedule name is letters, digits, '.', '_' or '-'".into(),
            ));
        }
        let task_type: TaskType = self
            .task_type
            .parse()
            .map_err(|e| invalid(".type", format!("{e}")))?;
        let tz: chrono_tz::Tz = match &self.timezone {
            None => chrono_tz::UTC,
            Some(z) => z.parse().map_err(|_| {
                invalid(
                    ".timezone",
                    format!("{z:?} is not an IANA time zone (e.g. Europe/Paris)"),
                )
            })?,
        };
        let timing = match (&self.cron, self.every) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(invalid("", "needs exactly one of `cron` or `every`".into()));
            }
            (None, Some(d)) if d < Duration::from_millis(100) => {
                return Err(invalid(".every", "must be at least 100ms".into()));
            }
            (None, Some(d)) => {
                if self.timezone.is_some() {
                    return Err(invalid(".timezone", "applies to `cron` only".into()));
                }
                Timing::Every(d)
            }
            (Some(expr), None) => {
                let fields = expr.split_whitespace().count();
                if !(5..=6).contains(&fields) {
                    return Err(invalid(
                        ".cron",
                        format!("{expr:?} has {fields} fields; use 5, or 6 with seconds first"),
                    ));
                }
                let cron = CronParser::builder()
                    .seconds(Seconds::Optional)
                    .build()
                    .parse(expr)
                    .map_err(|e| invalid(".cron", format!("{expr:?}: {e}")))?;
                Timing::Cron(Box::new(cron), tz)
            }
        };
        Ok(Schedule {
            name: name.to_owned(),
            task_type,
            payload: self.payload.to_string(),
            timing,
            catch_up: self.catch_up,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cron: Option<&str>, every: Option<u64>, tz: Option<&str>) -> ScheduleConfig {
        ScheduleConfig {
            task_type: "echo".into(),
            payload: empty_object(),
            cron: cron.map(str::to_owned),
            every: every.map(Duration::from_millis),
            timezone: tz.map(str::to_owned),
            catch_up: CatchUp::None,
        }
    }

    #[test]
    fn every_ticks_on_multiples_of_its_period() {
        let s = cfg(None, Some(1000), None).parse("s").expect("valid");
        assert_eq!(s.timing.next_after(12_345), Some(13_000));
        assert_eq!(s.timing.next_after(13_000), Some(14_000));
    }

    #[test]
    fn cron_with_five_or_six_fields_and_a_zone() {
        let s = cfg(Some("*/5 * * * *"), None, None)
            .parse("s")
            .expect("valid");
        // 2026-12-01T12:01:00Z -> 12:05:00Z
        assert_eq!(
            s.timing.next_after(1_796_126_460_000),
            Some(1_796_126_700_000)
        );
        let s = cfg(Some("*/10 * * * * *"), None, None)
            .parse("s")
            .expect("valid");
        assert_eq!(
            s.timing.next_after(1_796_126_461_000),
            Some(1_796_126_470_000)
        );
        // 09:00 in Paris is 08:00Z in winter.
        let s = cfg(Some("0 9 * * *"), None, Some("Europe/Paris"))
            .parse("s")
            .expect("valid");
        let next = s.timing.next_after(1_796_126_460_000).expect("next");
        assert_eq!(next % 86_400_000, 8 * 3_600_000);
    }

    #[test]
    fn bad_schedules_name_their_key() {
        let cases = [
            (cfg(Some("not a cron"), None, None), "schedules.s.cron"),
            (cfg(Some("* * *"), None, None), "schedules.s.cron"),
            (cfg(None, None, None), "schedules.s"),
            (cfg(Some("* * * * *"), Some(1000), None), "schedules.s"),
            (cfg(None, Some(10), None), "schedules.s.every"),
            (
                cfg(Some("* * * * *"), None, Some("Mars/Olympus")),
                "schedules.s.timezone",
            ),
        ];
        for (c, key) in cases {
            let e = c.parse("s").expect_err("invalid");
            assert!(e.to_string().contains(key), "{e} should name {key}");
        }
        let mut bad_type = cfg(None, Some(1000), None);
        bad_type.task_type = "Bad Type".into();
        assert!(
            bad_type
                .parse("s")
                .expect_err("invalid")
                .to_string()
                .contains("schedules.s.type")
        );
    }
}
