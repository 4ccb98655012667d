//! Issue 3: retries with exponential backoff held by the broker, and a dead-letter
//! queue people can use — on the real servers.

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskfleet_common::config::{BackoffConfig, TypeConfig};
use taskfleet_common::{Config, TaskId, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, amqp, eventually, test_config};
use taskfleet_worker::{TaskError, Worker, handler_fn};

// ---------- helpers ----------

fn backoff(initial_ms: u64, multiplier: f64, jitter: f64) -> BackoffConfig {
    BackoffConfig {
        initial: Duration::from_millis(initial_ms),
        multiplier,
        max: Duration::from_secs(30),
        jitter,
    }
}

/// `config` with `[types.NAME] backoff = ...`.
fn with_type_backoff(mut config: Config, task_type: &str, b: BackoffConfig) -> Config {
    config.types.insert(
        task_type.to_owned(),
        TypeConfig {
            backoff: Some(b),
            ..Default::default()
        },
    );
    config
}

async fn enqueue_with_attempts(fleet: &Fleet, task_type: &str, payload: &str, n: u32) -> TaskId {
    let mut req = EnqueueRequest::new(task_type, payload).expect("valid request");
    req.max_attempts = Some(n);
    fleet.producer.enqueue(&req).await.expect("enqueue").id
}

/// Runs `taskfleet ARGS` off the async threads: (exit code, stdout, stderr).
async fn cli(config: &Config, args: &[&str]) -> (i32, String, String) {
    let config = config.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        taskfleet_tests::process::cli(&config, &args, None)
    })
    .await
    .expect("cli thread")
}

/// `taskfleet dead list --json`, parsed.
async fn dead_list(config: &Config) -> Vec<Value> {
    let (code, out, err) = cli(config, &["dead", "list", "--json"]).await;
    assert_eq!(code, 0, "dead list failed: {err}");
    match serde_json::from_str(&out).expect("dead list --json prints JSON") {
        Value::Array(list) => list,
        other => panic!("dead list --json printed {other}"),
    }
}

fn entry_of<'a>(list: &'a [Value], id: &TaskId) -> Option<&'a Value> {
    list.iter().find(|e| e["id"] == id.to_string())
}

async fn unacked(queue: &str) -> Option<u64> {
    let queue = queue.to_owned();
    tokio::task::spawn_blocking(move || taskfleet_tests::process::unacked(&queue))
        .await
        .expect("rabbitmqctl thread")
}

/// Waits until nothing is ready or unacknowledged in `queue`: every message in it was
/// delivered and settled.
async fn wait_until_settled(fleet: &Fleet, queue: &str) {
    let url = fleet.config.amqp_url.clone();
    eventually(
        Duration::from_secs(10),
        &format!("{queue} empty and settled"),
        || async {
            let ready = amqp::queue_depth(&url, queue).await.map(|(r, _)| r);
            (ready == Some(0) && unacked(queue).await == Some(0)).then_some(())
        },
    )
    .await;
}

/// Publishes like any AMQP client with publisher confirms: once this returns, the
/// message is in its queue.
async fn publish_confirmed_raw(url: &str, exchange: &str, routing_key: &str, body: &[u8]) {
    let (conn, ch) = amqp::channel(url).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let confirm = ch
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack(), "broker confirmed the copy");
    let _ = conn.close(200, "done".into()).await;
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

async fn finish(fleet: Fleet) {
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

fn log_path(config: &Config, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}.log", config.namespace))
}

