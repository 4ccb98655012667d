//! Issue 4: a task cancelled while its message waits in a queue — pending, waiting
//! to retry, or handed back by a worker that died — is cancelled at once and never
//! runs; its copy is dropped when a worker gets it.
//!
//! Where a test must know that a worker has already dealt with a cancelled message
//! (dropped it), it enqueues a marker task behind it on the same queue and runs the
//! worker with concurrency 1: one queue delivers in order and, with one slot and a
//! prefetch of one, the marker is only delivered once the message before it is
//! acknowledged. So "the marker completed" means "the cancelled copy was settled".

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskfleet_common::store::CancelResult;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_tests::logs::log_path;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::{Fleet, amqp, eventually, redis_direct, task_type, test_config, worker_with};
use taskfleet_worker::{Handler, TaskError, handler_fn};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_cancelled_while_queued_never_starts() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let id = fleet.enqueue("count", r#"{"n":1}"#).await;

    assert_eq!(
        fleet.store.cancel(&id).await.expect("redis answers"),
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
    fleet.wait_for_settled_queue("count", 1).await;
    let s = fleet.stats("count").await;
    assert_eq!(
        (s.enqueued, s.cancelled, s.completed, s.live()),
        (2, 1, 1, 0)
    );
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
        fleet.store.cancel(&id).await.expect("redis answers"),
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
    let delay_queue = fleet.names().delay_queue(
        &task_type("flaky"),
        taskfleet_common::amqp::delay::tier(delay).expect("a delay"),
    );
    assert_eq!(
        amqp::queue_depth(&url, &delay_queue).await,
        Some((0, 0)),
        "nothing left waiting in {delay_queue}"
    );
    fleet.wait_for_settled_queue("flaky", 1).await;
    let s = fleet.stats("flaky").await;
    assert_eq!(
        (s.enqueued, s.retried, s.cancelled, s.completed, s.live()),
        (2, 2, 1, 1, 0)
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_survives_a_worker_restart() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let log = log_path(&fleet.config, "restart-worker");
    let first = WorkerProcess::start(&fleet.config, &["--types", "sleep"], &log).await;
    fleet.wait_for_consumers("sleep", 1).await;
    let id = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Running, Duration::from_secs(10))
        .await;
    drop(first); // SIGKILL: no drain, nothing committed, nothing remembered

    // No worker runs: the request flags the task and notifies nobody.
    assert_eq!(
        fleet.store.cancel(&id).await.expect("redis answers"),
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
    fleet.wait_for_settled_queue("sleep", 1).await;
    let s = fleet.stats("sleep").await;
    assert_eq!(
        (s.enqueued, s.cancelled, s.completed, s.live()),
        (2, 1, 1, 0)
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_flag_alone_keeps_a_queued_task_from_starting() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let id = fleet.enqueue("count", "{}").await;
    // Only the flag, as a request whose state change never reached this record.
    let mut conn = redis_direct::connection(&fleet.config.redis_url).await;
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
    fleet.wait_for_settled_queue("count", 1).await;
    let s = fleet.stats("count").await;
    assert_eq!((s.cancelled, s.completed, s.live()), (1, 1, 0));
    fleet.teardown().await;
}
