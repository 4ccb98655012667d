//! One typed configuration, loaded once in `main`: built-in defaults → optional TOML
//! file → `TASKFLEET_*` environment → command-line flags (applied by the binaries).
//!
//! Nested keys use `__` in the environment: `TASKFLEET_WORKER__CONCURRENCY=32`.

mod alerts;
mod http;

pub use alerts::AlertsConfig;
pub use http::HttpConfig;

use crate::ids::{Namespace, TaskType};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `Debug` is written by hand so passwords in URLs and HTTP tokens never reach a log.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub namespace: Namespace,
    pub amqp_url: String,
    pub redis_url: String,
    /// A PEM file of the private CA that `amqps://` and `rediss://` connections trust
    /// besides the system roots (env `TASKFLEET_TLS_CA_FILE`).
    pub tls_ca_file: Option<PathBuf>,
    /// Largest accepted payload, in bytes (the envelope around it is not counted).
    pub payload_limit: usize,
    /// Largest stored result, in bytes; longer results are truncated with a marker.
    pub result_limit: usize,
    /// How long records of finished tasks (and idempotency keys) are kept.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Bound on every single network call (connect, command, publish confirm).
    #[serde(with = "humantime_serde")]
    pub network_timeout: Duration,
    pub queue_type: QueueType,
    /// A message redelivered more often than this (crashing its worker each time)
    /// is poison: it goes to the dead-letter queue instead of looping forever.
    pub max_redeliveries: u32,
    /// Defaults for every task type; `types.NAME` overrides them.
    pub defaults: TypeDefaults,
    pub types: BTreeMap<String, TypeConfig>,
    pub worker: WorkerConfig,
    pub http: HttpConfig,
    /// `[alerts]`: webhooks told of final failures and dead letters.
    pub alerts: AlertsConfig,
    pub log_format: LogFormat,
    /// `[schedules.NAME]`: tasks enqueued on a cron or interval schedule.
    pub schedules: BTreeMap<String, ScheduleConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            namespace: Namespace::default(),
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned(),
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            tls_ca_file: None,
            payload_limit: 1024 * 1024,
            result_limit: 256 * 1024,
            retention: Duration::from_secs(24 * 3600),
            network_timeout: Duration::from_secs(5),
            queue_type: QueueType::Classic,
            max_redeliveries: 5,
            defaults: TypeDefaults::default(),
            types: BTreeMap::new(),
            worker: WorkerConfig::default(),
            http: HttpConfig::default(),
            alerts: AlertsConfig::default(),
            log_format: LogFormat::Human,
            schedules: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Supports priorities (`x-max-priority` 9).
    Classic,
    /// Replicated; RabbitMQ 3.10 quorum queues ignore priorities.
    Quorum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TypeDefaults {
    pub max_attempts: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub priority: u8,
    pub backoff: BackoffConfig,
}

impl Default for TypeDefaults {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            timeout: Duration::from_secs(300),
            priority: 0,
            backoff: BackoffConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    pub multiplier: f64,
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Fraction of the delay randomised either way (0.1 = ±10 %).
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.1,
        }
    }
}

/// `[types.NAME]`: every field optional, falling back to `defaults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TypeConfig {
    /// Program and arguments run once per attempt (no shell).
    pub exec: Option<Vec<String>>,
    pub max_attempts: Option<u32>,
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    pub priority: Option<u8>,
    pub backoff: Option<BackoffConfig>,
    /// Fleet-wide starts per period: `"20/s"`, `"100/m"`, `"5/h"`, `"20/s burst 5"`.
    pub rate_limit: Option<String>,
    /// Fleet-wide running tasks of this type at once.
    pub max_running: Option<u32>,
    /// Fleet-wide running tasks of this type per `--group` key at once.
    pub group_max_running: Option<u32>,
}

/// The effective settings of one task type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSettings {
    pub max_attempts: u32,
    pub timeout: Duration,
    pub priority: u8,
    pub backoff: BackoffConfig,
    /// Fleet-wide limits (docs/flow-control.md); checked when the config is loaded.
    pub flow: crate::flow::FlowLimits,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Task types to consume; empty means every built-in and configured type.
    pub types: Vec<String>,
    pub concurrency: usize,
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// A running task whose worker has not beaten for this long is taken over.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Time a cancelled or timed-out handler gets to stop before it is aborted.
    #[serde(with = "humantime_serde")]
    pub cancel_grace: Duration,
    /// Time in-flight tasks get to finish on SIGTERM before they are handed back.
    #[serde(with = "humantime_serde")]
    pub drain_grace: Duration,
    /// Largest stdout or stderr kept from an exec program, in bytes.
    pub exec_output_limit: usize,
    /// Where the worker serves Prometheus metrics (`GET /metrics`); none by default.
    pub metrics_listen: Option<String>,
    /// A delivery still running after this long is parked: a confirmed copy waits in
    /// a broker-held check-back delay and the delivery is acknowledged, so no
    /// delivery stays unacknowledged past RabbitMQ's `consumer_timeout` (30 min by
    /// default; keep this well under the broker's value).
    #[serde(with = "humantime_serde")]
    pub park_after: Duration,
}

