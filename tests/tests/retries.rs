//! Issue 3: retries with exponential backoff held by the broker: the waits grow as the
//! policy says, a waiting retry sits in a delay queue rather than in an unacknowledged
//! delivery, it survives its worker's death, and a short delay is not held up behind
//! a long one.

use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_tests::rabbitmqctl::unacked;
use taskfleet_tests::record::ms;
use taskfleet_tests::retries::{
    backoff, enqueue_with_attempts, kill_9, start_worker_process, with_type_backoff,
};
use taskfleet_tests::{Fleet, amqp, eventually, test_config};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_task_completes_at_attempt_3_after_gaps_that_grow_per_the_policy() {
    let mut config = test_config();
    // Steps far apart (1 s, then 3 s): a loaded machine's delay cannot blur them, and
    // how closely the broker keeps the policy is measured by scripts/bench.
    let policy = backoff(1000, 3.0, 0.1);
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
    let seen = transitions_until(&mut events, &id, "completed", Duration::from_secs(30)).await;

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
    // (±5 ms here); delivery through the broker may add some, never subtract. The
    // slack is for a loaded machine, and still keeps the two steps apart.
    let slack_ms = 1500;
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
    fleet.teardown().await;
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
    let tier =
        taskfleet_common::amqp::delay::tier(std::time::Duration::from_secs(5)).expect("a delay");
    let delay_queue = fleet.names().delay_queue(&flaky, tier);
    let url = fleet.config.amqp_url.clone();
    // The failed delivery is acked right after the retry's publish is confirmed.
    eventually(
        Duration::from_secs(4),
        "no unacked delivery on the task queue",
        || async { (unacked(&url, &queue).await == Some(0)).then_some(()) },
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
    assert_eq!(unacked(&url, &delay_queue).await, Some(0));
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
    assert!(ms(&r, "started_at") >= ms(&r, "next_attempt_at"));
    fleet.teardown().await;
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
    fleet.teardown().await;
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
        ms(&s, "finished_at") < ms(&l, "next_attempt_at"),
        "the short retry ran before the long one was due"
    );

    let l = fleet
        .wait_for_state(&long, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(l.attempt(), 3);
    assert!(ms(&l, "started_at") >= ms(&l, "next_attempt_at"));
    fleet.teardown().await;
}
