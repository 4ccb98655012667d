//! Parked copies and scheduled-retry watchers in claim.lua, and the schedule leases.

use super::*;
fn parked_copy(worker: &WorkerId, token: u64) -> DeliveryClaim<'_> {
    DeliveryClaim {
        parked: true,
        ..delivery(worker, false, token)
    }
}

#[tokio::test]
async fn a_copy_of_a_run_whose_lease_is_alive_is_parked_until_the_lease_expires() {
    let s = store().await;
    let id = TaskId::new();
    let env = Envelope::parse(
        format!(r#"{{"id":"{id}","type":"echo","payload":1}}"#).as_bytes(),
        1024,
    )
    .expect("envelope");
    let resolved = env.resolve(&crate::Config::default());
    let (w1, w2) = (
        WorkerId::from("w1".to_owned()),
        WorkerId::from("w2".to_owned()),
    );
    let run = s.claim(&env, &resolved, &delivery(&w1, false, 1)).await;
    assert!(matches!(run, Ok(Claim::Run { .. })), "{run:?}");
    for copy in [
        delivery(&w2, true, 2),
        parked_copy(&w2, 3),
        delivery(&w1, true, 4),
    ] {
        let claim = s.claim(&env, &resolved, &copy).await.expect("claim");
        let Claim::Park { delay } = claim else {
            panic!("a live lease is never taken over: {claim:?}")
        };
        assert!(
            delay <= Duration::from_secs(5) && delay > Duration::ZERO,
            "{delay:?}"
        );
    }
    let rec = s.get(&id).await.expect("get").expect("record");
    assert_eq!(rec.field(TaskField::Worker), Some("w1"));
    assert_eq!(
        rec.field(TaskField::Deliveries),
        Some("1"),
        "parking is not counted"
    );
    assert_eq!(
        rec.field(TaskField::Fence),
        Some("1"),
        "the run keeps its fence"
    );

    // The lease runs out (its worker died): the next copy takes the task over.
    expire_lease(&s, &id).await;
    let claim = s
        .claim(&env, &resolved, &parked_copy(&w2, 5))
        .await
        .expect("claim");
    assert!(
        matches!(claim, Claim::Run { ref fence, .. } if fence.attempt == 1),
        "{claim:?}"
    );
    let rec = s.get(&id).await.expect("get").expect("record");
    assert_eq!(
        rec.field(TaskField::Deliveries),
        Some("2"),
        "a takeover is counted"
    );
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_copy_of_a_run_being_cancelled_parks_again_while_its_lease_lives() {
    let s = store().await;
    let id = TaskId::new();
    let env = Envelope::parse(
        format!(r#"{{"id":"{id}","type":"echo","payload":1}}"#).as_bytes(),
        1024,
    )
    .expect("envelope");
    let resolved = env.resolve(&crate::Config::default());
    let (w1, w2) = (
        WorkerId::from("w1".to_owned()),
        WorkerId::from("w2".to_owned()),
    );
    let run = s.claim(&env, &resolved, &delivery(&w1, false, 1)).await;
    assert!(matches!(run, Ok(Claim::Run { .. })), "{run:?}");
    s.cancel(&id).await.expect("cancel");
    let state = |r: Option<TaskRecord>| r.and_then(|r| r.state());
    assert_eq!(
        state(s.get(&id).await.expect("get")),
        Some(TaskState::Cancelling)
    );
    for copy in [parked_copy(&w2, 2), delivery(&w2, true, 3)] {
        let claim = s.claim(&env, &resolved, &copy).await.expect("claim");
        assert!(
            matches!(claim, Claim::Park { .. }),
            "the stopping run ends the task itself: {claim:?}"
        );
    }
    assert_eq!(
        state(s.get(&id).await.expect("get")),
        Some(TaskState::Cancelling),
        "left to the run"
    );
    // The run died while stopping: once its lease is gone the copy ends it.
    expire_lease(&s, &id).await;
    let claim = s
        .claim(&env, &resolved, &parked_copy(&w2, 4))
        .await
        .expect("claim");
    assert!(matches!(claim, Claim::Cancelled), "{claim:?}");
    assert_eq!(
        state(s.get(&id).await.expect("get")),
        Some(TaskState::Cancelled)
    );
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_second_publish_of_the_running_attempt_is_dropped_as_a_duplicate() {
    let s = store().await;
    let id = TaskId::new();
    let env = Envelope::parse(
        format!(r#"{{"id":"{id}","type":"echo","payload":1}}"#).as_bytes(),
        1024,
    )
    .expect("envelope");
    let resolved = env.resolve(&crate::Config::default());
    let (w1, w2) = (
        WorkerId::from("w1".to_owned()),
        WorkerId::from("w2".to_owned()),
    );
    let run = s.claim(&env, &resolved, &delivery(&w1, false, 1)).await;
    assert!(matches!(run, Ok(Claim::Run { .. })), "{run:?}");
    // A first delivery (not redelivered, not parked) of the running attempt is a
    // second publish: dropped, never parked (no copy to carry) nor run, even once
    // the lease lapsed (the original's redelivery is what takes a dead run over).
    for lapsed in [false, true] {
        if lapsed {
            expire_lease(&s, &id).await;
        }
        let claim = s
            .claim(&env, &resolved, &delivery(&w2, false, 2))
            .await
            .expect("claim");
        assert_eq!(
            claim,
            Claim::Drop {
                reason: DropReason::Duplicate
            },
            "lease lapsed: {lapsed}"
        );
    }
    let rec = s.get(&id).await.expect("get").expect("record");
    assert_eq!(rec.field(TaskField::Worker), Some("w1"));
    assert_eq!(
        rec.field(TaskField::Fence),
        Some("1"),
        "the run keeps its fence"
    );
    assert_eq!(rec.field(TaskField::Deliveries), Some("1"), "not counted");
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_parked_copy_of_a_failed_run_reschedules_only_an_overdue_retry() {
    let s = store().await;
    let id = TaskId::new();
    set_record(&s, &id, TaskState::Retrying, "w1", 2).await;
    let now = s.server_time_ms().await.expect("time");
    let mut conn = s.conn();
    let key = s.names().task_key(&id);
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("next_attempt_at")
        .arg(now + 1000)
        .query_async(&mut conn)
        .await
        .expect("hset");
    let env = Envelope::parse(
        format!(r#"{{"id":"{id}","type":"echo","payload":1,"attempt":2}}"#).as_bytes(),
        1024,
    )
    .expect("envelope");
    let resolved = env.resolve(&crate::Config::default());
    let w = WorkerId::from("w2".to_owned());
    let claim = s
        .claim(&env, &resolved, &parked_copy(&w, 1))
        .await
        .expect("claim");
    assert!(
        matches!(claim, Claim::Park { delay } if delay > Duration::from_secs(5)),
        "the retry is due in 1 s, overdue a lease later: {claim:?}"
    );
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("next_attempt_at")
        .arg(now - 60_000)
        .query_async(&mut conn)
        .await
        .expect("hset");
    let claim = s
        .claim(&env, &resolved, &parked_copy(&w, 2))
        .await
        .expect("claim");
    assert!(
        matches!(
            claim,
            Claim::Reschedule {
                next_attempt: 3,
                ..
            }
        ),
        "{claim:?}"
    );
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn one_worker_leads_a_schedule_until_its_lease_lapses() {
    use crate::store::{Lead, LeadRequest};
    let s = store().await;
    let (w1, w2) = (
        WorkerId::from("w1".to_owned()),
        WorkerId::from("w2".to_owned()),
    );
    let ask = |w| LeadRequest {
        schedule: "nightly",
        worker: w,
        lease: Duration::from_millis(300),
        task_type: "echo",
    };
    let timing = || ("every", "1s".to_owned());
    let first = s.lead(ask(&w1), timing()).await.expect("lead");
    assert!(
        matches!(first, Lead::Leading { next_at: None, .. }),
        "{first:?}"
    );
    assert!(s.fired("nightly", &w1, 5_000, None).await.expect("fired"));
    let second = s.lead(ask(&w2), timing()).await.expect("lead");
    assert_eq!(
        second,
        Lead::Follower {
            leader: "w1".into()
        }
    );
    assert!(
        !s.fired("nightly", &w2, 9_000, None).await.expect("fenced"),
        "a follower records nothing"
    );
    let renewed = s.lead(ask(&w1), timing()).await.expect("lead");
    assert!(
        matches!(
            renewed,
            Lead::Leading {
                next_at: Some(5_000),
                ..
            }
        ),
        "{renewed:?}"
    );
    // w1 stops renewing: within the lease w2 takes over, and w1 is fenced.
    let taken = eventually_leads(&s, ask(&w2)).await;
    assert!(
        matches!(
            taken,
            Lead::Leading {
                next_at: Some(5_000),
                ..
            }
        ),
        "{taken:?}"
    );
    assert!(!s.fired("nightly", &w1, 6_000, None).await.expect("fenced"));
    s.purge_namespace().await.expect("cleanup");
}

async fn eventually_leads(
    s: &StateStore,
    ask: crate::store::LeadRequest<'_>,
) -> crate::store::Lead {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let lead = s.lead(ask, ("every", "1s".to_owned())).await.expect("lead");
        if matches!(lead, crate::store::Lead::Leading { .. })
            || std::time::Instant::now() > deadline
        {
            return lead;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