impl WorkerConfig {
    /// How long a parked copy waits before it checks on its run: long enough to cost
    /// little, short enough that a parked run whose worker died is taken over soon
    /// after its lease expires.
    pub fn park_check_back(&self) -> Duration {
        self.lease * 3
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            types: Vec::new(),
            concurrency: 16,
            heartbeat_interval: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            cancel_grace: Duration::from_secs(10),
            drain_grace: Duration::from_secs(30),
            exec_output_limit: 1024 * 1024,
            metrics_listen: None,
            park_after: Duration::from_secs(10 * 60),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("namespace", &self.namespace)
            .field("amqp_url", &crate::redact_url(&self.amqp_url))
            .field("redis_url", &crate::redact_url(&self.redis_url))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("payload_limit", &self.payload_limit)
            .field("result_limit", &self.result_limit)
            .field("retention", &self.retention)
            .field("network_timeout", &self.network_timeout)
            .field("queue_type", &self.queue_type)
            .field("max_redeliveries", &self.max_redeliveries)
            .field("defaults", &self.defaults)
            .field("types", &self.types)
            .field("worker", &self.worker)
            .field("http", &self.http)
            .field("alerts", &self.alerts)
            .field("log_format", &self.log_format)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key {key}: {problem}")]
    Invalid { key: String, problem: String },
}

impl Config {
    /// Defaults → `file` (if given) → `TASKFLEET_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Defaults → `file` → the `TASKFLEET_*` variables among `env`. Variables whose
    /// first part names no setting (`TASKFLEET_CONFIG`, a script's own flags) are not
    /// configuration and are left alone; a wrong nested key is still refused.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let defaults = config::Config::try_from(&Config::default())?;
        let top_level: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        };
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| {
                k.strip_prefix("TASKFLEET_")
                    .map(|rest| rest.split("__").next().unwrap_or("").to_ascii_lowercase())
                    .is_some_and(|first| top_level.contains(&first))
            })
            .collect();
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            builder = builder.add_source(
                config::File::from(path)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix("TASKFLEET")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("worker.types")
                .with_list_parse_key("http.tokens")
                .with_list_parse_key("alerts.webhook")
                .try_parsing(true)
                .source(Some(env)),
        );
        let cfg: Config = builder.build()?.try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The effective settings of a task type: its `[types.NAME]` over `defaults`.
    pub fn type_settings(&self, task_type: &TaskType) -> TypeSettings {
        self.type_settings_by_name(task_type.as_str())
    }

    pub(crate) fn type_settings_by_name(&self, name: &str) -> TypeSettings {
        let t = self.types.get(name);
        let d = &self.defaults;
        TypeSettings {
            max_attempts: t.and_then(|t| t.max_attempts).unwrap_or(d.max_attempts),
            timeout: t.and_then(|t| t.timeout).unwrap_or(d.timeout),
            priority: t.and_then(|t| t.priority).unwrap_or(d.priority),
            backoff: t.and_then(|t| t.backoff).unwrap_or(d.backoff),
            // `validate` refused an unparsable rate, so none is dropped here.
            flow: crate::flow::FlowLimits {
                rate: t
                    .and_then(|t| t.rate_limit.as_deref())
                    .and_then(|r| r.parse().ok()),
                max_running: t.and_then(|t| t.max_running),
                group_max_running: t.and_then(|t| t.group_max_running),
            },
        }
    }
}

mod validate;

/// Every `[schedules.NAME]`, checked and parsed.
impl Config {
    pub fn parsed_schedules(&self) -> Result<Vec<Schedule>, ConfigError> {
        self.schedules
            .iter()
            .map(|(name, s)| s.parse(name))
            .collect()
    }
}

mod schedules;
pub use schedules::{CatchUp, Schedule, ScheduleConfig, Timing};

#[cfg(test)]
mod tests;
