//! Issue 19: tasks that run longer than RabbitMQ lets a delivery stay unacknowledged
//! (`consumer_timeout`), on a private node whose timeout is 3 s and checked every
//! second. A long run parks its delivery and goes on; a channel the broker closes
//! anyway does not stop a healthy run; a parked run whose worker dies is taken over
//! once its lease expired.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use taskfleet_common::amqp::delay;
use taskfleet_common::{Config, Names, TaskState, TaskType};
use taskfleet_tests::logs::log_path;
use taskfleet_tests::private_rabbit::PrivateRabbit;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, amqp, eventually, test_config};
use taskfleet_worker::{TaskError, Worker, handler_fn};

const CONSUMER_TIMEOUT: Duration = Duration::from_secs(3);

fn config_on(rabbit: &PrivateRabbit, park_after: Duration) -> Config {
    let mut c = test_config();
    c.amqp_url = rabbit.amqp_url();
    c.worker.park_after = park_after;
    c.worker.heartbeat_interval = Duration::from_millis(500);
    c.worker.lease = Duration::from_secs(3);
    c
}

/// A worker whose `long` type sleeps `ms` (stopping when asked) and counts its runs.
fn counting_worker(config: &Config, runs: Arc<AtomicU32>) -> Worker {
    let handler = handler_fn(move |ctx, payload| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let ms = payload["ms"].as_u64().unwrap_or(0);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({"slept_ms": ms})),
                _ = ctx.token().cancelled() => Err(TaskError::Stopped),
            }
        }
    });
    Worker::new(config.clone())
        .and_then(|w| w.handler("long", handler))
        .expect("worker builds")
}

/// The check-back delay queue that holds parked copies of `task_type`.
fn parked_queue(config: &Config, task_type: &str) -> String {
    let t: TaskType = task_type.parse().expect("valid type");
    let ms = delay::tier(config.worker.park_check_back()).expect("a delay");
    Names::new(config.namespace.clone()).delay_queue(&t, ms)
}

async fn two_counting_workers(config: &Config) -> (Fleet, Arc<AtomicU32>) {
    let mut fleet = Fleet::with_config(config.clone()).await;
    let runs = Arc::new(AtomicU32::new(0));
    for _ in 0..2 {
        fleet
            .start_worker_with(counting_worker(config, runs.clone()))
            .await;
    }
    fleet.wait_for_consumers("long", 2).await;
    (fleet, runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_four_times_the_consumer_timeout_completes_once_parked_never_interrupted() {
    let rabbit = PrivateRabbit::start(CONSUMER_TIMEOUT).await;
    let config = config_on(&rabbit, Duration::from_secs(1));
    let (fleet, runs) = two_counting_workers(&config).await;
    let ms = (CONSUMER_TIMEOUT * 4).as_millis();
    let id = fleet.enqueue("long", &format!("{{\"ms\":{ms}}}")).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(15))
        .await;

    let queue = parked_queue(&config, "long");
    eventually(
        Duration::from_secs(10),
        "the parked copy to wait in the check-back queue while the task runs",
        || async {
            let (messages, _) = amqp::queue_depth(&config.amqp_url, &queue).await?;
            (messages == 1).then_some(())
        },
    )
    .await;
    assert_eq!(
        fleet.record(&id).await.and_then(|r| r.state()),
        Some(TaskState::Running),
        "the copy was parked while the run goes on"
    );

    let done = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(60))
        .await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(done.attempt(), 1, "no attempt used up");
    assert_eq!(fleet.stats("long").await.completed, 1);
    assert!(
        !rabbit.closed_a_channel_for_consumer_timeout().await,
        "no delivery was held past consumer_timeout"
    );
    fleet.teardown().await;
    rabbit.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closed_by_the_broker_does_not_stop_a_healthy_run() {
    let rabbit = PrivateRabbit::start(CONSUMER_TIMEOUT).await;
    // Never parks by itself: the broker closes the channel of the held delivery.
    let config = config_on(&rabbit, Duration::from_secs(3600));
    let (fleet, runs) = two_counting_workers(&config).await;
    let ms = (CONSUMER_TIMEOUT * 4).as_millis();
    let id = fleet.enqueue("long", &format!("{{\"ms\":{ms}}}")).await;
    let done = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(60))
        .await;
    assert!(
        rabbit.closed_a_channel_for_consumer_timeout().await,
        "the broker closed the channel of the held delivery (else this proves nothing)"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the redelivered copy did not take over"
    );
    assert_eq!(done.attempt(), 1);
    assert_eq!(
        done.get("deliveries"),
        Some("1"),
        "parked copies are not counted towards the poison bound"
    );
    assert_eq!(fleet.stats("long").await.completed, 1);
    fleet.teardown().await;
    rabbit.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_run_whose_worker_is_killed_is_taken_over_after_its_lease() {
    let rabbit = PrivateRabbit::start(CONSUMER_TIMEOUT).await;
    let config = config_on(&rabbit, Duration::from_secs(1));
    let fleet = Fleet::with_config(config.clone()).await;
    let args = ["--types", "sleep", "--concurrency", "1"];
    let mut first = WorkerProcess::start(&config, &args, &log_path(&config, "first")).await;
    fleet.wait_for_consumers("sleep", 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":6000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(15))
        .await;
    let queue = parked_queue(&config, "sleep");
    eventually(
        Duration::from_secs(10),
        "the run to park its delivery",
        || async {
            let (messages, _) = amqp::queue_depth(&config.amqp_url, &queue).await?;
            (messages == 1).then_some(())
        },
    )
    .await;
    let second = WorkerProcess::start(&config, &args, &log_path(&config, "second")).await;
    fleet.wait_for_consumers("sleep", 2).await;
    first.kill().await;

    let done = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(60))
        .await;
    assert_eq!(done.attempt(), 1, "a crash does not use up an attempt");
    assert_eq!(done.get("deliveries"), Some("2"), "taken over once");
    let stats = fleet.stats("sleep").await;
    assert_eq!((stats.completed, stats.running), (1, 0), "completed once");
    drop(second);
    fleet.teardown().await;
    rabbit.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_waiting_behind_parked_runs_is_parked_too() {
    let rabbit = PrivateRabbit::start(CONSUMER_TIMEOUT).await;
    let mut config = config_on(&rabbit, Duration::from_secs(1));
    // One slot: once the first run parks, the broker hands over the second task,
    // which can only wait for the slot.
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config.clone()).await;
    let runs = Arc::new(AtomicU32::new(0));
    fleet
        .start_worker_with(counting_worker(&config, runs.clone()))
        .await;
    fleet.wait_for_consumers("long", 1).await;
    let ms = (CONSUMER_TIMEOUT * 3).as_millis();
    let first = fleet.enqueue("long", &format!("{{\"ms\":{ms}}}")).await;
    let second = fleet.enqueue("long", &format!("{{\"ms\":{ms}}}")).await;
    for id in [first, second] {
        fleet
            .wait_for_state(&id, TaskState::Completed, Duration::from_secs(90))
            .await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2, "each ran once");
    assert!(
        !rabbit.closed_a_channel_for_consumer_timeout().await,
        "the waiting delivery was not held past consumer_timeout"
    );
    fleet.teardown().await;
    rabbit.stop().await;
}
