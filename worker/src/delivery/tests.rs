//! The whole delivery path — parse, claim, run, commit, settle — against in-memory
//! fakes of the store and the delivery: what reaches Redis and RabbitMQ, in order.

use super::fakes::{Did, FakeInbound, FakeStore, unreachable_redis};
use super::process;
use crate::builtin::{Echo, Flaky, Sleep};
use crate::dead::DeadReason;
use crate::handler::{DynHandler, TaskError, handler_fn};
use crate::inflight::StopReason;
use crate::shared::Shared;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::amqp::Settle;
use taskfleet_common::store::{Claim, Commit, Outcome, Registration};
use taskfleet_common::{Config, TaskId, TaskState, TaskType, WorkerId};

fn shared(store: FakeStore) -> Arc<Shared<FakeStore>> {
    shared_with(store, Config::default())
}

pub(super) fn shared_with(store: FakeStore, config: Config) -> Arc<Shared<FakeStore>> {
    let mut handlers: HashMap<TaskType, Arc<dyn DynHandler>> = HashMap::new();
    let mut add = |name: &str, h: Arc<dyn DynHandler>| {
        handlers.insert(name.parse().expect("valid type"), h);
    };
    add("echo", Arc::new(Echo));
    add("flaky", Arc::new(Flaky));
    add("sleep", Arc::new(Sleep));
    add(
        "panics",
        Arc::new(handler_fn(|_ctx, _payload| async move {
            if true {
                panic!("handler bug");
            }
            Err::<serde_json::Value, _>(TaskError::retry("unreachable"))
        })),
    );
    let registration = Registration {
        host: "test".into(),
        pid: 1,
        types: vec![],
        concurrency: 1,
    };
    Arc::new(Shared::new(
        config,
        store,
        WorkerId::from("w-test".to_owned()),
        registration,
        handlers,
        vec![],
    ))
}

pub(super) fn envelope(task_type: &str, payload: &str, extra: &str) -> (TaskId, Vec<u8>) {
    let id = TaskId::new();
    let body = format!(r#"{{"id":"{id}","type":"{task_type}","payload":{payload}{extra}}}"#);
    (id, body.into_bytes())
}

async fn run(store: FakeStore, inbound: FakeInbound) -> (Arc<Shared<FakeStore>>, Arc<FakeInbound>) {
    let s = shared(store);
    let inbound = Arc::new(inbound);
    process(s.clone(), inbound.clone()).await;
    (s, inbound)
}

fn dead_reason(did: &[Did]) -> Option<DeadReason> {
    did.iter().find_map(|d| match d {
        Did::PublishedDead(c) | Did::PublishedDeadElsewhere(c) => Some(c.reason),
        _ => None,
    })
}

#[tokio::test]
async fn a_completed_task_is_committed_before_it_is_acked() {
    let (_, body) = envelope("echo", r#"{"a":1}"#, "");
    let (s, inbound) = run(FakeStore::default(), FakeInbound::new(body)).await;
    assert_eq!(
        s.store.finished(),
        vec![Outcome::Completed {
            result: r#"{"a":1}"#.into()
        }]
    );
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Ack)]);
}

