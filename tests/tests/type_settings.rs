//! Issue 10: a type's settings live in the workers' configuration and hold
//! fleet-wide, whoever enqueued; workers declare them in `{ns}:type:{type}`.

use serde_json::Value;
use std::time::Duration;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::process::{WorkerProcess, cli};
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, eventually};

/// A worker configured with `[types.slow] timeout = "1s"`, `max_attempts = 1`.
async fn slow_worker(fleet: &Fleet, scratch: &Scratch) -> WorkerProcess {
    let config_file = scratch
        .write(
            "worker.toml",
            "[types.slow]\nexec = [\"sleep\", \"2\"]\ntimeout = \"1s\"\nmax_attempts = 1\n",
        )
        .await;
    let worker = WorkerProcess::start(
        &fleet.config,
        &["--config", &config_file.display().to_string()],
        &scratch.path("worker.log"),
    )
    .await;
    fleet.wait_for_consumers("slow", 1).await;
    worker
}

async fn enqueue_by_cli(fleet: &Fleet, args: &[&str]) -> (TaskId, String) {
    let (code, out, err) = cli(&fleet.config, args, None).await;
    assert_eq!(code, 0, "{err}");
    (out.trim().parse().expect("an id"), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_only_type_settings_govern_a_task_enqueued_without_them() {
    let scratch = Scratch::new();
    let fleet = Fleet::new().await;
    let worker = slow_worker(&fleet, &scratch).await;

    // The CLI runs without any configuration file: it knows nothing of `slow`.
    let (id, err) = enqueue_by_cli(&fleet, &["enqueue", "slow", "{}"]).await;
    assert!(!err.contains("warning"), "a live worker serves it: {err}");
    let r = fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(20))
        .await;
    assert_eq!(r.get("attempt"), Some("1"), "one attempt: {r:?}");
    assert_eq!(r.get("max_attempts"), Some("1"), "{r:?}");
    assert!(
        r.get("error").is_some_and(|e| e.contains("timed out")),
        "{r:?}"
    );

    // A per-task timeout still overrides the type's.
    let (id, _) = enqueue_by_cli(&fleet, &["enqueue", "slow", "{}", "--timeout", "20s"]).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(30))
        .await;
    assert_eq!(r.get("attempt"), Some("1"), "{r:?}");

    // The declaration is visible to every reader.
    let (code, out, err) = cli(&fleet.config, &["types", "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("types --json prints JSON");
    let slow = &v["types"]["slow"];
    assert_eq!(slow["settings"]["max_attempts"], 1, "{v}");
    assert_eq!(slow["settings"]["timeout_ms"], 1000, "{v}");
    assert_eq!(slow["workers"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(slow["paused"], false, "{v}");
    assert_eq!(slow["queue_depth"], 0, "{v}");
    let (code, out, err) = cli(&fleet.config, &["types"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().any(|l| l.starts_with("slow ")), "{out}");
    drop(worker);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueueing_a_type_no_live_worker_serves_succeeds_with_a_warning() {
    let fleet = Fleet::new().await;
    let (id, err) = enqueue_by_cli(&fleet, &["enqueue", "nobody.home", "{}"]).await;
    let warning: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warning.len(), 1, "one warning line: {err}");
    assert!(
        warning[0].contains("no live worker serves type nobody.home"),
        "{err}"
    );
    let r = fleet.record(&id).await.expect("the task is recorded");
    assert_eq!(r.state(), Some(TaskState::Pending));
    // The library (and so the HTTP API's `warning` field) says the same.
    let req = EnqueueRequest::new("nobody.home", "{}").expect("valid");
    let done = fleet.producer.enqueue(&req).await.expect("enqueued");
    assert!(done.warning.is_some_and(|w| w.contains("nobody.home")));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_that_disagree_on_a_type_say_so_naming_both() {
    let scratch = Scratch::new();
    let fleet = Fleet::new().await;
    let _first = WorkerProcess::start(
        &fleet.config,
        &["--types", "echo"],
        &scratch.path("first.log"),
    )
    .await;
    fleet.wait_for_consumers("echo", 1).await;
    let store = fleet.store.clone();
    let echo = "echo".parse().expect("type");
    eventually(Duration::from_secs(10), "the first declaration", || async {
        let d = store
            .type_declarations(std::slice::from_ref(&echo))
            .await
            .ok()?;
        d.first().and_then(|d| d.settings).map(|_| ())
    })
    .await;
    let _second = WorkerProcess::start_with_env(
        &fleet.config,
        &["--types", "echo"],
        &scratch.path("second.log"),
        &[("TASKFLEET_TYPES__ECHO__MAX_ATTEMPTS", "2")],
    )
    .await;
    fleet.wait_for_consumers("echo", 2).await;
    let text = eventually(Duration::from_secs(10), "the warning", || async {
        let text = scratch.text("second.log").await?;
        text.contains("disagree").then_some(text)
    })
    .await;
    let line = text
        .lines()
        .find(|l| l.contains("disagree"))
        .unwrap_or_default();
    let d = store
        .type_declarations(std::slice::from_ref(&echo))
        .await
        .expect("redis answers");
    assert_eq!(d[0].workers.len(), 2, "{d:?}");
    for w in &d[0].workers {
        assert!(line.contains(w.as_str()), "names {w}: {line}");
    }
    fleet.teardown().await;
}
