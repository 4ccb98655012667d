//! Issue 4: cancellation that is fast, durable and fleet-wide, on the real servers.
//!
//! Where a test must know that a worker has already dealt with a cancelled message
//! (dropped it), it enqueues a marker task behind it on the same queue and runs the
//! worker with concurrency 1: one queue delivers in order and, with one slot and a
//! prefetch of one, the marker is only delivered once the message before it is
//! acknowledged. So "the marker completed" means "the cancelled copy was settled".

use futures_util::{FutureExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskfleet_common::store::{CancelResult, TaskRecord, TypeStats};
use taskfleet_common::{TaskId, TaskState, TaskType};
use taskfleet_tests::process::{WorkerProcess, cli, unacked};
use taskfleet_tests::{Fleet, amqp, eventually, test_config};
use taskfleet_worker::{Handler, TaskError, Worker, handler_fn};

const HEARTBEAT: Duration = Duration::from_millis(300);

/// How often a handler ran, per task.
#[derive(Clone, Default)]
struct Runs(Arc<Mutex<HashMap<TaskId, u32>>>);

impl Runs {
    fn add(&self, id: TaskId) {
        *self.0.lock().expect("not poisoned").entry(id).or_default() += 1;
    }

    fn of(&self, id: &TaskId) -> u32 {
        self.0
            .lock()
            .expect("not poisoned")
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

/// Counts its runs; fails attempts 1..=`fail_times` (payload field, default 0) like
/// the built-in `flaky`, then returns the payload.
fn counting(runs: Runs) -> impl Handler {
    handler_fn(move |ctx, payload: Value| {
        let runs = runs.clone();
        async move {
            runs.add(ctx.id());
            let fail_times = payload.get("fail_times").and_then(Value::as_u64);
            if fail_times.is_some_and(|k| u64::from(ctx.attempt()) <= k) {
                return Err(TaskError::retry("counting: a planned failure"));
            }
            Ok(payload)
        }
    })
}

/// Sets its flag when dropped: tells whether a handler's future was dropped (aborted).
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Ignores its token and sleeps 30 s; `dropped` is set when its future is dropped.
fn stubborn(dropped: Arc<AtomicBool>) -> impl Handler {
    handler_fn(move |_ctx, _payload: Value| {
        let dropped = dropped.clone();
        async move {
            let _flag = SetOnDrop(dropped);
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(json!("slept 30 s"))
        }
    })
}

fn ms(r: &TaskRecord, field: &str) -> u64 {
    r.get(field)
        .unwrap_or_else(|| panic!("record has no {field}: {:?}", r.fields))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {:?}", r.fields))
}

/// Request → `cancelled`, from the record (both stamps come from the Redis clock).
fn cancel_latency_ms(r: &TaskRecord) -> u64 {
    ms(r, "finished_at") - ms(r, "cancel_requested_at")
}

fn task_type(name: &str) -> TaskType {
    name.parse().expect("valid type")
}

/// Waits until `queue` holds no message, ready or unacknowledged, with `consumers`
/// consumers: every delivery of it was acknowledged.
async fn wait_for_settled_queue(fleet: &Fleet, task_type_name: &str, consumers: u32) {
    let queue = fleet.names().queue(&task_type(task_type_name));
    let url = fleet.config.amqp_url.clone();
    eventually(
        Duration::from_secs(15),
        &format!("{queue} empty, every delivery acknowledged"),
        || async {
            let depth = amqp::queue_depth(&url, &queue).await;
            (depth == Some((0, consumers)) && unacked(&queue) == Some(0)).then_some(())
        },
    )
    .await;
}

async fn delete_queue(url: &str, queue: &str) {
    let (conn, ch) = amqp::channel(url).await;
    let _ = ch
        .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
}

/// A worker of the fleet's configuration whose `task_type` runs `handler`.
fn worker_with(fleet: &Fleet, task_type: &str, handler: impl Handler) -> Worker {
    Worker::new(fleet.config.clone())
        .expect("worker builds")
        .handler(task_type, handler)
        .expect("valid type")
}

fn cancel_via_cli(fleet: &Fleet, id: &TaskId) -> (i32, String, String) {
    cli(&fleet.config, &["cancel", &id.to_string()], None)
}

/// Local ports of this process's TCP connections to `redis_port`.
fn own_ports_to(redis_port: u16) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next()?, 16).ok();
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| t.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (local, remote, inode) = (cols.get(1)?, cols.get(2)?, cols.get(9)?);
            (port(remote)? == redis_port && inodes.contains(*inode)).then(|| port(local))?
        })
        .collect()
}

