//! Issue 4: how a cancel request reaches the worker that runs the task: the
//! `{ns}:cancellations` pub/sub notice within milliseconds, a listener that
//! resubscribes at once after losing its connection and finds what was published
//! meanwhile, and the heartbeat check when no notice arrives.
//!
//! Each test whose listener is cut runs on a private Redis, where the worker's
//! listener is the only pub/sub client (no other test's connection can be taken for
//! it), with heartbeats so rare that only the pub/sub path can stop a task in time.
//! How fast (median cancel latency, resubscribe pause) is `scripts/bench`'s business.

use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};
use taskfleet_common::store::CancelResult;
use taskfleet_common::{Config, TaskState};
use taskfleet_tests::cancel::cancel_latency_ms;
use taskfleet_tests::logs::{log_contains, log_path, log_text};
use taskfleet_tests::private_redis::PrivateRedis;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, eventually, test_config};
use taskfleet_worker::Worker;

/// The heartbeat of the heartbeat-only test: long enough that "within a few
/// intervals" is a bound a loaded machine meets.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Heartbeats (and leases) so rare that they never stop a task within these tests'
/// bounds: what stops it there is the pub/sub notice.
const RARE_HEARTBEAT: Duration = Duration::from_secs(30);
const RARE_LEASE: Duration = Duration::from_secs(90);

/// Within this of the request, a task stopped by the notice (or by the flag check on
/// resubscribing), never by a rare heartbeat.
const NOTICE_BOUND_MS: u64 = 3_000;

/// A configuration on `redis` whose heartbeats are rare.
fn rare_heartbeats(redis: &PrivateRedis) -> Config {
    let mut config = test_config();
    config.redis_url = redis.url();
    config.worker.heartbeat_interval = RARE_HEARTBEAT;
    config.worker.lease = RARE_LEASE;
    config
}

async fn subscribers(conn: &mut MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .expect("PUBSUB NUMSUB");
    n
}

async fn wait_for_subscribers(conn: &MultiplexedConnection, channel: &str, n: i64) {
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

/// Ids of the server's pub/sub clients (`CLIENT LIST TYPE pubsub`).
async fn pubsub_clients(conn: &mut MultiplexedConnection) -> Vec<u64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))?
                .parse()
                .ok()
        })
        .collect()
}

