//! Issue 14: the Prometheus scrape config and the provisioned Grafana dashboard of
//! compose/ parse, and every metric the dashboard queries is exported by a live
//! worker process or the API's `/metrics` (no container runtime runs here, so the
//! files are checked, not run).

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::logs::log_path;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::webhook::Receiver;
use taskfleet_tests::{Fleet, eventually, free_port, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn compose_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compose")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `taskfleet_*` metric name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("taskfleet_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The `expr` of every target of every panel (rows' nested panels too).
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(e)) = m.get("expr") {
                out.push(e.clone());
            }
            m.values().for_each(|x| exprs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, out)),
        _ => {}
    }
}

/// The sample names of a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

async fn scrape(addr: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out.split_once("\r\n\r\n")?.1.to_owned())
}

#[test]
fn the_prometheus_config_scrapes_the_ports_compose_opens() {
    let prom = compose_file("prometheus.yml");
    let compose = compose_file("docker-compose.yml");
    for job in ["job_name: taskfleet-worker", "job_name: taskfleet-api"] {
        assert!(prom.contains(job), "prometheus.yml lacks {job}");
    }
    assert!(prom.contains("names: [\"worker\"]") && prom.contains("port: 9464"));
    assert!(compose.contains("TASKFLEET_WORKER__METRICS_LISTEN: 0.0.0.0:9464"));
    assert!(prom.contains("targets: [\"api:8080\"]") && compose.contains("0.0.0.0:8080"));
    // The API's /metrics needs a token: the one compose gives the API.
    let token = prom
        .lines()
        .find_map(|l| l.trim().strip_prefix("credentials: "))
        .expect("a bearer credential for the API");
    assert!(compose.contains(&format!("TASKFLEET_HTTP__TOKENS: {token}")));
    assert!(compose.contains("./prometheus.yml:/etc/prometheus/prometheus.yml"));
    let provider = compose_file("grafana/provisioning/dashboards/taskfleet.yml");
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));
    assert!(compose.contains("./grafana/dashboards:/var/lib/grafana/dashboards"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_is_exported() {
    let dashboard: Value =
        serde_json::from_str(&compose_file("grafana/dashboards/taskfleet.json")).expect("JSON");
    assert_eq!(dashboard["uid"], "taskfleet");
    let mut all = Vec::new();
    exprs(&dashboard["panels"], &mut all);
    let referenced: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    assert!(referenced.len() >= 8, "{referenced:?}");

    // A worker process (alerts on, so their counters exist) and the API.
    let receiver = Receiver::start().await;
    let port = free_port().await;
    let worker_addr = format!("127.0.0.1:{port}");
    let mut config = test_config();
    config.worker.metrics_listen = Some(worker_addr.clone());
    let fleet = Fleet::with_config(config).await;
    let log = log_path(&fleet.config, "worker");
    let url = receiver.url();
    let _worker = WorkerProcess::start_with_env(
        &fleet.config,
        &[],
        &log,
        &[
            ("TASKFLEET_ALERTS__WEBHOOK", url.as_str()),
            ("TASKFLEET_ALERTS__SECRET", "observability-test-secret"),
        ],
    )
    .await;
    fleet.wait_for_consumers("sleep", 1).await;
    let done = fleet.enqueue("echo", "1").await;
    let mut failing = EnqueueRequest::new("flaky", r#"{"fail_times":9}"#).expect("valid");
    failing.max_attempts = Some(2);
    let failed = fleet.producer.enqueue(&failing).await.expect("enqueue").id;
    let sleeper = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&done, TaskState::Completed, Duration::from_secs(10))
        .await;
    fleet
        .wait_for_state(&failed, TaskState::Failed, Duration::from_secs(15))
        .await;
    fleet
        .wait_for_state(&sleeper, TaskState::Running, Duration::from_secs(10))
        .await;
    fleet.producer.cancel(&sleeper).await.expect("cancel");
    fleet
        .wait_for_state(&sleeper, TaskState::Cancelled, Duration::from_secs(10))
        .await;

    let worker = eventually(Duration::from_secs(10), "worker metrics", || async {
        scrape(&worker_addr)
            .await
            .filter(|t| t.contains("taskfleet_cancel_latency_seconds"))
    })
    .await;
    let (api_addr, stop) = taskfleet_tests::http::serve(&fleet).await;
    let api = eventually(Duration::from_secs(10), "API metrics", || async {
        scrape(&api_addr.to_string())
            .await
            .filter(|t| t.contains("taskfleet_queue_depth"))
    })
    .await;
    let mut names = exported(&worker);
    names.extend(exported(&api));
    let missing: Vec<&String> = referenced.iter().filter(|m| !names.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard queries metrics nobody exports: {missing:?}\nexported: {names:?}"
    );
    assert!(
        api.lines()
            .any(|l| l.starts_with("taskfleet_queue_depth{") && l.contains("type=\"echo\"")),
        "queue depth per type: {api}"
    );
    stop.cancel();
    fleet.teardown().await;
}
