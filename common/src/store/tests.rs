//! The Lua side of the state machine against a real Redis: the scripts refuse exactly
//! what `TaskState::can_transition_to` refuses, and fence on worker and attempt.

use super::*;
use crate::envelope::Envelope;
use crate::ids::{Namespace, TaskId, TaskType, WorkerId};
use crate::state::TaskState;
use redis::AsyncCommands;

async fn store() -> StateStore {
    let url =
        std::env::var("TASKFLEET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let ns: Namespace = format!("u{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
        .parse()
        .expect("namespace");
    StateStore::connect(
        &url,
        Names::new(ns),
        Duration::from_secs(60),
        Duration::from_secs(5),
        None,
    )
    .await
    .expect("Redis reachable (run scripts/services)")
}

async fn set_record(s: &StateStore, id: &TaskId, state: TaskState, worker: &str, attempt: u32) {
    let _: () = s
        .conn()
        .hset_multiple(
            s.names.task_key(id),
            &[
                (TaskField::Id.as_str(), id.to_string()),
                (TaskField::Type.as_str(), "echo".into()),
                (TaskField::State.as_str(), state.as_str().into()),
                (TaskField::Worker.as_str(), worker.into()),
                (TaskField::Attempt.as_str(), attempt.to_string()),
                (TaskField::Deliveries.as_str(), "1".into()),
                (TaskField::Fence.as_str(), "1".into()),
                (TaskField::StartedAt.as_str(), "1".into()),
            ],
        )
        .await
        .expect("hset");
}

fn fence(worker: &str, attempt: u32, token: u64) -> Fence {
    Fence {
        worker: WorkerId::from(worker.to_owned()),
        attempt,
        token,
    }
}

fn delivery(worker: &WorkerId, redelivered: bool, token: u64) -> DeliveryClaim<'_> {
    DeliveryClaim {
        worker,
        token,
        redelivered,
        parked: false,
        lease: Duration::from_secs(5),
        max_redeliveries: 5,
        flow: crate::flow::FlowLimits::default(),
    }
}

async fn state_of(s: &StateStore, id: &TaskId) -> Option<TaskState> {
    s.get(id).await.expect("get").and_then(|r| r.state())
}

#[tokio::test]
async fn lua_move_refuses_exactly_what_the_table_refuses() {
    let s = store().await;
    let prelude = scripts::prelude();
    let probe = redis::Script::new(&format!(
        "{prelude}\nreturn move(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], 0, 'w', {{}}) and 1 or 0"
    ));
    let t: TaskType = "echo".parse().expect("type");
    for from in TaskState::ALL {
        for to in TaskState::ALL {
            let id = TaskId::new();
            set_record(&s, &id, from, "w", 1).await;
            let applied: i64 = probe
                .key(s.names.task_key(&id))
                .key(s.names.stats_key(&t))
                .key(s.names.events_channel())
                .arg(from.as_str())
                .arg(to.as_str())
                .invoke_async(&mut s.conn())
                .await
                .expect("probe runs");
            assert_eq!(applied == 1, from.can_transition_to(to), "{from} -> {to}");
            let expect = if from.can_transition_to(to) { to } else { from };
            assert_eq!(state_of(&s, &id).await, Some(expect), "{from} -> {to}");
        }
    }
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn finish_refuses_illegal_transitions_and_stale_workers() {
    let s = store().await;
    let t: TaskType = "echo".parse().expect("type");
    let w = fence("w1", 1, 1);
    let done = Outcome::Completed { result: "1".into() };
    // Only running (and cancelling) records move. For any other state the same run
    // is told the state it finds (its earlier commit got there), and nothing changes.
    for from in TaskState::ALL {
        let id = TaskId::new();
        set_record(&s, &id, from, "w1", 1).await;
        let c = s.finish(&id, &t, &w, &done).await.expect("finish runs");
        let allowed = matches!(from, TaskState::Running | TaskState::Cancelling);
        if allowed {
            assert!(
                matches!(
                    c,
                    Commit::Applied {
                        state: TaskState::Completed,
                        ..
                    }
                ),
                "{from}: {c:?}"
            );
        } else {
            assert!(
                matches!(c, Commit::Applied { state, .. } if state == from),
                "{from}: {c:?}"
            );
            assert_eq!(state_of(&s, &id).await, Some(from), "{from} unchanged");
        }
    }
    // Fencing: another worker, an older attempt, or an earlier claim of the same
    // worker and attempt (replaced after a reconnect) is refused.
    let id = TaskId::new();
    set_record(&s, &id, TaskState::Running, "w2", 2).await;
    for (worker, attempt, token) in [("w1", 2, 1), ("w2", 1, 1), ("w2", 2, 0)] {
        let c = s
            .finish(&id, &t, &fence(worker, attempt, token), &done)
            .await
            .expect("finish runs");
        assert!(
            matches!(c, Commit::Refused { .. }),
            "{worker}/{attempt}/{token}: {c:?}"
        );
    }
    assert_eq!(state_of(&s, &id).await, Some(TaskState::Running));
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn terminal_records_never_leave_their_state() {
    let s = store().await;
    let t: TaskType = "echo".parse().expect("type");
    let w = fence("w1", 1, 1);
    for terminal in [
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ] {
        let id = TaskId::new();
        set_record(&s, &id, terminal, "w1", 1).await;
        let env = Envelope::parse(
            format!(r#"{{"id":"{id}","type":"echo","payload":1,"attempt":1}}"#).as_bytes(),
            1024,
        )
        .expect("envelope");
        let resolved = env.resolve(&crate::Config::default());
        let claim = s
            .claim(&env, &resolved, &delivery(&w.worker, false, 1))
            .await
            .expect("claim");
        assert!(matches!(claim, Claim::Drop { .. }), "{terminal}: {claim:?}");
        let cancel = s.cancel(&id).await.expect("cancel");
        assert_eq!(cancel, CancelResult::State(terminal));
        for outcome in [
            Outcome::Failed { error: "x".into() },
            Outcome::Cancelled,
            Outcome::Interrupted,
            Outcome::Retrying {
                error: "x".into(),
                delay: Duration::from_secs(1),
            },
        ] {
            let c = s.finish(&id, &t, &w, &outcome).await.expect("finish");
            assert!(
                matches!(c, Commit::Applied { state, .. } if state == terminal),
                "{terminal} {outcome:?}: {c:?}"
            );
            let stale = s
                .finish(&id, &t, &fence("w1", 1, 2), &outcome)
                .await
                .expect("finish");
            assert!(
                matches!(stale, Commit::Refused { .. }),
                "{terminal} {outcome:?}: {stale:?}"
            );
        }
        assert_eq!(state_of(&s, &id).await, Some(terminal));
        let stats = s.type_stats(&t).await.expect("stats");
        assert_eq!(stats, TypeStats::default(), "no counter moved");
    }
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_failed_attempt_back_without_its_retry_is_rescheduled_not_run() {
    let s = store().await;
    let id = TaskId::new();
    set_record(&s, &id, TaskState::Retrying, "w1", 2).await;
    let body = format!(r#"{{"id":"{id}","type":"echo","payload":1,"attempt":2}}"#);
    let env = Envelope::parse(body.as_bytes(), 1024).expect("envelope");
    let resolved = env.resolve(&crate::Config::default());
    let w = WorkerId::from("w2".to_owned());
    let claim = s
        .claim(&env, &resolved, &delivery(&w, true, 7))
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
    assert_eq!(
        state_of(&s, &id).await,
        Some(TaskState::Retrying),
        "nothing changed"
    );
    let next = Envelope::parse(
        body.replace("\"attempt\":2", "\"attempt\":3").as_bytes(),
        1024,
    )
    .expect("envelope");
    let claim = s
        .claim(&next, &resolved, &delivery(&w, false, 8))
        .await
        .expect("claim");
    assert!(
        matches!(claim, Claim::Run { ref fence, .. } if fence.attempt == 3),
        "{claim:?}"
    );
    s.purge_namespace().await.expect("cleanup");
}

#[tokio::test]
async fn a_workers_own_reconnect_does_not_count_towards_poison() {
    let s = store().await;
    let id = TaskId::new();
    set_record(&s, &id, TaskState::Running, "w1", 1).await;
    let env = Envelope::parse(
        format!(r#"{{"id":"{id}","type":"echo","payload":1,"attempt":1}}"#).as_bytes(),
        1024,
    )
    .expect("envelope");
    let resolved = env.resolve(&crate::Config::default());
    let deliveries =
        |r: Option<TaskRecord>| r.and_then(|r| r.field(TaskField::Deliveries).map(str::to_owned));
    let w1 = WorkerId::from("w1".to_owned());
    // w1's run holds a live lease; its own reconnect redelivers the copy: parked,
    // not counted.
    let _: i64 = redis::cmd("ZADD")
        .arg(s.names().running_key())
        .arg(u64::MAX / 2)
        .arg(id.to_string())
        .query_async(&mut s.conn())
        .await
        .expect("zadd");
    let again = s
        .claim(&env, &resolved, &delivery(&w1, true, 9))
        .await
        .expect("claim");
    assert!(matches!(again, Claim::Park { .. }), "{again:?}");
    let counted = deliveries(s.get(&id).await.expect("get"));
    assert_eq!(counted, Some("1".into()), "same worker: not a crash");
    // Another worker takes over only once the lease ran out (a live one parks it).
    expire_lease(&s, &id).await;
    let w2 = WorkerId::from("w2".to_owned());
    let claim = s
        .claim(&env, &resolved, &delivery(&w2, true, 3))
        .await
        .expect("claim");
    assert!(matches!(claim, Claim::Run { .. }), "{claim:?}");
    assert_eq!(
        deliveries(s.get(&id).await.expect("get")),
        Some("2".into()),
        "another worker: a crash takeover"
    );
    let stale = s
        .finish(
            &id,
            &"echo".parse().expect("type"),
            &fence("w1", 1, 1),
            &Outcome::Cancelled,
        )
        .await;
    assert!(
        matches!(stale, Ok(Commit::Refused { .. })),
        "the replaced run is fenced: {stale:?}"
    );
    s.purge_namespace().await.expect("cleanup");
}

/// Moves the task's lease deadline into the past, as if its worker stopped beating.
async fn expire_lease(s: &StateStore, id: &TaskId) {
    let _: i64 = redis::cmd("ZADD")
        .arg(s.names().running_key())
        .arg(1)
        .arg(id.to_string())
        .query_async(&mut s.conn())
        .await
        .expect("zadd");
}

mod parking;
