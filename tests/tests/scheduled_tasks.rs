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
    // Redis loses every key of the namespace during the delay (record, counters,
    // registry, expiring zset): the envelope recreates the record.
    let mut conn = redis_direct::connect(&config.redis_url)
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(fleet.names().redis_pattern())
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.contains(&fleet.names().task_key(&id)), "{keys:?}");
    let _: i64 = redis::cmd("DEL")
        .arg(&keys)
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
    let mut fleet = Fleet::new().await;
    let now = now_ms();
    let mut ids = Vec::new();
    for ahead in [1_000, 3_600_000, 30 * 86_400_000] {
        ids.push(enqueue_at(&fleet, Some(now + ahead), None).await);
    }
    let prefix = format!("{}.delay.", fleet.names().namespace());
    let queues = queues_with_prefix(&fleet.config.amqp_url, &prefix).await;
    assert_eq!(queues.len(), 3, "one first-hop tier each: {queues:?}");
    fleet.start_worker().await;
    // A hundred more distinct delays between 1 s and 30 days add no queue past the
    // tiers, and the 1 s task runs through its hops while the others wait.
    for i in 0..100_u64 {
        let ahead = 1_000 + (uuid::Uuid::new_v4().as_u64_pair().0 % (30 * 86_400_000)) + i;
        enqueue_at(&fleet, Some(now + ahead), None).await;
    }
    fleet
        .wait_for_state(&ids[0], TaskState::Completed, Duration::from_secs(15))
        .await;
    let queues = queues_with_prefix(&fleet.config.amqp_url, &prefix).await;
    eprintln!(
        "delays of 1 s, 1 h, 30 days and 100 random ones: {} delay queues (bound {})",
        queues.len(),
        delay::TIERS
    );
    assert!(queues.len() <= delay::TIERS as usize, "{queues:?}");
    for id in &ids[1..] {
        let rec = fleet.record(id).await.expect("record");
        assert_eq!(rec.state(), Some(TaskState::Scheduled), "still waiting");
    }
    fleet.teardown().await;
}

#[tokio::test]
async fn two_hundred_random_delays_start_close_to_their_run_at() {
    // Tests of this file that run binaries build them first, once per process: that
    // build must not load the machine while this one measures.
    taskfleet_tests::process::bin("taskfleet").await;
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
    // The Done-when target itself: measured p99 is tens of ms, so a loaded CI
    // machine meets it with room, and a delay held a tier too long does not.
    assert!(p99 < 1_000, "p99 lateness {p99} ms (target: within 1 s)");
    fleet.teardown().await;
}

/// `taskfleet enqueue echo ARGS` prints an id and exits 0.
async fn cli_enqueue(fleet: &Fleet, args: &[&str]) -> TaskId {
    let mut all = vec!["enqueue", "echo", r#"{"cli":true}"#];
    all.extend_from_slice(args);
    let (code, out, err) = taskfleet_tests::process::cli(&fleet.config, &all, None).await;
    assert_eq!(code, 0, "{all:?}: {err}");
    out.trim().parse().expect("prints an id")
}

/// The Done-when timing of a CLI-enqueued delayed task: `scheduled`, not started
/// 0.5 s before its run_at, finished within 1.5 s after it (the 1 s start target and
/// the echo run, on a loaded machine: a task held past its run_at, or started early,
/// fails it).
async fn scheduled_then_on_time(fleet: &Fleet, id: &TaskId) {
    let rec = fleet.record(id).await.expect("record");
    assert_eq!(rec.state(), Some(TaskState::Scheduled));
    let run_at = ms(&rec, "run_at");
    until(run_at - 500).await;
    let rec = fleet.record(id).await.expect("record");
    assert_eq!(rec.state(), Some(TaskState::Scheduled), "not started early");
    let done = fleet
        .wait_for_state(id, TaskState::Completed, Duration::from_secs(15))
        .await;
    let (started, finished) = (ms(&done, "started_at"), ms(&done, "finished_at"));
    assert!(started + 5 >= run_at, "started {started} before {run_at}");
    assert!(
        finished <= run_at + 1500,
        "finished {} ms after run_at",
        finished - run_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_delay_3s_from_the_cli_is_scheduled_then_completes_by_4_5s() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let id = cli_enqueue(&fleet, &["--delay", "3s"]).await;
    scheduled_then_on_time(&fleet, &id).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_at_from_the_cli_is_scheduled_then_completes_on_time() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    let at_text = humantime::format_rfc3339_millis(at).to_string();
    let id = cli_enqueue(&fleet, &["--at", &at_text]).await;
    let rec = fleet.record(&id).await.expect("record");
    let wanted = at
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64;
    assert_eq!(ms(&rec, "run_at"), wanted, "run_at is the --at time");
    scheduled_then_on_time(&fleet, &id).await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_delays_exit_2_with_a_one_line_reason_and_enqueue_nothing() {
    let fleet = Fleet::new().await;
    let far =
        humantime::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(46 * 86_400))
            .to_string();
    for (args, needle) in [
        (
            vec!["--delay", "1s", "--at", "2026-12-01T12:00:00Z"],
            "--at",
        ),
        (vec!["--delay=-5s"], "--delay"),
        (vec!["--delay", "soon"], "--delay"),
        (vec!["--at", "tomorrow"], "--at"),
        (vec!["--at", far.as_str()], "days ahead"),
        (vec!["--expires=-1m"], "--expires"),
    ] {
        let mut all = vec!["enqueue", "echo", "{}"];
        all.extend_from_slice(&args);
        let (code, out, err) = taskfleet_tests::process::cli(&fleet.config, &all, None).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    }
    assert_eq!(fleet.stats("echo").await.enqueued, 0);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_a_task_whose_message_no_worker_takes() {
    let config = test_config();
    let fleet = Fleet::with_config(config.clone()).await;
    let mut req = EnqueueRequest::new("sleep", r#"{"ms":1}"#).expect("request");
    let expires_at = now_ms() + 1500;
    req.expires_at = Some(expires_at);
    let id = fleet.producer.enqueue(&req).await.expect("enqueue").id;
    // A live worker that serves another type: only its sweep can see the task.
    let _sweeper =
        WorkerProcess::start(&config, &["--types", "echo"], &log_path(&config, "sweeper")).await;
    let rec = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(15))
        .await;
    assert_eq!(rec.get("reason"), Some("expired"));
    assert_eq!(rec.get("started_at"), None, "never ran");
    let finished = ms(&rec, "finished_at");
    assert!(finished >= expires_at, "not before its expires_at");
    assert!(
        finished < expires_at + 3000,
        "swept {} ms after expires_at (the sweep runs every heartbeat interval)",
        finished - expires_at
    );
    let queue = fleet.names().queue(&taskfleet_tests::task_type("sleep"));
    let depth = taskfleet_tests::amqp::queue_depth(&fleet.config.amqp_url, &queue).await;
    assert_eq!(depth, Some((1, 0)), "its message was never delivered");
    let stats = fleet.stats("sleep").await;
    assert_eq!((stats.pending, stats.cancelled), (0, 1), "counted once");
    let mut conn = redis_direct::connect(&config.redis_url)
        .await
        .expect("redis");
    let left: i64 = redis::cmd("ZCARD")
        .arg(fleet.names().expiring_key())
        .query_async(&mut conn)
        .await
        .expect("zcard");
    assert_eq!(left, 0, "the swept entry is removed");
    fleet.teardown().await;
}