#[tokio::test]
async fn a_failed_attempt_publishes_the_next_one_before_acking() {
    let (_, body) = envelope("flaky", r#"{"fail_times":1}"#, "");
    let (s, inbound) = run(FakeStore::default(), FakeInbound::new(body)).await;
    assert!(matches!(s.store.finished()[..], [Outcome::Retrying { .. }]));
    let did = inbound.did();
    assert!(
        matches!(
            did[..],
            [
                Did::PublishedAttempt { attempt: 2, .. },
                Did::Settled(Settle::Ack)
            ]
        ),
        "{did:?}"
    );
}

#[tokio::test]
async fn an_unconfirmed_retry_hands_the_delivery_back() {
    let (_, body) = envelope("flaky", r#"{"fail_times":1}"#, "");
    let inbound = FakeInbound::new(body);
    inbound
        .publish_fails
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (_, inbound) = run(FakeStore::default(), inbound).await;
    assert_eq!(inbound.did().last(), Some(&Did::Settled(Settle::Requeue)));
}

#[tokio::test]
async fn a_panicking_handler_is_a_failed_attempt() {
    let (_, body) = envelope("panics", "{}", "");
    let (s, inbound) = run(FakeStore::default(), FakeInbound::new(body)).await;
    let finished = s.store.finished();
    let [Outcome::Retrying { error, .. }] = &finished[..] else {
        panic!("{finished:?}")
    };
    assert!(error.contains("handler panicked: handler bug"), "{error}");
    assert_eq!(inbound.did().last(), Some(&Did::Settled(Settle::Ack)));
    assert_eq!(s.inflight.len(), 0, "the slot is freed");
}

#[tokio::test]
async fn a_timed_out_attempt_is_a_failed_attempt() {
    let (_, body) = envelope("sleep", r#"{"ms":60000}"#, r#","timeout_ms":50"#);
    let (s, _) = run(FakeStore::default(), FakeInbound::new(body)).await;
    let finished = s.store.finished();
    let [Outcome::Retrying { error, .. }] = &finished[..] else {
        panic!("{finished:?}")
    };
    assert!(error.contains("timed out after 50ms"), "{error}");
}

#[tokio::test]
async fn the_last_timed_out_attempt_is_dead_as_exhausted() {
    let (_, body) = envelope(
        "sleep",
        r#"{"ms":60000}"#,
        r#","timeout_ms":20,"max_attempts":1"#,
    );
    let (s, inbound) = run(FakeStore::default(), FakeInbound::new(body)).await;
    assert!(matches!(s.store.finished()[..], [Outcome::Failed { .. }]));
    let did = inbound.did();
    assert_eq!(dead_reason(&did), Some(DeadReason::Exhausted));
    assert_eq!(did.last(), Some(&Did::Settled(Settle::Ack)));
}

async fn run_stopped(reason: StopReason) -> (Arc<Shared<FakeStore>>, Arc<FakeInbound>) {
    run_stopped_with(reason, Config::default(), |_| true).await
}

/// Runs a long sleep and stops it with `reason` once `ready` holds for the delivery.
pub(super) async fn run_stopped_with(
    reason: StopReason,
    config: Config,
    ready: impl Fn(&FakeInbound) -> bool,
) -> (Arc<Shared<FakeStore>>, Arc<FakeInbound>) {
    let (id, body) = envelope("sleep", r#"{"ms":60000}"#, "");
    let s = shared_with(FakeStore::default(), config);
    let inbound = Arc::new(FakeInbound::new(body));
    let path = tokio::spawn(process(s.clone(), inbound.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(ready(&inbound) && s.inflight.stop(&id, reason)) {
        assert!(tokio::time::Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    path.await.expect("path ran");
    (s, inbound)
}

#[tokio::test]
async fn a_cancelled_run_commits_cancelled_and_acks() {
    let (s, inbound) = run_stopped(StopReason::Cancelled).await;
    assert_eq!(s.store.finished(), vec![Outcome::Cancelled]);
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Ack)]);
}

#[tokio::test]
async fn a_drained_run_is_handed_back_without_using_an_attempt() {
    let (s, inbound) = run_stopped(StopReason::Drained).await;
    assert_eq!(s.store.finished(), vec![Outcome::Interrupted]);
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Requeue)]);
}

#[tokio::test]
async fn a_crash_redelivery_is_claimed_as_redelivered_and_runs() {
    let (_, body) = envelope("echo", "1", r#","attempt":2"#);
    let mut inbound = FakeInbound::new(body);
    inbound.redelivered = true;
    let (s, inbound) = run(FakeStore::default(), inbound).await;
    assert_eq!(*s.store.claimed.lock().expect("lock"), vec![true]);
    assert_eq!(
        s.store.finished(),
        vec![Outcome::Completed { result: "1".into() }]
    );
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Ack)]);
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_without_running() {
    let (_, body) = envelope("echo", "1", "");
    let store = FakeStore::default().claim_replies([Ok(Claim::Poison { deliveries: 6 })]);
    let (s, inbound) = run(store, FakeInbound::new(body)).await;
    assert!(s.store.finished().is_empty(), "never ran");
    let did = inbound.did();
    assert_eq!(dead_reason(&did), Some(DeadReason::Poison));
    assert_eq!(did.last(), Some(&Did::Settled(Settle::Ack)));
}

#[tokio::test]
async fn a_rescheduled_attempt_is_published_not_run() {
    let (_, body) = envelope("echo", "1", r#","attempt":2"#);
    let store = FakeStore::default().claim_replies([Ok(Claim::Reschedule {
        next_attempt: 3,
        delay: Duration::from_millis(1500),
    })]);
    let (s, inbound) = run(store, FakeInbound::new(body)).await;
    assert!(s.store.finished().is_empty(), "never ran");
    assert_eq!(
        inbound.did(),
        vec![
            Did::PublishedAttempt {
                attempt: 3,
                delay: Duration::from_millis(1500)
            },
            Did::Settled(Settle::Ack)
        ]
    );
}

#[tokio::test]
async fn a_claim_without_redis_hands_back_and_pauses_deliveries() {
    let (_, body) = envelope("echo", "1", "");
    let store = FakeStore::default().claim_replies([Err(unreachable_redis())]);
    let (s, inbound) = run(store, FakeInbound::new(body)).await;
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Requeue)]);
    assert!(s.health.is_down());
}

