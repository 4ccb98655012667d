//! Issue 4: how a cancel request reaches the worker that runs the task: the
//! `{ns}:cancellations` pub/sub notice within milliseconds, a listener that
//! resubscribes at once after losing its connection and finds what was published
//! meanwhile, and the heartbeat check when no notice arrives.

use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::store::CancelResult;
use taskfleet_tests::cancel::cancel_latency_ms;
use taskfleet_tests::logs::{log_contains, log_path, log_text};
use taskfleet_tests::private_redis::PrivateRedis;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, eventually, redis_direct, test_config};

const HEARTBEAT: Duration = Duration::from_millis(300);

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
/// The list is read again each round: another test of this binary may have made a
/// listener reconnect meanwhile, on a connection the first list did not have.
async fn kill_listener(conn: &mut redis::aio::MultiplexedConnection, channel: &str, port: u16) {
    let mut killed = std::collections::HashSet::new();
    for _ in 0..50 {
        // /proc is read off the runtime's threads.
        let ours = tokio::task::spawn_blocking(move || own_ports_to(port))
            .await
            .expect("/proc reader");
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
            .filter(|id| !killed.contains(id))
            .collect();
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        for id in candidates {
            killed.insert(id);
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pub/sub connection of this process listens on {channel}");
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

    let generous = HEARTBEAT * 4;
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
            .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
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
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let channel = fleet.names().cancellations_channel();
    let client = redis::Client::open(fleet.config.redis_url.as_str()).expect("redis url");
    let redis_port = redis_port(&client);
    let mut conn = redis_direct::connection(&fleet.config.redis_url).await;
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
    fleet.store.cancel(&id).await.expect("redis answers");
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
    let mut conn = redis_direct::connection(&fleet.config.redis_url).await;
    wait_for_subscribers(&conn, &channel, 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;

    kill_listener(&mut conn, &channel, redis_port).await;
    assert_eq!(
        fleet.store.cancel(&id).await.expect("redis answers"),
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
        fleet.store.cancel(id).await.expect("redis answers");
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
