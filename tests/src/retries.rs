//! Helpers shared by the retry, dead-letter and redelivery tests: backoff policies,
//! the `taskfleet dead` commands, real worker processes to kill, and a cleanup that
//! also removes the delay queues a test declared.

use crate::process::WorkerProcess;
use crate::{Fleet, amqp, eventually};
use lapin::options::QueueDeleteOptions;
use nix::sys::signal::Signal;
use serde_json::Value;
use std::path::PathBuf;
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

/// Runs `taskfleet ARGS` off the async threads: (exit code, stdout, stderr).
pub async fn cli(config: &Config, args: &[&str]) -> (i32, String, String) {
    let config = config.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::process::cli(&config, &args, None)
    })
    .await
    .expect("cli thread")
}

/// `taskfleet dead list --json`, parsed.
pub async fn dead_list(config: &Config) -> Vec<Value> {
    let (code, out, err) = cli(config, &["dead", "list", "--json"]).await;
    assert_eq!(code, 0, "dead list failed: {err}");
    match serde_json::from_str(&out).expect("dead list --json prints JSON") {
        Value::Array(list) => list,
        other => panic!("dead list --json printed {other}"),
    }
}

pub fn entry_of<'a>(list: &'a [Value], id: &TaskId) -> Option<&'a Value> {
    list.iter().find(|e| e["id"] == id.to_string())
}

pub async fn unacked(queue: &str) -> Option<u64> {
    let queue = queue.to_owned();
    tokio::task::spawn_blocking(move || crate::process::unacked(&queue))
        .await
        .expect("rabbitmqctl thread")
}

/// Delay queues delete themselves (`x-expires`) a minute after use; a test removes
/// the ones its namespace declared at once.
async fn delete_delay_queues(config: &Config) {
    let prefix = format!("{}.delay.", config.namespace);
    let names: Vec<String> = tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "--no-table-headers", "name"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.lines()
            .map(str::trim)
            .filter(|l| l.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    })
    .await
    .unwrap_or_default();
    let (conn, ch) = amqp::channel(&config.amqp_url).await;
    for q in names {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
}

pub async fn finish(fleet: Fleet) {
    let config = fleet.config.clone();
    fleet.teardown().await;
    delete_delay_queues(&config).await;
    // Worker logs and config files of a passing test (see `log_path`).
    let prefix = format!("{}-", config.namespace);
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for f in dir.flatten() {
            if f.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
}

pub fn log_path(config: &Config, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}.log", config.namespace))
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
    let w = WorkerProcess::start(&fleet.config, &args, &log_path(&fleet.config, name));
    fleet.wait_for_consumers(task_type, consumers).await;
    w
}

/// `kill -9`, then waits until the process is gone and RabbitMQ saw its consumer go.
pub async fn kill_9(fleet: &Fleet, mut w: WorkerProcess, task_type: &str) {
    w.signal(Signal::SIGKILL);
    eventually(Duration::from_secs(5), "worker process exits", || {
        let exited = w.try_exit().is_some();
        async move { exited.then_some(()) }
    })
    .await;
    let queue = fleet.names().queue(&task_type.parse().expect("type"));
    let url = fleet.config.amqp_url.clone();
    eventually(
        Duration::from_secs(10),
        "RabbitMQ notices the dead consumer",
        || async {
            amqp::queue_depth(&url, &queue)
                .await
                .filter(|(_, c)| *c == 0)
                .map(|_| ())
        },
    )
    .await;
}

pub fn field_u64(r: &taskfleet_common::store::TaskRecord, field: &str) -> u64 {
    r.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("record has no numeric {field}: {:?}", r.fields))
}
