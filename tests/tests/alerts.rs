//! Issue 14: alerts. A task failing for good produces exactly one signed webhook POST
//! with its record; a receiver that never answers does not slow the fleet.

use std::time::{Duration, Instant};
use taskfleet_common::{Config, TaskState};
use taskfleet_producer::EnqueueRequest;
use taskfleet_tests::silent::SilentListener;
use taskfleet_tests::webhook::{Receiver, signature_is_valid};
use taskfleet_tests::{Fleet, eventually, poll_until, test_config};

const SECRET: &str = "alert-secret-of-the-test";

fn with_webhook(url: String) -> Config {
    let mut c = test_config();
    c.alerts.webhook = vec![url];
    c.alerts.secret = Some(SECRET.into());
    c.alerts.backoff = Duration::from_millis(100);
    c
}

async fn enqueue_failing(fleet: &Fleet, max_attempts: u32) -> taskfleet_common::TaskId {
    let mut req = EnqueueRequest::new("flaky", r#"{"fail_times":99}"#).expect("valid");
    req.max_attempts = Some(max_attempts);
    fleet.producer.enqueue(&req).await.expect("enqueue").id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finally_failed_task_sends_one_signed_post_within_5s() {
    let receiver = Receiver::start().await;
    let mut fleet = Fleet::with_config(with_webhook(receiver.url())).await;
    fleet.start_worker().await;
    let ok = fleet.enqueue("echo", "{}").await;
    let id = enqueue_failing(&fleet, 2).await;
    fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(20))
        .await;
    let failed_at = Instant::now();
    let got = eventually(Duration::from_secs(5), "the alert POST", || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert!(got.at.duration_since(failed_at) <= Duration::from_secs(5));
    fleet
        .wait_for_state(&ok, TaskState::Completed, Duration::from_secs(10))
        .await;
    // Exactly one: nothing more arrives for the failed task nor for the completed one.
    let more = poll_until(Duration::from_secs(2), || async {
        (receiver.received().len() > 1).then_some(())
    })
    .await;
    assert!(
        more.is_none(),
        "more than one POST: {:?}",
        receiver.received()
    );

    let sig = got.signature.as_deref().expect("X-Taskfleet-Signature");
    assert!(
        signature_is_valid(SECRET, sig, &got.body),
        "bad signature {sig}"
    );
    assert!(!signature_is_valid(
        "another-secret-entirely",
        sig,
        &got.body
    ));
    assert!(!signature_is_valid(
        SECRET,
        sig,
        &got.body.replace("flaky", "flakz")
    ));
    assert!(got.delivery.is_some(), "X-Taskfleet-Delivery");
    let body: serde_json::Value = serde_json::from_str(&got.body).expect("JSON body");
    assert_eq!(body["event"], "task.failed", "{body}");
    assert_eq!(body["id"], id.to_string());
    assert_eq!(body["type"], "flaky");
    assert_eq!(body["reason"], "exhausted", "{body}");
    assert_eq!(body["attempts"], 2);
    assert_eq!(
        body["task"]["state"], "failed",
        "the record rides along: {body}"
    );
    assert_eq!(body["task"]["id"], id.to_string());
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_receiver_does_not_slow_the_fleet() {
    // Accepts and never answers: every try waits its whole timeout (5 s).
    let silent = SilentListener::start().await;
    let mut config = with_webhook(format!("http://127.0.0.1:{}/hook", silent.port()));
    config.alerts.queue = 4;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let started = Instant::now();
    // More failures than the queue and the posts in flight can hold, all of them
    // alerting a receiver that never answers...
    let failing: Vec<_> =
        futures_util::future::join_all((0..30).map(|_| enqueue_failing(&fleet, 1))).await;
    for id in &failing {
        fleet
            .wait_for_state(id, TaskState::Failed, Duration::from_secs(30))
            .await;
    }
    // ...and the fleet still runs the next tasks at once: no slot waits for an alert.
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(fleet.enqueue("echo", "{}").await);
    }
    for id in &ids {
        fleet
            .wait_for_state(id, TaskState::Completed, Duration::from_secs(30))
            .await;
    }
    let took = started.elapsed();
    // Posting inline would hold a slot for 5 tries × 5 s per alert beyond the queue.
    assert!(
        took < Duration::from_secs(15),
        "30 failing and 20 echo tasks took {took:?} with a dead receiver"
    );
    fleet.teardown().await;
}
