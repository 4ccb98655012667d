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
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(enqueue_failing(&fleet, 1).await);
        ids.push(fleet.enqueue("echo", "{}").await);
    }
    for id in &ids {
        eventually(Duration::from_secs(20), "every task finished", || async {
            fleet
                .record(id)
                .await
                .filter(|r| r.state().is_some_and(|s| s.is_terminal()))
        })
        .await;
    }
    let took = started.elapsed();
    // Posting inline would cost 20 alerts × 5 s before the failed tasks settle.
    assert!(
        took < Duration::from_secs(15),
        "40 tasks took {took:?} with a dead receiver"
    );
    fleet.teardown().await;
}
