//! Helpers shared by the retry, dead-letter and redelivery tests: backoff policies,
//! the `taskfleet dead` commands, and real worker processes to kill.

use crate::Fleet;
use crate::logs::log_path;
use crate::process::{WorkerProcess, cli};
use serde_json::Value;
use std::time::Duration;
use taskfleet_common::config::{BackoffConfig, TypeConfig};
use taskfleet_common::{Config, TaskId};
use taskfleet_producer::EnqueueRequest;

pub fn backoff(initial_ms: u64, multiplier: f64, jitter: f64) -> BackoffConfig {
    BackoffConfig {
        initial: Duration::from_millis(initial_ms),
        multiplier,
        max: Duration::from_secs(30),
        jitter,
    }
}

/// `config` with `[types.NAME] backoff = ...`.
pub fn with_type_backoff(mut config: Config, task_type: &str, b: BackoffConfig) -> Config {
    config.types.insert(
        task_type.to_owned(),
        TypeConfig {
            backoff: Some(b),
            ..Default::default()
        },
    );
    config
}

pub async fn enqueue_with_attempts(
    fleet: &Fleet,
    task_type: &str,
    payload: &str,
    n: u32,
) -> TaskId {
    let mut req = EnqueueRequest::new(task_type, payload).expect("valid request");
    req.max_attempts = Some(n);
    fleet.producer.enqueue(&req).await.expect("enqueue").id
}

/// `taskfleet dead list --json`, parsed.
pub async fn dead_list(config: &Config) -> Vec<Value> {
    let (code, out, err) = cli(config, &["dead", "list", "--json"], None).await;
    assert_eq!(code, 0, "dead list failed: {err}");
    match serde_json::from_str(&out).expect("dead list --json prints JSON") {
        Value::Array(list) => list,
        other => panic!("dead list --json printed {other}"),
    }
}

pub fn entry_of<'a>(list: &'a [Value], id: &TaskId) -> Option<&'a Value> {
    list.iter().find(|e| e["id"] == id.to_string())
}

/// Starts a `taskfleet-worker` process and waits until it consumes `task_type`.
pub async fn start_worker_process(
    fleet: &Fleet,
    task_type: &str,
    extra: &[&str],
    name: &str,
    consumers: u32,
) -> WorkerProcess {
    let mut args = vec!["--types", task_type];
    args.extend_from_slice(extra);
    let w = WorkerProcess::start(&fleet.config, &args, &log_path(&fleet.config, name)).await;
    fleet.wait_for_consumers(task_type, consumers).await;
    w
}

/// `kill -9`, then waits until the process is gone and RabbitMQ saw its consumer go.
pub async fn kill_9(fleet: &Fleet, mut w: WorkerProcess, task_type: &str) {
    w.kill().await;
    fleet.wait_for_no_consumers(task_type).await;
}
