//! Issue 11 (schedules): `[schedules.NAME]` with `every` fires once per tick across
//! the fleet — one elected leader per schedule, each tick deduplicated by its
//! idempotency key — and a leader killed with -9 is replaced within its lease with no
//! tick doubled.

use std::time::Duration;
use taskfleet_common::config::{CatchUp, ScheduleConfig};
use taskfleet_common::{Config, TaskType};
use taskfleet_tests::logs::log_path;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, eventually, redis_direct, test_config};

fn now_ms() -> u64 {
    taskfleet_producer::request::now_ms()
}

fn every_second(config: &mut Config, catch_up: CatchUp) {
    config.schedules.insert(
        "tick".into(),
        ScheduleConfig {
            task_type: "echo".into(),
            payload: serde_json::json!({"from": "schedule"}),
            cron: None,
            every: Some(Duration::from_secs(1)),
            timezone: None,
            catch_up,
        },
    );
}

/// Distinct ticks fired (their idempotency keys) and tasks enqueued for them.
async fn ticks_and_tasks(fleet: &Fleet) -> (usize, i64) {
    let mut conn = redis_direct::connect(&fleet.config.redis_url)
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(fleet.names().idempotency_key("schedule:tick:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    let t: TaskType = "echo".parse().expect("type");
    let enqueued = fleet.store.type_stats(&t).await.expect("stats").enqueued;
    (keys.len(), enqueued)
}

async fn until(at: u64) {
    eventually(
        Duration::from_secs(60),
        "the clock to pass a time",
        || async { (now_ms() >= at).then_some(()) },
    )
    .await
}

#[tokio::test]
async fn an_every_second_schedule_fires_once_per_tick_across_two_workers() {
    let mut config = test_config();
    every_second(&mut config, CatchUp::None);
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    fleet.start_worker().await;
    let start = now_ms();
    until(start + 10_000).await;
    let (ticks, tasks) = ticks_and_tasks(&fleet).await;
    assert!((9..=11).contains(&ticks), "{ticks} ticks in 10 s");
    assert_eq!(tasks as usize, ticks, "no tick enqueued twice");
    let schedules = fleet.store.schedules().await.expect("schedules");
    let tick = schedules.iter().find(|s| s.name == "tick").expect("shown");
    assert!(tick.fields.contains_key("leader") && tick.fields.contains_key("last_id"));
    assert_eq!(tick.fields.get("every").map(String::as_str), Some("1s"));
    fleet.teardown().await;
}

#[tokio::test]
async fn a_killed_leader_is_replaced_and_no_tick_doubles() {
    let mut config = test_config();
    config.worker.heartbeat_interval = Duration::from_millis(300);
    config.worker.lease = Duration::from_secs(2);
    every_second(&mut config, CatchUp::One);
    let fleet = Fleet::with_config(config.clone()).await;
    let env = [
        ("TASKFLEET_SCHEDULES__TICK__TYPE", "echo"),
        ("TASKFLEET_SCHEDULES__TICK__EVERY", "1s"),
        ("TASKFLEET_SCHEDULES__TICK__CATCH_UP", "one"),
    ];
    let args = ["--types", "echo"];
    let mut a = WorkerProcess::start_with_env(&config, &args, &log_path(&config, "a"), &env).await;
    let mut b = WorkerProcess::start_with_env(&config, &args, &log_path(&config, "b"), &env).await;
    let start = now_ms();
    let leader = eventually(Duration::from_secs(15), "a leader", || async {
        let list = fleet.store.schedules().await.ok()?;
        list.into_iter()
            .find(|s| s.name == "tick")?
            .fields
            .get("leader")
            .cloned()
    })
    .await;
    until(start + 3_000).await;
    let pid_of = |w: &WorkerProcess| format!("-{}-", w.pid());
    let killed_a = leader.contains(&pid_of(&a));
    if killed_a {
        a.kill().await
    } else {
        b.kill().await
    }
    until(start + 9_000).await;
    let (ticks, tasks) = ticks_and_tasks(&fleet).await;
    assert_eq!(tasks as usize, ticks, "no tick enqueued twice");
    // The takeover waits out the lease (2 s) and fires the latest missed tick once.
    assert!(
        (6..=10).contains(&ticks),
        "{ticks} ticks in 9 s across a takeover"
    );
    let list = fleet.store.schedules().await.expect("schedules");
    let now_leader = list
        .iter()
        .find(|s| s.name == "tick")
        .and_then(|s| s.fields.get("leader").cloned())
        .expect("a leader");
    assert_ne!(now_leader, leader, "the survivor took over");
    drop((a, b));
    fleet.teardown().await;
}
