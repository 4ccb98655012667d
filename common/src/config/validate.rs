//! The checks of a loaded configuration that serde cannot express; each error names
//! the key. Durations are bounded too, so no arithmetic on them can overflow.

use super::{BackoffConfig, Config, ConfigError};
use crate::ids::TaskType;
use std::time::Duration;

/// Longest accepted duration of any setting but `retention`: far beyond any real
/// use, and small enough that the code's sums and multiples of durations never
/// overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest accepted `retention`.
pub const MAX_RETENTION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

impl Config {
    /// Checks that serde cannot express; each error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                problem: problem.to_owned(),
            })
        };
        for (key, d) in self.durations() {
            let max = if key == "retention" {
                MAX_RETENTION
            } else {
                MAX_DURATION
            };
            if d > max {
                return invalid(
                    &key,
                    &format!("must be at most {} days", max.as_secs() / 86_400),
                );
            }
        }
        if self.payload_limit == 0 {
            return invalid("payload_limit", "must be greater than 0");
        }
        if let Some(ca) = &self.tls_ca_file
            && !ca.is_file()
        {
            return invalid(
                "tls_ca_file",
                &format!("{} is not a readable file", ca.display()),
            );
        }
        self.http.validate()?;
        self.alerts.validate()?;
        if self.network_timeout.is_zero() {
            return invalid("network_timeout", "must be greater than 0");
        }
        if self.worker.concurrency == 0 || self.worker.concurrency > 10_000 {
            return invalid("worker.concurrency", "must be between 1 and 10000");
        }
        if self.worker.heartbeat_interval.is_zero() {
            return invalid("worker.heartbeat_interval", "must be greater than 0");
        }
        if self.worker.lease <= self.worker.heartbeat_interval {
            return invalid(
                "worker.lease",
                "must be longer than worker.heartbeat_interval",
            );
        }
        if self.worker.park_after.is_zero() {
            return invalid("worker.park_after", "must be greater than 0");
        }
        validate_type_defaults(
            "defaults",
            self.defaults.max_attempts,
            self.defaults.priority,
            &self.defaults.backoff,
        )?;
        self.parsed_schedules()?;
        for (name, t) in &self.types {
            let key = format!("types.{name}");
            if name.parse::<TaskType>().is_err() {
                return invalid(
                    &key,
                    "is not a valid task type name ([a-z0-9][a-z0-9._-]{0,63})",
                );
            }
            if let Some(exec) = &t.exec
                && exec.first().is_none_or(|p| p.is_empty())
            {
                return invalid(&format!("{key}.exec"), "must name a program");
            }
            validate_flow(&key, t)?;
            let settings = self.type_settings_by_name(name);
            validate_type_defaults(
                &key,
                settings.max_attempts,
                settings.priority,
                &settings.backoff,
            )?;
        }
        if let Some(addr) = &self.worker.metrics_listen
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid(
                "worker.metrics_listen",
                "must be an address such as 127.0.0.1:9464",
            );
        }
        for t in &self.worker.types {
            if t.parse::<TaskType>().is_err() {
                return invalid(
                    "worker.types",
                    &format!("{t:?} is not a valid task type name"),
                );
            }
        }
        Ok(())
    }
}

/// `rate_limit` parses; a cap, when set, is at least 1 (a zero cap would stop the
/// type for good: `taskfleet pause` is the way to stop it).
fn validate_flow(key: &str, t: &super::TypeConfig) -> Result<(), ConfigError> {
    let invalid = |sub: &str, problem: String| {
        Err(ConfigError::Invalid {
            key: format!("{key}.{sub}"),
            problem,
        })
    };
    if let Some(rate) = &t.rate_limit
        && let Err(problem) = rate.parse::<crate::flow::RateLimit>()
    {
        return invalid("rate_limit", format!("{rate:?} {problem}"));
    }
    for (sub, cap) in [
        ("max_running", t.max_running),
        ("group_max_running", t.group_max_running),
    ] {
        if cap.is_some_and(|n| n == 0 || n > 100_000) {
            return invalid(
                sub,
                "must be between 1 and 100000 (pause the type to stop it)".into(),
            );
        }
    }
    Ok(())
}

pub(super) fn validate_type_defaults(
    key: &str,
    max_attempts: u32,
    priority: u8,
    b: &BackoffConfig,
) -> Result<(), ConfigError> {
    let invalid = |sub: &str, problem: &str| {
        Err(ConfigError::Invalid {
            key: format!("{key}.{sub}"),
            problem: problem.to_owned(),
        })
    };
    if max_attempts == 0 || max_attempts > 100 {
        return invalid("max_attempts", "must be between 1 and 100");
    }
    if priority > 9 {
        return invalid("priority", "must be between 0 and 9");
    }
    if b.multiplier < 1.0 || !b.multiplier.is_finite() {
        return invalid("backoff.multiplier", "must be at least 1.0");
    }
    if !(0.0..=1.0).contains(&b.jitter) {
        return invalid("backoff.jitter", "must be between 0.0 and 1.0");
    }
    if b.max < b.initial {
        return invalid("backoff.max", "must not be shorter than backoff.initial");
    }
    Ok(())
}

impl Config {
    /// Every duration setting with its key.
    fn durations(&self) -> Vec<(String, Duration)> {
        let w = &self.worker;
        let mut all = vec![
            ("retention".to_owned(), self.retention),
            ("network_timeout".to_owned(), self.network_timeout),
            ("worker.heartbeat_interval".to_owned(), w.heartbeat_interval),
            ("worker.lease".to_owned(), w.lease),
            ("worker.cancel_grace".to_owned(), w.cancel_grace),
            ("worker.drain_grace".to_owned(), w.drain_grace),
            ("worker.park_after".to_owned(), w.park_after),
        ];
        let backoff = |key: &str, b: &BackoffConfig| {
            [
                (format!("{key}.backoff.initial"), b.initial),
                (format!("{key}.backoff.max"), b.max),
            ]
        };
        all.push(("defaults.timeout".to_owned(), self.defaults.timeout));
        all.extend(backoff("defaults", &self.defaults.backoff));
        for (name, t) in &self.types {
            if let Some(d) = t.timeout {
                all.push((format!("types.{name}.timeout"), d));
            }
            if let Some(b) = &t.backoff {
                all.extend(backoff(&format!("types.{name}"), b));
            }
        }
        all
    }
}
