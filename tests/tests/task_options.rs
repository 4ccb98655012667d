//! Issue 6: what an enqueue can ask for and what the fleet bounds: priority,
//! idempotency keys, the payload limit and the result limit.

use serde_json::Value;
use std::time::Duration;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::process::{cli, cli_with_env};
use taskfleet_tests::record::{json_of, ms};
use taskfleet_tests::{Fleet, amqp, eventually, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_9_task_runs_before_30_queued_priority_0_tasks() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    // Everything is queued before the one free slot opens.
    let mut low = Vec::new();
    for _ in 0..30 {
        low.push(fleet.enqueue("sleep", r#"{"ms":20}"#).await);
    }
    let (code, out, err) = cli(
        &fleet.config,
        &["enqueue", "sleep", r#"{"ms":20}"#, "--priority", "9"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let high: TaskId = out.trim().parse().expect("an id");
    fleet.start_worker().await;

    eventually(Duration::from_secs(30), "31 tasks completed", || async {
        let s = fleet.stats("sleep").await;
        (s.completed == 31).then_some(())
    })
    .await;
    let h = fleet.record(&high).await.expect("record");
    assert_eq!(h.get("priority"), Some("9"));
    let high_started = ms(&h, "started_at");
    let mut before = 0;
    for id in &low {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.get("priority"), Some("0"));
        if ms(&r, "started_at") < high_started {
            before += 1;
        }
    }
    eprintln!("priority: {before} of 30 priority-0 tasks started before the priority-9 one");
    assert!(
        before <= 1,
        "the priority-9 task overtakes nearly all 30 queued ones; {before} started before it"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_idempotency_key_twice_gives_one_id_and_one_execution() {
    let mut fleet = Fleet::new().await;
    let args = ["enqueue", "echo", r#"{"order":42}"#, "--key", "order-42"];
    let (code, first, err) = cli(&fleet.config, &args, None).await;
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = cli(&fleet.config, &args, None).await;
    assert_eq!(code, 0, "{err}");
    let id: TaskId = first.trim().parse().expect("an id");
    assert_eq!(second.trim(), first.trim(), "the same id both times");

    let queue = fleet.names().queue(&"echo".parse().expect("type"));
    let (ready, _) = amqp::queue_depth(&fleet.config.amqp_url, &queue)
        .await
        .expect("queue exists");
    assert_eq!(ready, 1, "published once");

    fleet.start_worker().await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.get("result"), Some(r#"{"order":42}"#));
    // Still the same task after it finished (within the retention period).
    let (code, third, err) = cli(&fleet.config, &args, None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(third.trim(), first.trim());
    let s = fleet.stats("echo").await;
    assert_eq!((s.enqueued, s.completed, s.live()), (1, 1, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_the_limit_is_refused_with_exit_2() {
    let fleet = Fleet::new().await;
    let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(2 * 1024 * 1024));
    // A 2 MB argument exceeds what Linux passes in one argv string (128 KiB), so the
    // 2 MB payload goes through stdin.
    let (code, out, err) = cli(
        &fleet.config,
        &["enqueue", "echo", "--batch"],
        Some(&format!("{big}\n")),
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(out.trim().is_empty(), "no id printed: {out}");
    assert!(err.contains("exceeds the limit"), "{err}");

    // The single form, against a lower limit that fits on a command line.
    let medium = format!("{{\"blob\":\"{}\"}}", "x".repeat(100_000));
    let (code, _, stderr) = cli_with_env(
        &fleet.config,
        &["enqueue", "echo", &medium],
        None,
        &[("TASKFLEET_PAYLOAD_LIMIT", "65536")],
    )
    .await;
    assert_eq!(Some(code), Some(2), "{stderr}");
    assert!(stderr.contains("payload_limit"), "{stderr}");

    let req = EnqueueRequest::new("echo", &big).expect("valid JSON");
    let e = fleet
        .producer
        .enqueue(&req)
        .await
        .expect_err("refused by the library too");
    assert_eq!(e.exit_code(), 2, "{e}");
    let s = fleet.stats("echo").await;
    assert_eq!(s.enqueued, 0, "nothing recorded");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_the_limit_are_stored_truncated_with_a_marker() {
    let mut config = test_config();
    config.result_limit = 1000;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let long = format!("\"{}\"", "x".repeat(5000));
    let id = fleet.enqueue("echo", &long).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    let stored = r.get("result").expect("a result");
    assert!(stored.len() <= 1000, "{} bytes stored", stored.len());
    let Value::String(text) = json_of(Some(stored)) else {
        panic!("a truncated result is a JSON string: {stored}");
    };
    assert!(text.starts_with("\"xxxx"), "keeps the head: {text}");
    assert!(
        text.ends_with("bytes kept]") && text.contains("of 5002 bytes"),
        "a marker says what was cut: {text}"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_result_stays_within_the_limit_when_escaping_grows_it() {
    let mut config = test_config();
    config.result_limit = 1000;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    // Every `"` of the cut JSON text becomes `\"` inside the marker string.
    let quotes = serde_json::to_string(&vec!["a"; 1000]).expect("json");
    let id = fleet.enqueue("echo", &quotes).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    let stored = r.get("result").expect("a result");
    assert!(stored.contains("truncated"), "{stored}");
    assert!(
        stored.len() <= 1000,
        "result_limit is 1000 bytes; {} stored",
        stored.len()
    );
    fleet.teardown().await;
}
