//! Issue 3: final failure and a dead-letter queue people can use: an exhausted task
//! ends `failed`, `taskfleet dead list` shows it without taking it out of the queue,
//! and `dead replay` runs it again; unknown ids and malformed messages are refused.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_tests::process::cli;
use taskfleet_tests::record::ms;
use taskfleet_tests::retries::{dead_list, enqueue_with_attempts, entry_of};
use taskfleet_tests::{Fleet, amqp, eventually, worker_with};
use taskfleet_worker::{TaskError, handler_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_task_is_failed_listed_by_dead_list_and_run_again_by_dead_replay() {
    let mut fleet = Fleet::new().await;
    // Fails every attempt until the gate opens.
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let worker = worker_with(
        &fleet,
        "gate",
        handler_fn(move |ctx, _payload| {
            let open = gate.load(Ordering::SeqCst);
            async move {
                if open {
                    Ok(json!({ "attempt": ctx.attempt() }))
                } else {
                    Err(TaskError::retry("gate closed"))
                }
            }
        }),
    );
    fleet.start_worker_with(worker).await;

    let id = enqueue_with_attempts(&fleet, "gate", r#"{"n":1}"#, 2).await;
    let r = fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 2);
    assert_eq!(r.get("error"), Some("gate closed"));

    let list = eventually(Duration::from_secs(10), "the task in dead list", || async {
        let list = dead_list(&fleet.config).await;
        entry_of(&list, &id).is_some().then_some(list)
    })
    .await;
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["type"], "gate");
    assert_eq!(e["reason"], "exhausted");
    assert_eq!(e["attempts"], 2);
    assert_eq!(e["error"], "gate closed");
    assert_eq!(e["unreplayable"], Value::Null);
    let dead_at = e["dead_at"].as_u64().expect("dead_at in ms");
    let finished_at = ms(&r, "finished_at");
    assert!(
        dead_at.abs_diff(finished_at) < 5_000,
        "dead at {dead_at}, failed at {finished_at}"
    );
    let (code, table, err) = cli(&fleet.config, &["dead", "list"], None).await;
    assert_eq!(code, 0, "{err}");
    let row = table
        .lines()
        .find(|l| l.starts_with(&id.to_string()))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{table}"));
    assert!(
        row.contains("gate") && row.contains("exhausted") && row.contains("gate closed"),
        "{row}"
    );

    let url = fleet.config.amqp_url.clone();
    let dead = fleet.names().dead();
    assert_eq!(
        amqp::queue_depth(&url, &dead).await,
        Some((1, 0)),
        "listing took nothing out of the queue"
    );

    open.store(true, Ordering::SeqCst);
    let (code, out, err) = cli(&fleet.config, &["dead", "replay", &id.to_string()], None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("{id} pending"));
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 1, "fresh attempts");
    assert_eq!(r.get("result"), Some(r#"{"attempt":1}"#));
    assert_eq!(amqp::queue_depth(&url, &dead).await, Some((0, 0)));
    assert!(dead_list(&fleet.config).await.is_empty());
    let s = fleet.stats("gate").await;
    assert_eq!(
        (s.enqueued, s.failed, s.completed, s.retried, s.live()),
        (2, 1, 1, 1, 0),
        "the replay counts as a new enqueue; the first failure stays counted"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_replay_refuses_unknown_ids_and_leaves_malformed_messages_listed() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let url = fleet.config.amqp_url.clone();
    amqp::publish_raw(&url, &fleet.names().tasks_exchange(), "echo", b"{oops").await;
    let list = eventually(
        Duration::from_secs(10),
        "malformed message dead-lettered",
        || async { Some(dead_list(&fleet.config).await).filter(|l| !l.is_empty()) },
    )
    .await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["reason"], "malformed");
    assert_eq!(list[0]["id"], Value::Null);
    assert!(
        list[0]["unreplayable"]
            .as_str()
            .is_some_and(|s| s.contains("malformed envelope")),
        "{list:?}"
    );

    let unknown = TaskId::new();
    let (code, out, err) = cli(
        &fleet.config,
        &["dead", "replay", &unknown.to_string()],
        None,
    )
    .await;
    assert_eq!(code, 1, "unknown id: {out} {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&unknown.to_string()), "{err}");

    let (code, out, err) = cli(&fleet.config, &["dead", "replay", "--all"], None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "nothing replayed");
    assert!(err.contains("cannot be replayed"), "{err}");
    let dead = fleet.names().dead();
    assert_eq!(
        amqp::queue_depth(&url, &dead).await,
        Some((1, 0)),
        "the malformed message stays in {dead}"
    );
    fleet.teardown().await;
}
