//! Issue 4: a running task that is cancelled stops well under a second and frees its
//! slot; a handler that ignores its token is aborted after the grace period, one that
//! finishes anyway ends completed, and only the task asked for stops, on whichever
//! worker runs it.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::store::CancelResult;
use taskfleet_tests::cancel::{cancel_latency_ms, stubborn};
use taskfleet_tests::logs::{log_path, log_text};
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, eventually, test_config, worker_with};
use taskfleet_worker::handler_fn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sleep_is_cancelled_well_under_a_second_and_the_worker_goes_on() {
    let fleet = Fleet::new().await;
    let log = log_path(&fleet.config, "cancel-worker");
    let mut worker = WorkerProcess::start(
        &fleet.config,
        &["--concurrency", "1", "--log-format", "json"],
        &log,
    )
    .await;
    fleet.wait_for_consumers("sleep", 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;

    let state = fleet.producer.cancel(&id).await.expect("cancel answers");
    assert_eq!(state, TaskState::Cancelling);
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
        .await;
    let latency = cancel_latency_ms(&r);
    eprintln!("cancel latency of a running sleep: {latency} ms");
    assert!(latency < 1000, "request to cancelled took {latency} ms");
    assert_eq!(r.attempt(), 1);
    assert_eq!(r.get("result"), None);
    assert!(
        !fleet
            .store
            .running_ids()
            .await
            .expect("redis")
            .contains(&id.to_string()),
        "its lease is released"
    );

    // The worker's log line carries the same number.
    let logged = eventually(
        Duration::from_secs(5),
        "cancel_latency_ms in the worker's log",
        || async {
            let text = log_text(&fleet.config, "cancel-worker").await;
            text.lines()
                .filter(|l| l.contains(&id.to_string()))
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| v.get("cancel_latency_ms").and_then(Value::as_u64))
        },
    )
    .await;
    assert_eq!(logged, latency, "log line and record agree");

    // One slot, and it was freed: the next task runs.
    let next = fleet.enqueue("echo", r#"{"after":"cancel"}"#).await;
    let done = fleet
        .wait_for_state(&next, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(done.get("result"), Some(r#"{"after":"cancel"}"#));
    fleet.wait_for_settled_queue("sleep", 1).await;
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.enqueued, s.cancelled, s.completed, s.live()),
        (1, 1, 0, 0)
    );

    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let exited = worker.wait_exit(Duration::from_secs(15)).await;
    assert!(
        exited.is_some(),
        "timed out after 15s waiting for: the worker exits"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_ignoring_its_token_is_aborted_after_the_grace_period() {
    let grace = Duration::from_secs(1);
    let mut config = test_config();
    config.worker.concurrency = 1;
    config.worker.cancel_grace = grace;
    let mut fleet = Fleet::with_config(config).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let worker = worker_with(&fleet, "stubborn", stubborn(dropped.clone()));
    fleet.start_worker_with(worker).await;
    let id = fleet.enqueue("stubborn", "{}").await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;

    assert_eq!(
        fleet.store.cancel(&id).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelling)
    );
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(10))
        .await;
    let latency = cancel_latency_ms(&r);
    eprintln!("a token-ignoring handler ended cancelled {latency} ms after the request");
    assert!(
        latency >= grace.as_millis() as u64,
        "aborted only after the grace period, not after {latency} ms"
    );
    assert!(
        latency < grace.as_millis() as u64 + 1500,
        "aborted soon after the grace period (its own sleep is 30 s), not after {latency} ms"
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the handler's future was dropped"
    );
    assert_eq!(r.get("result"), None);

    // Its only slot was freed.
    let next = fleet.enqueue("echo", "1").await;
    fleet
        .wait_for_state(&next, TaskState::Completed, Duration::from_secs(10))
        .await;
    fleet.wait_for_settled_queue("stubborn", 1).await;
    let s = fleet.stats("stubborn").await;
    assert_eq!((s.cancelled, s.completed, s.failed, s.live()), (1, 0, 0, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_that_finishes_despite_the_request_ends_completed_and_keeps_cancel_requested_at() {
    let mut fleet = Fleet::new().await;
    // Notices the request, then returns its result anyway.
    let finisher = handler_fn(|ctx, _payload: Value| async move {
        ctx.token().cancelled().await;
        Ok(json!("finished anyway"))
    });
    let worker = worker_with(&fleet, "finisher", finisher);
    fleet.start_worker_with(worker).await;
    let id = fleet.enqueue("finisher", "{}").await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    assert_eq!(
        fleet.store.cancel(&id).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelling)
    );
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.get("result"), Some(r#""finished anyway""#));
    assert!(r.get("cancel_requested_at").is_some(), "{:?}", r.fields);
    fleet.wait_for_settled_queue("finisher", 1).await;
    let s = fleet.stats("finisher").await;
    assert_eq!((s.completed, s.cancelled, s.live()), (1, 0, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_task_on_whichever_worker_runs_it_and_nothing_else() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    fleet.start_worker().await;
    let a = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    let b = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    let ra = fleet
        .wait_for_state(&a, TaskState::Running, Duration::from_secs(10))
        .await;
    let rb = fleet
        .wait_for_state(&b, TaskState::Running, Duration::from_secs(10))
        .await;
    assert_ne!(ra.get("worker"), rb.get("worker"), "one task per worker");

    for (target, other) in [(a, b), (b, a)] {
        assert_eq!(
            fleet.store.cancel(&target).await.expect("redis answers"),
            CancelResult::State(TaskState::Cancelling)
        );
        let r = fleet
            .wait_for_state(&target, TaskState::Cancelled, Duration::from_secs(5))
            .await;
        assert!(cancel_latency_ms(&r) < 1000, "{:?}", r.fields);
        if other == b {
            assert_eq!(
                fleet.record(&other).await.expect("record").state(),
                Some(TaskState::Running),
                "the other worker's task goes on"
            );
        }
    }
    let s = fleet.stats("sleep").await;
    assert_eq!((s.cancelled, s.completed, s.live()), (2, 0, 0));
    fleet.teardown().await;
}
