//! Issue 11 (delays and expiry): a task enqueued for later is `scheduled` and held
//! by the broker — hopping through a bounded set of delay tiers — until its run_at,
//! then runs once; it survives a worker killed with -9 and the loss of its Redis
//! record during the delay; cancelling it means it never starts; a task not started
//! by its expires_at never runs and ends `cancelled` with reason `expired`.

use std::time::Duration;
use taskfleet_common::amqp::delay;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::logs::log_path;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::rabbitmqctl::queues_with_prefix;
use taskfleet_tests::record::ms;
use taskfleet_tests::{Fleet, eventually, redis_direct, test_config};

fn now_ms() -> u64 {
    taskfleet_producer::request::now_ms()
}

async fn enqueue_at(fleet: &Fleet, run_at: Option<u64>, expires_at: Option<u64>) -> TaskId {
    let mut req = EnqueueRequest::new("echo", r#"{"later":true}"#).expect("request");
    req.run_at = run_at;
    req.expires_at = expires_at;
    fleet.producer.enqueue(&req).await.expect("enqueue").id
}

/// Waits until this machine's clock passed `at` (ms): a deadline, not a sleep.
async fn until(at: u64) {
    eventually(
        Duration::from_secs(60),
        "the clock to pass a time",
        || async { (now_ms() >= at).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn a_delayed_task_is_scheduled_until_due_then_runs_once() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let run_at = now_ms() + 3000;
    let id = enqueue_at(&fleet, Some(run_at), None).await;
    let rec = fleet.record(&id).await.expect("record");
    assert_eq!(rec.state(), Some(TaskState::Scheduled));
    assert_eq!(fleet.stats("echo").await.scheduled, 1);

    until(run_at - 500).await;
    let rec = fleet.record(&id).await.expect("record");
    assert_eq!(rec.state(), Some(TaskState::Scheduled), "not started early");

    let done = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    let started = ms(&done, "started_at");
    assert!(
        started + 5 >= run_at,
        "started {started} before run_at {run_at}"
    );
    let stats = fleet.stats("echo").await;
    assert_eq!((stats.scheduled, stats.completed), (0, 1));
    fleet.teardown().await;
}

#[tokio::test]
async fn a_time_in_the_past_runs_now() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let id = enqueue_at(&fleet, Some(now_ms() - 60_000), None).await;
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    fleet.teardown().await;
}

#[tokio::test]
async fn a_cancelled_scheduled_task_never_starts() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let run_at = now_ms() + 1500;
    let id = enqueue_at(&fleet, Some(run_at), None).await;
    let state = fleet.producer.cancel(&id).await.expect("cancel");
    assert_eq!(state, TaskState::Cancelled);
    // Past its run_at, its copy arrived and was dropped.
    until(run_at + 1500).await;
    fleet.wait_for_settled_queue("echo", 1).await;
    let rec = fleet.record(&id).await.expect("record");
    assert_eq!(rec.state(), Some(TaskState::Cancelled));
    assert_eq!(rec.get("reason"), Some("requested"));
    assert_eq!(rec.get("started_at"), None, "never started");
    fleet.teardown().await;
}

#[tokio::test]
async fn a_task_not_started_by_its_expiry_never_runs() {
    let mut fleet = Fleet::new().await;
    let expires_at = now_ms() + 2000;
    let id = enqueue_at(&fleet, None, Some(expires_at)).await;
    until(expires_at + 2000).await;
    fleet.start_worker().await;
    let rec = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(15))
        .await;
    assert_eq!(rec.get("reason"), Some("expired"));
    assert_eq!(rec.get("started_at"), None, "never ran");
    let stats = fleet.stats("echo").await;
    assert_eq!((stats.cancelled, stats.completed, stats.pending), (1, 0, 0));
    fleet.teardown().await;
}

#[tokio::test]
async fn a_scheduled_task_survives_a_killed_worker_and_its_lost_record() {
    let config = test_config();
    let fleet = Fleet::with_config(config.clone()).await;
    let args = ["--types", "echo"];
    let mut first = WorkerProcess::start(&config, &args, &log_path(&config, "first")).await;
    fleet.wait_for_consumers("echo", 1).await;
    let run_at = now_ms() + 4000;
    let id = enqueue_at(&fleet, Some(run_at), None).await;
    first.kill().await;
    // Redis loses the record during the delay: the envelope recreates it.
    let mut conn = redis_direct::connect(&config.redis_url)
        .await
        .expect("redis");
    let _: i64 = redis::cmd("DEL")
        .arg(fleet.names().task_key(&id))
        .query_async(&mut conn)
        .await
        .expect("del");
    let second = WorkerProcess::start(&config, &args, &log_path(&config, "second")).await;
    let done = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(20))
        .await;
    assert!(ms(&done, "started_at") + 5 >= run_at, "not early");
    assert_eq!(
        done.get("run_at").map(|v| v.parse::<u64>().is_ok()),
        Some(true)
    );
    assert_eq!(fleet.stats("echo").await.completed, 1, "ran once");
    drop(second);
    fleet.teardown().await;
}

#[tokio::test]
async fn delays_from_a_second_to_thirty_days_share_a_bounded_set_of_queues() {
    let fleet = Fleet::new().await;
    let now = now_ms();
    for ahead in [1_000, 3_600_000, 30 * 86_400_000] {
        enqueue_at(&fleet, Some(now + ahead), None).await;
    }
    let prefix = format!("{}.delay.", fleet.names().namespace());
    let queues = queues_with_prefix(&fleet.config.amqp_url, &prefix).await;
    assert_eq!(queues.len(), 3, "one first-hop tier each: {queues:?}");
    assert!(queues.len() <= delay::TIERS as usize);
    fleet.teardown().await;
}

#[tokio::test]
async fn two_hundred_random_delays_start_close_to_their_run_at() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let now = now_ms();
    let mut ids = Vec::new();
    for _ in 0..200 {
        let jitter = uuid::Uuid::new_v4().as_u64_pair().0 % 4000;
        let run_at = now + 1000 + jitter;
        ids.push((enqueue_at(&fleet, Some(run_at), None).await, run_at));
    }
    let mut late = Vec::new();
    for (id, run_at) in &ids {
        let done = fleet
            .wait_for_state(id, TaskState::Completed, Duration::from_secs(30))
            .await;
        let started = ms(&done, "started_at");
        assert!(started + 5 >= *run_at, "{id} started early");
        late.push(started as i64 - *run_at as i64);
    }
    late.sort_unstable();
    let p99 = late[late.len() * 99 / 100 - 1];
    eprintln!(
        "scheduled start - run_at over 200 tasks: min {} ms, p50 {} ms, p99 {} ms, max {} ms",
        late[0],
        late[late.len() / 2],
        p99,
        late[late.len() - 1]
    );
    // A behaviour bound a loaded CI machine meets; the 1 s target is measured above.
    assert!(p99 < 5_000, "p99 lateness {p99} ms");
    fleet.teardown().await;
}
