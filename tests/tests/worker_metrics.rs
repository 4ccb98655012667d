//! A worker process serves Prometheus metrics, among them the cancel latency histogram.

use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_tests::logs::log_path;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, eventually, free_port, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// The value of the first sample line starting with `name`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_latency_and_task_counts_are_exported() {
    let port = free_port().await;
    let addr = format!("127.0.0.1:{port}");
    let mut config = test_config();
    config.worker.metrics_listen = Some(addr.clone());
    let fleet = Fleet::with_config(config).await;
    let log = log_path(&fleet.config, "worker");
    let _worker = WorkerProcess::start(&fleet.config, &[], &log).await;
    fleet.wait_for_consumers("sleep", 1).await;

    let done = fleet.enqueue("echo", "1").await;
    fleet
        .wait_for_state(&done, TaskState::Completed, Duration::from_secs(10))
        .await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    fleet.producer.cancel(&id).await.expect("cancel");
    fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
        .await;

    let text = eventually(Duration::from_secs(10), "metrics served", || async {
        scrape(&addr)
            .await
            .filter(|t| t.contains("taskfleet_cancel_latency_seconds_count"))
    })
    .await;
    assert_eq!(
        sample(&text, "taskfleet_cancel_latency_seconds_count"),
        Some(1.0),
        "{text}"
    );
    let seconds = sample(&text, "taskfleet_cancel_latency_seconds_sum").expect("sum");
    assert!(seconds < 1.0, "cancel took {seconds}s");
    assert!(
        text.lines().any(|l| l.starts_with("taskfleet_tasks_total")
            && l.contains("outcome=\"completed\"")
            && l.ends_with(" 1")),
        "{text}"
    );
    fleet.teardown().await;
}