fn redis_port(client: &redis::Client) -> u16 {
    client
        .get_connection_info()
        .addr()
        .to_string()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("redis port")
}

async fn subscribers(conn: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .expect("PUBSUB NUMSUB");
    n
}

async fn wait_for_subscribers(conn: &redis::aio::MultiplexedConnection, channel: &str, n: i64) {
    eventually(
        Duration::from_secs(10),
        &format!("{n} subscriber(s) on {channel}"),
        || {
            let mut conn = conn.clone();
            async move { (subscribers(&mut conn, channel).await == n).then_some(()) }
        },
    )
    .await;
}

/// Kills the pub/sub connection of this process that listens on `channel` (found by
/// trying this process's pub/sub connections, newest first, until nobody listens).
async fn kill_listener(conn: &mut redis::aio::MultiplexedConnection, channel: &str, port: u16) {
    let ours = own_ports_to(port);
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .expect("CLIENT LIST");
    let mut candidates: Vec<u64> = list
        .lines()
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|f| f.strip_prefix(k).map(str::to_owned))
            };
            let client_port: u16 = field("addr=")?.rsplit(':').next()?.parse().ok()?;
            ours.contains(&client_port)
                .then(|| field("id=")?.parse().ok())?
        })
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    for id in candidates {
        let _: redis::Value = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(conn)
            .await
            .expect("CLIENT KILL");
        if subscribers(conn, channel).await == 0 {
            return;
        }
    }
    panic!("no pub/sub connection of this process listens on {channel}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_cancelled_while_queued_never_starts() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let id = fleet.enqueue("count", r#"{"n":1}"#).await;

    assert_eq!(
        fleet.store.cancel(&id, true).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelled),
        "a queued task is cancelled at once"
    );
    let cancelled = fleet.record(&id).await.expect("record exists");
    assert_eq!(cancelled.state(), Some(TaskState::Cancelled));
    assert_eq!(cancelled.get("started_at"), None, "it never started");
    assert_eq!(cancelled.attempt(), 0, "no attempt was used");
    assert_eq!(
        cancelled.get("finished_at"),
        cancelled.get("cancel_requested_at"),
        "cancelled in the same step as the request"
    );
    let queue = fleet.names().queue(&task_type("count"));
    assert_eq!(
        amqp::queue_depth(&fleet.config.amqp_url, &queue).await,
        Some((1, 0)),
        "its message still waits in {queue}"
    );

    let marker = fleet.enqueue("count", r#"{"n":2}"#).await;
    let runs = Runs::default();
    let worker = worker_with(&fleet, "count", counting(runs.clone()));
    fleet.start_worker_with(worker).await;
    fleet
        .wait_for_state(&marker, TaskState::Completed, Duration::from_secs(10))
        .await;

    assert_eq!(runs.of(&id), 0, "the handler never ran the cancelled task");
    assert_eq!(runs.of(&marker), 1);
    let after = fleet.record(&id).await.expect("record exists");
    assert_eq!(
        after.fields, cancelled.fields,
        "the worker only dropped the message: the record is untouched"
    );
    wait_for_settled_queue(&fleet, "count", 1).await;
    let s = fleet.stats("count").await;
    assert_eq!(
        (s.enqueued, s.cancelled, s.completed, s.live()),
        (2, 1, 1, 0)
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_sleep_is_cancelled_well_under_a_second_and_the_worker_goes_on() {
    let fleet = Fleet::new().await;
    let log = std::env::temp_dir().join(format!(
        "taskfleet-{}-cancel-worker.log",
        fleet.config.namespace
    ));
    let mut worker = WorkerProcess::start(
        &fleet.config,
        &["--concurrency", "1", "--log-format", "json"],
        &log,
    );
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
            let text = std::fs::read_to_string(&log).unwrap_or_default();
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
    wait_for_settled_queue(&fleet, "sleep", 1).await;
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.enqueued, s.cancelled, s.completed, s.live()),
        (1, 1, 0, 0)
    );

    worker.signal(nix::sys::signal::Signal::SIGTERM);
    eventually(Duration::from_secs(15), "the worker exits", || {
        let exited = worker.try_exit();
        async move { exited }
    })
    .await;
    let _ = std::fs::remove_file(&log);
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
        fleet.store.cancel(&id, true).await.expect("redis answers"),
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
    wait_for_settled_queue(&fleet, "stubborn", 1).await;
    let s = fleet.stats("stubborn").await;
    assert_eq!((s.cancelled, s.completed, s.failed, s.live()), (1, 0, 0, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_twice_gives_the_same_answer() {
    let mut config = test_config();
    // Long enough that the running task stays `cancelling` across two CLI calls.
    config.worker.cancel_grace = Duration::from_secs(3);
    let mut fleet = Fleet::with_config(config).await;

    // Queued (no worker runs `parked`).
    let queued = fleet.enqueue("parked", "{}").await;
    let first = cancel_via_cli(&fleet, &queued);
    assert_eq!(first, (0, "cancelled\n".into(), String::new()));
    let record = fleet.record(&queued).await.expect("record");
    let stats = fleet.stats("parked").await;
    assert_eq!(cancel_via_cli(&fleet, &queued), first);
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
    let first = cancel_via_cli(&fleet, &running);
    assert_eq!(first, (0, "cancelling\n".into(), String::new()));
    let record = fleet.record(&running).await.expect("record");
    let stats = fleet.stats("stubborn").await;
    assert_eq!(cancel_via_cli(&fleet, &running), first);
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
        cancel_via_cli(&fleet, &running),
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
                cancel_via_cli(&fleet, &id),
                (0, format!("{state}\n"), String::new()),
                "the command reports the state it found"
            );
        }
        assert_eq!(
            fleet.store.cancel(&id, true).await.expect("redis answers"),
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
    let (code, out, err) = cancel_via_cli(&fleet, &unknown);
    assert_eq!(code, 1, "stdout {out:?}, stderr {err:?}");
    assert_eq!(out, "");
    assert!(
        err.contains("not found") && err.contains(&unknown.to_string()),
        "one line naming the problem: {err:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert_eq!(
        fleet
            .store
            .cancel(&unknown, true)
            .await
            .expect("redis answers"),
        CancelResult::NotFound
    );
    assert_eq!(
        fleet.store.cancel_flags(&[unknown]).await.expect("redis"),
        vec![false],
        "no flag is set for an unknown id"
    );
    let (code, _, err) = cli(&fleet.config, &["cancel", "not-a-task-id"], None);
    assert_eq!(code, 2, "a malformed id is bad input: {err:?}");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_without_the_pubsub_message_stops_within_one_heartbeat() {
    let mut config = test_config();
    config.worker.heartbeat_interval = HEARTBEAT;
    let mut fleet = Fleet::with_config(config).await;
    // Proof that the premise holds: nothing is published on `{ns}:cancellations`.
    let client = redis::Client::open(fleet.config.redis_url.as_str()).expect("redis url");
    let mut pubsub = client.get_async_pubsub().await.expect("redis reachable");
    pubsub
        .subscribe(fleet.names().cancellations_channel())
        .await
        .expect("SUBSCRIBE");
    fleet.start_worker().await;
    let slack = Duration::from_millis(200);
    let mut latencies = Vec::new();
    // A few rounds, so the request lands at different points of the heartbeat cycle.
    for _ in 0..3 {
        let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
        fleet
            .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
            .await;
        // Sets the flag and the state; publishes nothing on `{ns}:cancellations`.
        assert_eq!(
            fleet.store.cancel(&id, false).await.expect("redis answers"),
            CancelResult::State(TaskState::Cancelling)
        );
        let r = fleet
            .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
            .await;
        let latency = cancel_latency_ms(&r);
        latencies.push(latency);
        assert!(
            latency <= (HEARTBEAT + slack).as_millis() as u64,
            "found by the heartbeat check within one interval ({HEARTBEAT:?} + {slack:?}), not after {latency} ms"
        );
    }
    eprintln!("cancel latencies without pub/sub: {latencies:?} ms");
    // (`Some(None)` would only mean this subscription's connection was closed.)
    let published = pubsub.on_message().next().now_or_never().flatten();
    assert!(
        published.is_none(),
        "a cancellation was published: {published:?}"
    );
    let s = fleet.stats("sleep").await;
    assert_eq!((s.cancelled, s.live()), (3, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_cancelled_while_waiting_to_retry_never_runs_again() {
    let delay = Duration::from_secs(2);
    let mut config = test_config();
    config.worker.concurrency = 1;
    config.defaults.backoff.initial = delay;
    config.defaults.backoff.max = delay;
    config.defaults.backoff.jitter = 0.0;
    let mut fleet = Fleet::with_config(config).await;
    let runs = Runs::default();
    let worker = worker_with(&fleet, "flaky", counting(runs.clone()));
    fleet.start_worker_with(worker).await;

    let id = fleet.enqueue("flaky", r#"{"fail_times":1}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Retrying, Duration::from_secs(10))
        .await;
    assert_eq!(
        fleet.store.cancel(&id, true).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelled),
        "a task waiting to retry is cancelled at once"
    );
    let cancelled = fleet.record(&id).await.expect("record");
    assert_eq!(cancelled.attempt(), 1);
    assert!(cancelled.get("next_attempt_at").is_some());

    // The marker fails once too and waits in the same delay queue, behind the
    // cancelled task's next attempt: when the marker has completed, that copy came
    // back from the delay and was dropped.
    let marker = fleet.enqueue("flaky", r#"{"fail_times":1}"#).await;
    fleet
        .wait_for_state(&marker, TaskState::Completed, Duration::from_secs(15))
        .await;
    assert_eq!(runs.of(&marker), 2);
    assert_eq!(runs.of(&id), 1, "the cancelled task never ran again");
    let after = fleet.record(&id).await.expect("record");
    assert_eq!(
        after.fields, cancelled.fields,
        "record untouched: still cancelled at attempt 1"
    );

    let url = fleet.config.amqp_url.clone();
    let delay_queue = fleet
        .names()
        .delay_queue(&task_type("flaky"), delay.as_millis() as u64);
    assert_eq!(
        amqp::queue_depth(&url, &delay_queue).await,
        Some((0, 0)),
        "nothing left waiting in {delay_queue}"
    );
    wait_for_settled_queue(&fleet, "flaky", 1).await;
    let s = fleet.stats("flaky").await;
    assert_eq!(
        (s.enqueued, s.retried, s.cancelled, s.completed, s.live()),
        (2, 2, 1, 1, 0)
    );
    delete_queue(&url, &delay_queue).await;
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
        let (a, b) = tokio::join!(fleet.store.cancel(id, true), fleet.store.cancel(id, true));
        let (a, b) = (a.expect("redis answers"), b.expect("redis answers"));
        assert!(
            matches!(a, CancelResult::State(_)) && matches!(b, CancelResult::State(_)),
            "{a:?} {b:?}"
        );
        fleet.store.cancel(id, true).await.expect("redis answers");
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

    let url = fleet.config.amqp_url.clone();
    let delay_queue = fleet
        .names()
        .delay_queue(&task_type("flaky"), delay.as_millis() as u64);
    delete_queue(&url, &delay_queue).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_survives_a_worker_restart() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let log = std::env::temp_dir().join(format!(
        "taskfleet-{}-restart-worker.log",
        fleet.config.namespace
    ));
    let first = WorkerProcess::start(&fleet.config, &["--types", "sleep"], &log);
    fleet.wait_for_consumers("sleep", 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    drop(first); // SIGKILL: no drain, nothing committed, nothing remembered

    // No worker runs: the request flags the task and notifies nobody.
    assert_eq!(
        fleet.store.cancel(&id, true).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelling)
    );
    // RabbitMQ hands the unacknowledged delivery back once the connection is gone.
    let queue = fleet.names().queue(&task_type("sleep"));
    let url = fleet.config.amqp_url.clone();
    eventually(
        Duration::from_secs(15),
        "the killed worker's delivery back in the queue",
        || async { (amqp::queue_depth(&url, &queue).await == Some((1, 0))).then_some(()) },
    )
    .await;

    let marker = fleet.enqueue("sleep", r#"{"ms":0}"#).await;
    let runs = Runs::default();
    let worker = worker_with(&fleet, "sleep", counting(runs.clone()));
    fleet.start_worker_with(worker).await;
    fleet
        .wait_for_state(&marker, TaskState::Completed, Duration::from_secs(10))
        .await;
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(10))
        .await;
    assert_eq!(runs.of(&id), 0, "the new worker never ran it");
    assert_eq!(runs.of(&marker), 1);
    assert_eq!(r.attempt(), 1, "no new attempt");
    wait_for_settled_queue(&fleet, "sleep", 1).await;
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.enqueued, s.cancelled, s.completed, s.live()),
        (2, 1, 1, 0)
    );
    let _ = std::fs::remove_file(&log);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_flag_alone_keeps_a_queued_task_from_starting() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let id = fleet.enqueue("count", "{}").await;
    // Only the flag, as a request whose state change never reached this record.
    let client = redis::Client::open(fleet.config.redis_url.as_str()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable");
    let _: () = redis::cmd("SET")
        .arg(fleet.names().cancel_key(&id))
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("SET");
    assert_eq!(
        fleet.record(&id).await.expect("record").state(),
        Some(TaskState::Pending)
    );

    let marker = fleet.enqueue("count", "{}").await;
    let runs = Runs::default();
    let worker = worker_with(&fleet, "count", counting(runs.clone()));
    fleet.start_worker_with(worker).await;
    fleet
        .wait_for_state(&marker, TaskState::Completed, Duration::from_secs(10))
        .await;
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
        .await;
    assert_eq!(runs.of(&id), 0, "the claim refused it");
    assert_eq!(r.get("started_at"), None);
    wait_for_settled_queue(&fleet, "count", 1).await;
    let s = fleet.stats("count").await;
    assert_eq!((s.cancelled, s.completed, s.live()), (1, 1, 0));
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
        fleet.store.cancel(&id, true).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelling)
    );
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.get("result"), Some(r#""finished anyway""#));
    assert!(r.get("cancel_requested_at").is_some(), "{:?}", r.fields);
    wait_for_settled_queue(&fleet, "finisher", 1).await;
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
            fleet
                .store
                .cancel(&target, true)
                .await
                .expect("redis answers"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_listener_resubscribes_at_once_after_losing_its_connection() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let channel = fleet.names().cancellations_channel();
    let client = redis::Client::open(fleet.config.redis_url.as_str()).expect("redis url");
    let redis_port = redis_port(&client);
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable");
    wait_for_subscribers(&conn, &channel, 1).await;

    let mut gaps = Vec::new();
    for _ in 0..5 {
        kill_listener(&mut conn, &channel, redis_port).await;
        let lost = std::time::Instant::now();
        wait_for_subscribers(&conn, &channel, 1).await;
        gaps.push(lost.elapsed().as_millis() as u64);
    }
    eprintln!("resubscribed after {gaps:?} ms");
    assert!(
        gaps.iter().all(|&ms| ms < 1000),
        "each loss is repaired at once, not after a growing pause: {gaps:?} ms"
    );

    // And the repaired subscription delivers.
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    fleet.store.cancel(&id, true).await.expect("redis answers");
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
        .await;
    assert!(cancel_latency_ms(&r) < 1000, "{:?}", r.fields);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_published_while_the_listener_reconnects_is_found_on_resubscribing() {
    let mut config = test_config();
    // Heartbeats too rare to be what finds it.
    config.worker.heartbeat_interval = Duration::from_secs(10);
    config.worker.lease = Duration::from_secs(30);
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let channel = fleet.names().cancellations_channel();
    let client = redis::Client::open(fleet.config.redis_url.as_str()).expect("redis url");
    let redis_port = redis_port(&client);
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable");
    wait_for_subscribers(&conn, &channel, 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;

    kill_listener(&mut conn, &channel, redis_port).await;
    assert_eq!(
        fleet.store.cancel(&id, true).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelling)
    );
    assert_eq!(
        subscribers(&mut conn, &channel).await,
        0,
        "the notice went out while nobody listened"
    );
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(15))
        .await;
    let latency = cancel_latency_ms(&r);
    eprintln!("cancel published during a reconnect: cancelled after {latency} ms");
    assert!(
        latency < 1500,
        "found when the listener came back, not at the next heartbeat: {latency} ms"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_tasks_are_cancelled_in_milliseconds_not_heartbeats() {
    let mut config = test_config();
    config.worker.concurrency = 16;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    fleet.start_worker().await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(fleet.enqueue("sleep", r#"{"ms":60000}"#).await);
    }
    for id in &ids {
        fleet
            .wait_for_state(id, TaskState::Running, Duration::from_secs(10))
            .await;
    }
    let mut latencies = Vec::new();
    for id in &ids {
        fleet.store.cancel(id, true).await.expect("redis answers");
        let r = fleet
            .wait_for_state(id, TaskState::Cancelled, Duration::from_secs(5))
            .await;
        latencies.push(cancel_latency_ms(&r));
    }
    latencies.sort_unstable();
    let (p50, max) = (
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    eprintln!(
        "cancel latency over {} running tasks: p50 {p50} ms, max {max} ms",
        ids.len()
    );
    assert!(max < 1000, "{latencies:?}");
    // The heartbeat check alone would give a median near half an interval (150 ms).
    assert!(p50 < 100, "pub/sub drives the latency: {latencies:?}");
    let s = fleet.stats("sleep").await;
    assert_eq!((s.cancelled, s.live()), (30, 0));
    fleet.teardown().await;
}