/// Kills the worker's cancellation listener. On a test's private Redis it is the
/// only pub/sub client: asserted (one client, subscribed to `channel`) before it is
/// killed, so that no other connection is ever taken for it.
async fn kill_the_listener(conn: &mut MultiplexedConnection, channel: &str) {
    let clients = pubsub_clients(conn).await;
    assert_eq!(
        clients.len(),
        1,
        "the worker's listener is the only pub/sub client: {clients:?}"
    );
    assert_eq!(
        subscribers(conn, channel).await,
        1,
        "it listens on {channel}"
    );
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(clients[0])
        .query_async(conn)
        .await
        .expect("CLIENT KILL");
    wait_for_subscribers(conn, channel, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_without_the_pubsub_message_stops_within_one_heartbeat() {
    // A Redis of its own, where the worker's user may publish the events its scripts
    // publish but use no other channel: its cancellation listener cannot subscribe,
    // so only the heartbeat check can stop a task. (Without `&{ns}:events` every
    // transition script's PUBLISH would be refused too.)
    let redis = PrivateRedis::start().await;
    let mut config = test_config();
    config.redis_url = redis.url();
    config.worker.heartbeat_interval = HEARTBEAT;
    config.worker.lease = HEARTBEAT * 5;
    let fleet = Fleet::with_config(config).await;
    let events = format!("&{}", fleet.names().events_channel());
    redis
        .add_user("w", "pw", &["~*", "resetchannels", &events, "+@all"])
        .await;
    let mut worker_config = fleet.config.clone();
    worker_config.redis_url = redis.url_as("w", "pw");
    let log = log_path(&fleet.config, "no-pubsub-worker");
    let _worker = WorkerProcess::start_with_env(
        &worker_config,
        &["--types", "sleep"],
        &log,
        &[("RUST_LOG", "info,taskfleet_worker::liveness=debug")],
    )
    .await;
    fleet.wait_for_consumers("sleep", 1).await;

    // Proof that the premise holds: the listener tried and was refused, and nobody
    // listens on `{ns}:cancellations`.
    eventually(
        Duration::from_secs(10),
        "the worker's listener refused a subscription",
        || {
            log_contains(
                &fleet.config,
                "no-pubsub-worker",
                "cancellation listener cannot subscribe",
            )
        },
    )
    .await;
    let channel = fleet.names().cancellations_channel();
    let mut conn = redis.connection().await;
    assert_eq!(
        subscribers(&mut conn, &channel).await,
        0,
        "nobody listens on {channel}"
    );

    // A few intervals: the check runs at every beat, not at some later pass.
    let generous = HEARTBEAT * 3;
    let mut latencies = Vec::new();
    // A few rounds, so the request lands at different points of the heartbeat cycle.
    for _ in 0..3 {
        let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
        fleet
            .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
            .await;
        // A normal request: it publishes the id, which no listener receives.
        assert_eq!(
            fleet.store.cancel(&id).await.expect("redis answers"),
            CancelResult::State(TaskState::Cancelling)
        );
        let r = fleet
            .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(10))
            .await;
        let latency = cancel_latency_ms(&r);
        latencies.push(latency);
        assert!(
            latency <= generous.as_millis() as u64,
            "found by the heartbeat check within a few intervals ({generous:?}), not after {latency} ms"
        );
    }
    eprintln!("cancel latencies without pub/sub: {latencies:?} ms");
    let text = log_text(&fleet.config, "no-pubsub-worker").await;
    assert_eq!(
        text.matches("cancellation found by the heartbeat check")
            .count(),
        3,
        "the heartbeat check stopped each task: {text}"
    );
    assert!(!text.contains("cancellation received"), "{text}");
    let s = fleet.stats("sleep").await;
    assert_eq!((s.cancelled, s.live()), (3, 0));
    drop(_worker);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_listener_resubscribes_at_once_after_losing_its_connection() {
    let redis = PrivateRedis::start().await;
    let mut fleet = Fleet::with_config(rare_heartbeats(&redis)).await;
    fleet.start_worker().await;
    let channel = fleet.names().cancellations_channel();
    let mut conn = redis.connection().await;
    wait_for_subscribers(&conn, &channel, 1).await;

    // Seven losses in a row: a backoff that is never reset would pause 200 ms, 0.4,
    // 0.8, 1.6, 3.2, then 5 s (±20 %); "at once" is the shortest pause each time.
    let mut gaps = Vec::new();
    for _ in 0..7 {
        kill_the_listener(&mut conn, &channel).await;
        let lost = Instant::now();
        wait_for_subscribers(&conn, &channel, 1).await;
        gaps.push(lost.elapsed().as_millis() as u64);
    }
    eprintln!("resubscribed after {gaps:?} ms");
    assert!(
        gaps.iter().all(|&ms| ms < 3_000),
        "each loss is repaired at once, not after a growing pause: {gaps:?} ms"
    );

    // And the repaired subscription delivers: with heartbeats every 30 s, only the
    // notice can stop the task within seconds.
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    fleet.store.cancel(&id).await.expect("redis answers");
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(10))
        .await;
    let latency = cancel_latency_ms(&r);
    assert!(
        latency < NOTICE_BOUND_MS,
        "stopped by the notice, not a heartbeat: {latency} ms"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_published_while_the_listener_reconnects_is_found_on_resubscribing() {
    let redis = PrivateRedis::start().await;
    let mut fleet = Fleet::with_config(rare_heartbeats(&redis)).await;
    // The worker's own user, whose channels the test can take away and give back.
    let events = format!("&{}", fleet.names().events_channel());
    let channel = fleet.names().cancellations_channel();
    let cancellations = format!("&{channel}");
    redis
        .add_user(
            "w",
            "pw",
            &["~*", "resetchannels", &events, &cancellations, "+@all"],
        )
        .await;
    let mut worker_config = fleet.config.clone();
    worker_config.redis_url = redis.url_as("w", "pw");
    fleet
        .start_worker_with(Worker::new(worker_config).expect("worker builds"))
        .await;
    let mut conn = redis.connection().await;
    wait_for_subscribers(&conn, &channel, 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;

    // Cut the listener and keep it out (its resubscribing is refused meanwhile), so
    // the notice surely goes out while nobody listens.
    redis.add_user("w", "pw", &["resetchannels", &events]).await;
    if subscribers(&mut conn, &channel).await > 0 {
        kill_the_listener(&mut conn, &channel).await;
    }
    assert_eq!(
        fleet.store.cancel(&id).await.expect("redis answers"),
        CancelResult::State(TaskState::Cancelling)
    );
    assert_eq!(
        subscribers(&mut conn, &channel).await,
        0,
        "the notice went out while nobody listened"
    );
    let r = fleet.record(&id).await.expect("record");
    assert_eq!(r.state(), Some(TaskState::Cancelling), "not stopped yet");
    redis.add_user("w", "pw", &[&cancellations]).await;

    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(15))
        .await;
    let latency = cancel_latency_ms(&r);
    eprintln!("cancel published during a reconnect: cancelled after {latency} ms");
    assert!(
        latency < NOTICE_BOUND_MS * 2,
        "found when the listener came back, not at the next heartbeat: {latency} ms"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_tasks_are_cancelled_in_milliseconds_not_heartbeats() {
    let mut config = test_config();
    config.worker.concurrency = 16;
    // Heartbeats every 30 s: a task stopped within seconds was told by pub/sub.
    config.worker.heartbeat_interval = RARE_HEARTBEAT;
    config.worker.lease = RARE_LEASE;
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
        fleet.store.cancel(id).await.expect("redis answers");
        let r = fleet
            .wait_for_state(id, TaskState::Cancelled, Duration::from_secs(10))
            .await;
        latencies.push(cancel_latency_ms(&r));
    }
    latencies.sort_unstable();
    eprintln!(
        "cancel latency over {} running tasks: p50 {} ms, max {} ms (targets: scripts/bench)",
        ids.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    assert!(
        latencies.iter().all(|&ms| ms < NOTICE_BOUND_MS),
        "each stopped by its notice, long before a heartbeat: {latencies:?}"
    );
    let s = fleet.stats("sleep").await;
    assert_eq!((s.cancelled, s.live()), (30, 0));
    fleet.teardown().await;
}