/// Starts a `taskfleet-worker` process and waits until it consumes `task_type`.
async fn start_worker_process(
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
async fn kill_9(fleet: &Fleet, mut w: WorkerProcess, task_type: &str) {
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

/// A state transition as published on `{ns}:events`.
#[derive(Debug, Clone, PartialEq)]
struct Transition {
    from: Option<String>,
    to: String,
    at: u64,
}

/// Every transition of task `id` seen on `{ns}:events` until it enters `last`.
async fn transitions_until(
    messages: &mut (impl futures_util::Stream<Item = redis::Msg> + Unpin),
    id: &TaskId,
    last: &str,
    deadline: Duration,
) -> Vec<Transition> {
    let mut seen = Vec::new();
    let collect = async {
        while let Some(msg) = messages.next().await {
            let v: Value = serde_json::from_slice(msg.get_payload_bytes()).expect("event JSON");
            if v["id"] != id.to_string() {
                continue;
            }
            let t = Transition {
                from: v["from"].as_str().map(str::to_owned),
                to: v["to"].as_str().expect("to").to_owned(),
                at: v["at"].as_u64().expect("at"),
            };
            let done = t.to == last;
            seen.push(t);
            if done {
                return;
            }
        }
    };
    if tokio::time::timeout(deadline, collect).await.is_err() {
        panic!("no `{last}` event for {id} within {deadline:?}; saw {seen:?}");
    }
    seen
}

fn field_u64(r: &taskfleet_common::store::TaskRecord, field: &str) -> u64 {
    r.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("record has no numeric {field}: {:?}", r.fields))
}

// ---------- retries ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_task_completes_at_attempt_3_after_gaps_that_grow_per_the_policy() {
    let mut config = test_config();
    let policy = backoff(500, 2.0, 0.1);
    config.defaults.backoff = policy;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let mut pubsub = fleet.store.pubsub().await.expect("pub/sub");
    pubsub
        .subscribe(fleet.names().events_channel())
        .await
        .expect("subscribe");
    let mut events = Box::pin(pubsub.on_message());

    let id = enqueue_with_attempts(&fleet, "flaky", r#"{"fail_times":2}"#, 5).await;
    let seen = transitions_until(&mut events, &id, "completed", Duration::from_secs(15)).await;

    let path: Vec<(Option<&str>, &str)> = seen
        .iter()
        .map(|t| (t.from.as_deref(), t.to.as_str()))
        .collect();
    assert_eq!(
        path,
        vec![
            (None, "pending"),
            (Some("pending"), "running"),
            (Some("running"), "retrying"),
            (Some("retrying"), "running"),
            (Some("running"), "retrying"),
            (Some("retrying"), "running"),
            (Some("running"), "completed"),
        ]
    );
    // The wait of retry n: from the commit of `retrying` to the next start.
    let gaps: Vec<u64> = seen
        .windows(2)
        .filter(|w| w[0].to == "retrying")
        .map(|w| w[1].at - w[0].at)
        .collect();
    // Policy: initial * multiplier^(n-1) ± jitter, rounded to two significant digits
    // (±5 ms here); delivery through the broker may add a little, never subtract.
    let slack_ms = 300;
    for (n, gap) in gaps.iter().enumerate() {
        let nominal = policy.initial.as_millis() as f64 * policy.multiplier.powi(n as i32);
        let low = (nominal * (1.0 - policy.jitter)) as u64 - 5;
        let high = (nominal * (1.0 + policy.jitter)) as u64 + 5 + slack_ms;
        assert!(
            (low..=high).contains(gap),
            "retry {} waited {gap} ms; the policy says {low}..={high} ms (gaps {gaps:?})",
            n + 1
        );
    }
    assert!(gaps[1] > gaps[0], "gaps grow: {gaps:?}");
    eprintln!("retry gaps (ms): {gaps:?}");

    let r = fleet.record(&id).await.expect("record");
    assert_eq!(r.state(), Some(TaskState::Completed));
    assert_eq!(r.attempt(), 3);
    assert_eq!(r.get("result"), Some(r#"{"attempt":3}"#));
    let s = fleet.stats("flaky").await;
    assert_eq!(
        (s.enqueued, s.retried, s.completed, s.failed, s.live()),
        (1, 2, 1, 0, 0)
    );
    drop(events);
    finish(fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_waiting_to_retry_is_held_by_the_broker_not_by_an_unacked_delivery() {
    let config = with_type_backoff(test_config(), "flaky", backoff(5000, 2.0, 0.0));
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let id = fleet.enqueue("flaky", r#"{"fail_times":1}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Retrying, Duration::from_secs(5))
        .await;

    let flaky = "flaky".parse().expect("type");
    let queue = fleet.names().queue(&flaky);
    let delay_queue = fleet.names().delay_queue(&flaky, 5000);
    let url = fleet.config.amqp_url.clone();
    // The failed delivery is acked right after the retry's publish is confirmed.
    eventually(
        Duration::from_secs(4),
        "no unacked delivery on the task queue",
        || async { (unacked(&queue).await == Some(0)).then_some(()) },
    )
    .await;
    assert_eq!(
        amqp::queue_depth(&url, &queue).await,
        Some((0, 1)),
        "nothing ready in {queue}; the worker still consumes it"
    );
    assert_eq!(
        amqp::queue_depth(&url, &delay_queue).await,
        Some((1, 0)),
        "the retry waits in {delay_queue}, which nobody consumes"
    );
    assert_eq!(unacked(&delay_queue).await, Some(0));
    let r = fleet.record(&id).await.expect("record");
    assert_eq!(
        r.state(),
        Some(TaskState::Retrying),
        "all of the above was seen while the task waited to retry"
    );

    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 2);
    assert!(field_u64(&r, "started_at") >= field_u64(&r, "next_attempt_at"));
    finish(fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_while_a_task_waits_to_retry_loses_nothing() {
    let mut config = test_config();
    config.defaults.backoff.initial = Duration::from_millis(1500);
    config.defaults.backoff.max = Duration::from_secs(2);
    let mut fleet = Fleet::with_config(config).await;
    let w = start_worker_process(&fleet, "flaky", &[], "w1", 1).await;
    let id = fleet.enqueue("flaky", r#"{"fail_times":1}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Retrying, Duration::from_secs(10))
        .await;
    kill_9(&fleet, w, "flaky").await;

    // With no worker left, the retry comes back from the delay into the task queue.
    let queue = fleet.names().queue(&"flaky".parse().expect("type"));
    let url = fleet.config.amqp_url.clone();
    eventually(
        Duration::from_secs(10),
        "the retry back in the task queue",
        || async {
            amqp::queue_depth(&url, &queue)
                .await
                .filter(|d| *d == (1, 0))
        },
    )
    .await;
    let r = fleet.record(&id).await.expect("record");
    assert_eq!(r.state(), Some(TaskState::Retrying));

    fleet.start_worker().await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.attempt(), 2);
    assert_eq!(r.get("result"), Some(r#"{"attempt":2}"#));
    let s = fleet.stats("flaky").await;
    assert_eq!(
        (s.enqueued, s.retried, s.completed, s.failed, s.live()),
        (1, 1, 1, 0, 0),
        "completed exactly once"
    );
    finish(fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_delay_retry_is_not_held_up_by_a_long_delay_retry_enqueued_before_it() {
    // One type: a first failure waits 300 ms, a second one 300 ms * 15 = 4.5 s.
    let config = with_type_backoff(test_config(), "flaky", backoff(300, 15.0, 0.0));
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let long = fleet.enqueue("flaky", r#"{"fail_times":2}"#).await;
    eventually(
        Duration::from_secs(5),
        "the first task waits 4.5 s after its second failure",
        || async {
            fleet
                .record(&long)
                .await
                .filter(|r| r.state() == Some(TaskState::Retrying) && r.attempt() == 2)
        },
    )
    .await;

    let short = fleet.enqueue("flaky", r#"{"fail_times":1}"#).await;
    let s = fleet
        .wait_for_state(&short, TaskState::Completed, Duration::from_secs(4))
        .await;
    let l = fleet.record(&long).await.expect("record");
    assert_eq!(
        (l.state(), l.attempt()),
        (Some(TaskState::Retrying), 2),
        "the long retry is still waiting"
    );
    assert_eq!(s.attempt(), 2);
    assert!(
        field_u64(&s, "finished_at") < field_u64(&l, "next_attempt_at"),
        "the short retry ran before the long one was due"
    );

    let l = fleet
        .wait_for_state(&long, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(l.attempt(), 3);
    assert!(field_u64(&l, "started_at") >= field_u64(&l, "next_attempt_at"));
    finish(fleet).await;
}

// ---------- final failure and the dead-letter queue ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_task_is_failed_listed_by_dead_list_and_run_again_by_dead_replay() {
    let mut fleet = Fleet::new().await;
    // Fails every attempt until the gate opens.
    let open = Arc::new(AtomicBool::new(false));
    let gate = open.clone();
    let worker = Worker::new(fleet.config.clone())
        .expect("worker")
        .handler(
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
        )
        .expect("handler");
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
    let finished_at = field_u64(&r, "finished_at");
    assert!(
        dead_at.abs_diff(finished_at) < 5_000,
        "dead at {dead_at}, failed at {finished_at}"
    );
    let (code, table, err) = cli(&fleet.config, &["dead", "list"]).await;
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
    let (code, out, err) = cli(&fleet.config, &["dead", "replay", &id.to_string()]).await;
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
    finish(fleet).await;
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
    let (code, out, err) = cli(&fleet.config, &["dead", "replay", &unknown.to_string()]).await;
    assert_eq!(code, 1, "unknown id: {out} {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&unknown.to_string()), "{err}");

    let (code, out, err) = cli(&fleet.config, &["dead", "replay", "--all"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "nothing replayed");
    assert!(err.contains("cannot be replayed"), "{err}");
    let dead = fleet.names().dead();
    assert_eq!(
        amqp::queue_depth(&url, &dead).await,
        Some((1, 0)),
        "the malformed message stays in {dead}"
    );
    finish(fleet).await;
}

// ---------- duplicates, crashes and poison ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_stale_attempt_does_not_execute() {
    // Attempt 1 fails and waits 200 ms; attempt 2 fails and waits 5 s; attempt 3 succeeds.
    let config = with_type_backoff(test_config(), "counted", backoff(200, 25.0, 0.0));
    let mut fleet = Fleet::with_config(config).await;
    let runs = Arc::new(Mutex::new(Vec::<u32>::new()));
    let seen = runs.clone();
    let worker = Worker::new(fleet.config.clone())
        .expect("worker")
        .handler(
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
        )
        .expect("handler");
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
    let queue = fleet.names().queue(&"counted".parse().expect("type"));
    let url = fleet.config.amqp_url.clone();
    let stale = format!(r#"{{"id":"{id}","type":"counted","payload":{{}},"attempt":1}}"#);
    publish_confirmed_raw(&url, &exchange, "counted", stale.as_bytes()).await;
    wait_until_settled(&fleet, &queue).await;
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
    publish_confirmed_raw(&url, &exchange, "counted", last.as_bytes()).await;
    wait_until_settled(&fleet, &queue).await;
    assert_eq!(*runs.lock().expect("runs"), vec![1, 2, 3]);
    assert_eq!(fleet.record(&id).await.expect("record").fields, done.fields);
    let s = fleet.stats("counted").await;
    assert_eq!((s.enqueued, s.retried, s.completed, s.live()), (1, 2, 1, 0));
    finish(fleet).await;
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
    finish(fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_that_keeps_killing_its_worker_ends_in_the_dead_queue_after_the_bound() {
    let fleet = Fleet::new().await;
    let config_file = log_path(&fleet.config, "config.toml");
    std::fs::write(&config_file, "max_redeliveries = 2\n").expect("write config");
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
    finish(fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_of_a_running_attempt_does_not_fail_the_task() {
    let mut fleet = Fleet::new().await;
    let runs = Arc::new(Mutex::new(0u32));
    for _ in 0..2 {
        let seen = runs.clone();
        let worker = Worker::new(fleet.config.clone())
            .expect("worker")
            .handler(
                "slow",
                handler_fn(move |ctx, _payload| {
                    *seen.lock().expect("runs") += 1;
                    async move {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                        Ok(json!({ "attempt": ctx.attempt() }))
                    }
                }),
            )
            .expect("handler");
        fleet.start_worker_with(worker).await;
    }
    let id = fleet.enqueue("slow", "{}").await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(5))
        .await;
    // A second copy of the running attempt: a producer's publish retried after a lost
    // confirm, or a foreign client publishing twice.
    let copy = format!(r#"{{"id":"{id}","type":"slow","payload":{{}},"attempt":1}}"#);
    publish_confirmed_raw(
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
    let queue = fleet.names().queue(&"slow".parse().expect("type"));
    wait_until_settled(&fleet, &queue).await;
    let s = fleet.stats("slow").await;
    assert_eq!((s.enqueued, s.completed, s.failed, s.live()), (1, 1, 0, 0));
    finish(fleet).await;
}
