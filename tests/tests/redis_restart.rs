//! Guarantees 1, 2 and 6 across a Redis restart, inside the suite: a private
//! `redis-server` (append-only file synced at every write, as a Redis that must not
//! lose an acknowledged write is run) is killed and started again while two
//! in-process workers, on the default RabbitMQ, work through a few hundred tasks. The
//! fleet reconnects by itself; nothing is lost and nothing completes twice, counted
//! by what the handlers ran and by every record, not by the counters alone. (The
//! shared Redis is never restarted here: `scripts/chaos redis-restart` does that.)

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use taskfleet_common::{TaskId, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::private_redis::PrivateRedis;
use taskfleet_tests::runs::RunLog;
use taskfleet_tests::{Fleet, eventually, test_config, worker_with};

/// Tasks enqueued before the restart, and after it (by the same producer).
const BEFORE: usize = 300;
const AFTER: usize = 50;

/// How long Redis stays down once the runs in flight at the crash have returned.
const OUTAGE: Duration = Duration::from_secs(2);

/// Enqueues `{"n":from}` .. `{"n":to-1}` (a few at a time); the ids in order.
async fn enqueue_range(fleet: &Fleet, from: usize, to: usize) -> Vec<TaskId> {
    futures_util::stream::iter(from..to)
        .map(|n| async move {
            let req = EnqueueRequest::new("echo", &format!("{{\"n\":{n}}}")).expect("request");
            fleet.producer.enqueue(&req).await.expect("enqueue").id
        })
        .buffered(16)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_recovers_from_a_redis_restart_under_load_losing_and_doubling_nothing() {
    let t0 = Instant::now();
    let mut redis = PrivateRedis::start_persistent().await;
    let mut config = test_config();
    config.redis_url = redis.url();
    // Leases far longer than the outage: no run is taken over, so each task runs
    // exactly once (a takeover would be a legitimate second run).
    config.worker.heartbeat_interval = Duration::from_millis(500);
    config.worker.lease = Duration::from_secs(8);
    let mut fleet = Fleet::with_config(config).await;
    let runs = RunLog::new();
    for _ in 0..2 {
        // 100 ms per task: about 2 s of work for the fleet, in flight at the restart.
        let worker = worker_with(&fleet, "echo", runs.echo(Duration::from_millis(100)));
        fleet.start_worker_with(worker).await;
    }
    let mut ids = enqueue_range(&fleet, 0, BEFORE).await;

    eventually(Duration::from_secs(30), "a quarter completed", || async {
        (fleet.stats("echo").await.completed >= BEFORE as i64 / 4).then_some(())
    })
    .await;
    let at_restart = fleet.stats("echo").await;
    redis.stop().await;
    // The runs in flight at the crash end while Redis is down: their commits meet a
    // dead server and must be retried, not given up (that would run them again).
    eventually(
        Duration::from_secs(10),
        "the runs in flight to return",
        || async { (runs.in_flight() == 0).then_some(()) },
    )
    .await;
    // The outage itself (a fault's length, not a wait for a condition): several of
    // the commits' retry pauses, well within the lease.
    tokio::time::sleep(OUTAGE).await;
    redis.start_again().await;
    eprintln!(
        "redis down for {OUTAGE:?}+ with {} of {BEFORE} completed, {} running",
        at_restart.completed, at_restart.running
    );
    assert!(
        at_restart.completed < BEFORE as i64,
        "restarted under load ({at_restart:?})"
    );
    ids.extend(enqueue_range(&fleet, BEFORE, BEFORE + AFTER).await);
    let total = (BEFORE + AFTER) as i64;

    let s = eventually(Duration::from_secs(60), "every task completed", || async {
        let s = fleet.stats("echo").await;
        (s.completed >= total && s.live() == 0).then_some(s)
    })
    .await;
    assert_eq!(s.enqueued, total);
    assert_eq!(s.completed, total, "each task counted once");
    assert_eq!((s.failed, s.cancelled, s.retried), (0, 0, 0));
    for (n, id) in ids.iter().enumerate() {
        let r = fleet
            .record(id)
            .await
            .expect("record kept across the restart");
        assert_eq!(r.state(), Some(TaskState::Completed), "task {id}");
        assert_eq!(r.get("result"), Some(format!("{{\"n\":{n}}}").as_str()));
        assert_eq!(r.attempt(), 1, "a restart uses no attempt: {id}");
    }
    assert_eq!(
        runs.not_once(&ids),
        Vec::new(),
        "each task ran exactly once (task, runs)"
    );
    assert_eq!(runs.total(), total as u64, "no other run");
    assert!(
        fleet.store.running_ids().await.expect("redis").is_empty(),
        "no lease left"
    );
    fleet.teardown().await;
    eprintln!("redis restart under load: {:?} in all", t0.elapsed());
}
