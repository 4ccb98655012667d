//! Issue 4: what a cancel request answers and changes: the same answer when it is
//! repeated, nothing for a finished task, exit 1 for an unknown id, and `cancelled`
//! counters that stay exact across states and repeated, concurrent requests.

use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::store::{CancelResult, TypeStats};
use taskfleet_common::{TaskId, TaskState};
use taskfleet_tests::cancel::stubborn;
use taskfleet_tests::process::cli;
use taskfleet_tests::{Fleet, test_config, worker_with};

async fn cancel_via_cli(fleet: &Fleet, id: &TaskId) -> (i32, String, String) {
    cli(&fleet.config, &["cancel", &id.to_string()], None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_twice_gives_the_same_answer() {
    let mut config = test_config();
    // Long enough that the running task stays `cancelling` across two CLI calls.
    config.worker.cancel_grace = Duration::from_secs(3);
    let mut fleet = Fleet::with_config(config).await;

    // Queued (no worker runs `parked`).
    let queued = fleet.enqueue("parked", "{}").await;
    let first = cancel_via_cli(&fleet, &queued).await;
    assert_eq!(first, (0, "cancelled\n".into(), String::new()));
    let record = fleet.record(&queued).await.expect("record");
    let stats = fleet.stats("parked").await;
    assert_eq!(cancel_via_cli(&fleet, &queued).await, first);
    assert_eq!(
        fleet.record(&queued).await.expect("record").fields,
        record.fields
    );
    assert_eq!(fleet.stats("parked").await, stats);
    assert_eq!((stats.cancelled, stats.live()), (1, 0));

    // Running, with a handler that keeps it `cancelling` for the grace period.
    let worker = worker_with(&fleet, "stubborn", stubborn(Arc::default()));
    fleet.start_worker_with(worker).await;
    let running = fleet.enqueue("stubborn", "{}").await;
    fleet
        .wait_for_state(&running, TaskState::Running, Duration::from_secs(10))
        .await;
    let first = cancel_via_cli(&fleet, &running).await;
    assert_eq!(first, (0, "cancelling\n".into(), String::new()));
    let record = fleet.record(&running).await.expect("record");
    let stats = fleet.stats("stubborn").await;
    assert_eq!(cancel_via_cli(&fleet, &running).await, first);
    assert_eq!(
        fleet.record(&running).await.expect("record").fields,
        record.fields,
        "the second request keeps the first cancel_requested_at"
    );
    assert_eq!(fleet.stats("stubborn").await, stats);
    assert_eq!((stats.cancelling, stats.running), (1, 0));

    fleet
        .wait_for_state(&running, TaskState::Cancelled, Duration::from_secs(10))
        .await;
    assert_eq!(
        cancel_via_cli(&fleet, &running).await,
        (0, "cancelled\n".into(), String::new())
    );
    let s = fleet.stats("stubborn").await;
    assert_eq!((s.cancelled, s.live()), (1, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_task_changes_nothing() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let completed = fleet.enqueue("echo", r#"{"k":1}"#).await;
    // `sleep` without `ms` is a permanent failure.
    let failed = fleet.enqueue("sleep", "{}").await;
    fleet
        .wait_for_state(&completed, TaskState::Completed, Duration::from_secs(10))
        .await;
    fleet
        .wait_for_state(&failed, TaskState::Failed, Duration::from_secs(10))
        .await;

    for (id, task_type, state) in [
        (completed, "echo", "completed"),
        (failed, "sleep", "failed"),
    ] {
        let record = fleet.record(&id).await.expect("record");
        let stats = fleet.stats(task_type).await;
        for _ in 0..2 {
            assert_eq!(
                cancel_via_cli(&fleet, &id).await,
                (0, format!("{state}\n"), String::new()),
                "the command reports the state it found"
            );
        }
        assert_eq!(
            fleet.store.cancel(&id).await.expect("redis answers"),
            CancelResult::State(state.parse().expect("state"))
        );
        assert_eq!(
            fleet.record(&id).await.expect("record").fields,
            record.fields,
            "the {state} record is unchanged"
        );
        assert_eq!(fleet.stats(task_type).await, stats, "counters unchanged");
        assert_eq!(
            fleet.store.cancel_flags(&[id]).await.expect("redis"),
            vec![false],
            "no cancellation flag is left for a finished task"
        );
    }
    let s = fleet.stats("echo").await;
    assert_eq!((s.completed, s.cancelled), (1, 0));
    let s = fleet.stats("sleep").await;
    assert_eq!((s.failed, s.cancelled), (1, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_unknown_id_exits_1() {
    let fleet = Fleet::new().await;
    let unknown = TaskId::new();
    let (code, out, err) = cancel_via_cli(&fleet, &unknown).await;
    assert_eq!(code, 1, "stdout {out:?}, stderr {err:?}");
    assert_eq!(out, "");
    assert!(
        err.contains("not found") && err.contains(&unknown.to_string()),
        "one line naming the problem: {err:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert_eq!(
        fleet.store.cancel(&unknown).await.expect("redis answers"),
        CancelResult::NotFound
    );
    assert_eq!(
        fleet.store.cancel_flags(&[unknown]).await.expect("redis"),
        vec![false],
        "no flag is set for an unknown id"
    );
    let (code, _, err) = cli(&fleet.config, &["cancel", "not-a-task-id"], None).await;
    assert_eq!(code, 2, "a malformed id is bad input: {err:?}");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_counter_is_exact_across_states_and_repeated_requests() {
    let mut config = test_config();
    // Retries wait long enough to be cancelled while `retrying`.
    let delay = Duration::from_secs(10);
    config.defaults.backoff.initial = delay;
    config.defaults.backoff.max = delay;
    config.defaults.backoff.jitter = 0.0;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;

    let mut to_cancel = Vec::new();
    for _ in 0..2 {
        to_cancel.push(fleet.enqueue("parked", "{}").await); // no worker: pending
    }
    let mut running = Vec::new();
    let mut retrying = Vec::new();
    for _ in 0..2 {
        running.push(fleet.enqueue("sleep", r#"{"ms":60000}"#).await);
        retrying.push(fleet.enqueue("flaky", r#"{"fail_times":1}"#).await);
    }
    for id in &running {
        fleet
            .wait_for_state(id, TaskState::Running, Duration::from_secs(10))
            .await;
    }
    for id in &retrying {
        fleet
            .wait_for_state(id, TaskState::Retrying, Duration::from_secs(10))
            .await;
    }
    to_cancel.extend(running.iter().chain(&retrying));
    let done = fleet.enqueue("echo", "{}").await;
    fleet
        .wait_for_state(&done, TaskState::Completed, Duration::from_secs(10))
        .await;
    let echo_before = fleet.stats("echo").await;

    // Every task asked twice at the same time, then once more.
    for id in to_cancel.iter().chain([&done]) {
        let (a, b) = tokio::join!(fleet.store.cancel(id), fleet.store.cancel(id));
        let (a, b) = (a.expect("redis answers"), b.expect("redis answers"));
        assert!(
            matches!(a, CancelResult::State(_)) && matches!(b, CancelResult::State(_)),
            "{a:?} {b:?}"
        );
        fleet.store.cancel(id).await.expect("redis answers");
    }
    for id in &to_cancel {
        fleet
            .wait_for_state(id, TaskState::Cancelled, Duration::from_secs(10))
            .await;
    }

    let expect = |enqueued, cancelled, retried| TypeStats {
        enqueued,
        cancelled,
        retried,
        ..TypeStats::default()
    };
    assert_eq!(fleet.stats("parked").await, expect(2, 2, 0));
    assert_eq!(fleet.stats("sleep").await, expect(2, 2, 0));
    assert_eq!(fleet.stats("flaky").await, expect(2, 2, 2));
    assert_eq!(
        fleet.stats("echo").await,
        echo_before,
        "the finished task is not counted"
    );
    let all = fleet.store.stats().await.expect("redis answers");
    assert_eq!(all.values().map(|s| s.cancelled).sum::<i64>(), 6);
    assert_eq!(all.values().map(TypeStats::live).sum::<i64>(), 0);
    fleet.teardown().await;
}