#[tokio::test]
async fn a_commit_is_retried_while_redis_restarts() {
    let (_, body) = envelope("echo", "1", "");
    let store =
        FakeStore::default().commit_replies([Err(unreachable_redis()), Err(unreachable_redis())]);
    let (s, inbound) = run(store, FakeInbound::new(body)).await;
    assert_eq!(s.store.finished().len(), 3);
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Ack)]);
    assert!(
        !s.health.is_down(),
        "the commit that went through cleared it"
    );
}

#[tokio::test]
async fn a_commit_is_not_retried_once_the_delivery_is_lost() {
    let (_, body) = envelope("echo", "1", "");
    let inbound = FakeInbound::new(body);
    inbound
        .connected
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let store = FakeStore::default().commit_replies([Err(unreachable_redis())]);
    let (s, inbound) = run(store, inbound).await;
    assert_eq!(s.store.finished().len(), 1);
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Requeue)]);
}

#[tokio::test]
async fn a_refused_commit_acks_a_taken_over_run_and_requeues_an_orphan() {
    for (current, settle) in [
        (Some(TaskState::Running), Settle::Ack),
        (Some(TaskState::Completed), Settle::Ack),
        (Some(TaskState::Pending), Settle::Requeue),
        (None, Settle::Requeue),
    ] {
        let (_, body) = envelope("echo", "1", "");
        let store = FakeStore::default().commit_replies([Ok(Commit::Refused { current })]);
        let (_, inbound) = run(store, FakeInbound::new(body)).await;
        assert_eq!(inbound.did(), vec![Did::Settled(settle)], "{current:?}");
    }
}

#[tokio::test]
async fn a_malformed_message_is_dead_lettered_with_its_message_id() {
    let mut inbound = FakeInbound::new(&b"{not json"[..]);
    inbound.message_id = Some("m-42".into());
    let (s, inbound) = run(FakeStore::default(), inbound).await;
    assert!(
        s.store.claimed.lock().expect("lock").is_empty(),
        "never claimed"
    );
    let did = inbound.did();
    let [Did::PublishedDead(copy), Did::Settled(Settle::Ack)] = &did[..] else {
        panic!("{did:?}")
    };
    assert_eq!(
        (copy.reason, copy.attempts, copy.message_id.as_str()),
        (DeadReason::Malformed, 0, "m-42")
    );
}

#[tokio::test]
async fn an_unknown_type_is_dead_lettered_without_a_claim() {
    let (_, body) = envelope("resize", "1", "");
    let (s, inbound) = run(FakeStore::default(), FakeInbound::new(body)).await;
    assert!(s.store.claimed.lock().expect("lock").is_empty());
    assert_eq!(dead_reason(&inbound.did()), Some(DeadReason::UnknownType));
}

