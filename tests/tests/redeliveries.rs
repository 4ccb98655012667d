//! Issue 3: duplicates, crashes and poison: a stale or duplicate copy of an attempt
//! neither runs again nor fails the task, a crash mid-task does not use up an
//! attempt, and a message that keeps killing its worker ends in the dead queue after
//! `max_redeliveries`.

use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_tests::amqp::publish_raw;
use taskfleet_tests::logs::log_path;
use taskfleet_tests::retries::{
    backoff, dead_list, entry_of, kill_9, start_worker_process, with_type_backoff,
};
use taskfleet_tests::{Fleet, amqp, eventually, files, test_config, worker_with};
use taskfleet_worker::{TaskError, handler_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_stale_attempt_does_not_execute() {
    // Attempt 1 fails and waits 200 ms; attempt 2 fails and waits 5 s; attempt 3 succeeds.
    let config = with_type_backoff(test_config(), "counted", backoff(200, 25.0, 0.0));
    let mut fleet = Fleet::with_config(config).await;
    let runs = Arc::new(Mutex::new(Vec::<u32>::new()));
    let seen = runs.clone();
    let worker = worker_with(
        &fleet,
        "counted",
        handler_fn(move |ctx, _payload| {
            seen.lock().expect("runs").push(ctx.attempt());
            async move {
                if ctx.attempt() < 3 {
                    Err(TaskError::retry("not yet"))
                } else {
                    Ok(json!({ "attempt": ctx.attempt() }))
                }
            }
        }),
    );
    fleet.start_worker_with(worker).await;
    let id = fleet.enqueue("counted", "{}").await;
    let before = eventually(Duration::from_secs(5), "attempt 2 failed", || async {
        fleet
            .record(&id)
            .await
            .filter(|r| r.state() == Some(TaskState::Retrying) && r.attempt() == 2)
    })
    .await;

    // A copy of attempt 1 turns up (a duplicate publish, a redelivery).
    let exchange = fleet.names().tasks_exchange();
    let url = fleet.config.amqp_url.clone();
    let stale = format!(r#"{{"id":"{id}","type":"counted","payload":{{}},"attempt":1}}"#);
    publish_raw(&url, &exchange, "counted", stale.as_bytes()).await;
    fleet.wait_for_settled_queue("counted", 1).await;
    let after = fleet.record(&id).await.expect("record");
    assert_eq!(
        (after.state(), after.attempt()),
        (Some(TaskState::Retrying), 2),
        "the copy was settled while attempt 3 was still due later"
    );
    assert_eq!(
        *runs.lock().expect("runs"),
        vec![1, 2],
        "the copy never ran"
    );
    assert_eq!(after.fields, before.fields, "the record did not change");

    let done = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(*runs.lock().expect("runs"), vec![1, 2, 3]);

    // A copy of the last attempt after the task finished.
    let last = format!(r#"{{"id":"{id}","type":"counted","payload":{{}},"attempt":3}}"#);
    publish_raw(&url, &exchange, "counted", last.as_bytes()).await;
    fleet.wait_for_settled_queue("counted", 1).await;
    assert_eq!(*runs.lock().expect("runs"), vec![1, 2, 3]);
    assert_eq!(fleet.record(&id).await.expect("record").fields, done.fields);
    let s = fleet.stats("counted").await;
    assert_eq!((s.enqueued, s.retried, s.completed, s.live()), (1, 2, 1, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_mid_task_does_not_use_up_an_attempt() {
    let mut fleet = Fleet::new().await;
    let w = start_worker_process(&fleet, "sleep", &[], "w1", 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":2000}"#).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 1);
    kill_9(&fleet, w, "sleep").await;

    fleet.start_worker().await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    assert_eq!(r.attempt(), 1, "the crash did not use up an attempt");
    assert_eq!(r.get("deliveries"), Some("2"));
    assert_eq!(r.get("result"), Some(r#"{"slept_ms":2000}"#));
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.enqueued, s.retried, s.completed, s.failed, s.live()),
        (1, 0, 1, 0, 0)
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_that_keeps_killing_its_worker_ends_in_the_dead_queue_after_the_bound() {
    let fleet = Fleet::new().await;
    let config_file = log_path(&fleet.config, "config.toml");
    files::write(&config_file, "max_redeliveries = 2\n").await;
    let config_arg = config_file.to_string_lossy().into_owned();
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;

    // Deliveries 1 and 2 each take their worker down with them.
    for n in 1..=2u64 {
        let w = start_worker_process(
            &fleet,
            "sleep",
            &["--config", &config_arg],
            &format!("w{n}"),
            1,
        )
        .await;
        eventually(
            Duration::from_secs(10),
            &format!("delivery {n} running"),
            || async {
                fleet.record(&id).await.filter(|r| {
                    r.state() == Some(TaskState::Running)
                        && r.get("deliveries") == Some(&n.to_string())
                })
            },
        )
        .await;
        kill_9(&fleet, w, "sleep").await;
    }
    let _w3 = start_worker_process(&fleet, "sleep", &["--config", &config_arg], "w3", 1).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(
        r.get("error"),
        Some("poison message: delivered 3 times without finishing")
    );
    assert_eq!(r.attempt(), 1);

    let list = eventually(
        Duration::from_secs(10),
        "the poison message in dead list",
        || async {
            let list = dead_list(&fleet.config).await;
            entry_of(&list, &id).is_some().then_some(list)
        },
    )
    .await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "poison");
    assert_eq!(list[0]["type"], "sleep");
    assert_eq!(list[0]["attempts"], 1);
    let dead = fleet.names().dead();
    assert_eq!(
        amqp::queue_depth(&fleet.config.amqp_url, &dead).await,
        Some((1, 0))
    );
    let s = fleet.stats("sleep").await;
    assert_eq!((s.enqueued, s.failed, s.completed, s.live()), (1, 1, 0, 0));
    drop(_w3);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_of_a_running_attempt_does_not_fail_the_task() {
    let mut fleet = Fleet::new().await;
    let runs = Arc::new(Mutex::new(0u32));
    for _ in 0..2 {
        let seen = runs.clone();
        let worker = worker_with(
            &fleet,
            "slow",
            handler_fn(move |ctx, _payload| {
                *seen.lock().expect("runs") += 1;
                async move {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Ok(json!({ "attempt": ctx.attempt() }))
                }
            }),
        );
        fleet.start_worker_with(worker).await;
    }
    let id = fleet.enqueue("slow", "{}").await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(5))
        .await;
    // A second copy of the running attempt: a producer's publish retried after a lost
    // confirm, or a foreign client publishing twice.
    let copy = format!(r#"{{"id":"{id}","type":"slow","payload":{{}},"attempt":1}}"#);
    publish_raw(
        &fleet.config.amqp_url,
        &fleet.names().tasks_exchange(),
        "slow",
        copy.as_bytes(),
    )
    .await;
    let end = eventually(Duration::from_secs(30), "a terminal state", || async {
        fleet
            .record(&id)
            .await
            .filter(|r| r.state().is_some_and(TaskState::is_terminal))
    })
    .await;
    assert_eq!(
        end.state(),
        Some(TaskState::Completed),
        "a duplicate must not fail the task: {:?}",
        end.fields
    );
    assert_eq!(end.attempt(), 1);
    // At-least-once allows the copy to run once more; never a chain of takeovers.
    let runs = *runs.lock().expect("runs");
    assert!(runs <= 2, "the handler ran {runs} times");
    fleet.wait_for_settled_queue("slow", 2).await;
    let s = fleet.stats("slow").await;
    assert_eq!((s.enqueued, s.completed, s.failed, s.live()), (1, 1, 0, 0));
    fleet.teardown().await;
}