#[tokio::test]
async fn a_permanent_failure_is_dead_at_once() {
    let (_, body) = envelope("sleep", r#""not an object""#, "");
    let (s, inbound) = run(FakeStore::default(), FakeInbound::new(body)).await;
    assert!(matches!(s.store.finished()[..], [Outcome::Failed { .. }]));
    assert_eq!(dead_reason(&inbound.did()), Some(DeadReason::Permanent));
}

#[tokio::test]
async fn a_dead_copy_whose_connection_broke_goes_out_on_the_live_one() {
    let (_, body) = envelope("sleep", r#""bad""#, "");
    let inbound = FakeInbound::new(body);
    inbound
        .connected
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let (_, inbound) = run(FakeStore::default(), inbound).await;
    let did = inbound.did();
    assert!(
        matches!(did[..], [Did::PublishedDeadElsewhere(_)]),
        "{did:?}"
    );
}

#[tokio::test]
async fn an_unconfirmed_dead_copy_is_rejected_to_the_queues_dlx() {
    let inbound = FakeInbound::new(&b"[]"[..]);
    inbound
        .publish_fails
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let (_, inbound) = run(FakeStore::default(), inbound).await;
    assert_eq!(inbound.did().last(), Some(&Did::Settled(Settle::Reject)));
}

pub(super) fn parking_after(ms: u64) -> Config {
    let mut c = Config::default();
    c.worker.park_after = Duration::from_millis(ms);
    c
}

#[tokio::test]
async fn a_long_run_parks_its_delivery_once_and_goes_on() {
    let (_, body) = envelope("sleep", r#"{"ms":300}"#, "");
    let config = parking_after(50);
    let check_back = config.worker.park_check_back();
    let s = shared_with(FakeStore::default(), config);
    let inbound = Arc::new(FakeInbound::new(body));
    process(s.clone(), inbound.clone()).await;
    assert!(
        matches!(s.store.finished()[..], [Outcome::Completed { .. }]),
        "the run went on to the end"
    );
    assert_eq!(
        inbound.did(),
        vec![
            Did::PublishedParked {
                attempt: 1,
                delay: check_back
            },
            Did::Settled(Settle::Ack)
        ],
        "parked once; the finished run settles nothing more"
    );
}

#[tokio::test]
async fn a_short_run_costs_no_parked_copy() {
    let (_, body) = envelope("sleep", r#"{"ms":20}"#, "");
    let s = shared_with(FakeStore::default(), parking_after(5_000));
    let inbound = Arc::new(FakeInbound::new(body));
    process(s.clone(), inbound.clone()).await;
    assert_eq!(inbound.did(), vec![Did::Settled(Settle::Ack)]);
}

#[tokio::test]
async fn a_drained_parked_run_is_handed_back_as_a_copy_instead_of_requeued() {
    let (s, inbound) = run_stopped_with(StopReason::Drained, parking_after(20), |i| {
        i.parked.load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    assert_eq!(s.store.finished(), vec![Outcome::Interrupted]);
    let did = inbound.did();
    assert!(
        matches!(
            did[..],
            [
                Did::PublishedParked { .. },
                Did::Settled(Settle::Ack),
                Did::PublishedParked {
                    attempt: 1,
                    delay: Duration::ZERO
                }
            ]
        ),
        "{did:?}"
    );
}

#[tokio::test]
async fn a_parked_run_that_fails_for_good_publishes_its_dead_copy_without_settling() {
    let (s, inbound) = run_stopped_with(
        StopReason::TimedOut,
        {
            let mut c = parking_after(20);
            c.defaults.max_attempts = 1;
            c
        },
        |i| i.parked.load(std::sync::atomic::Ordering::Relaxed),
    )
    .await;
    assert!(matches!(s.store.finished()[..], [Outcome::Failed { .. }]));
    let did = inbound.did();
    assert!(
        matches!(
            did[..],
            [
                Did::PublishedParked { .. },
                Did::Settled(Settle::Ack),
                Did::PublishedDead(_)
            ]
        ),
        "{did:?}"
    );
}
