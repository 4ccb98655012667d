//! Every branch of the delivery decision and of the verdict, without a server.

use super::*;
use crate::delivery::verdict::AttemptPolicy;
use crate::handler::TaskError;
use crate::inflight::StopReason;
use crate::runner::AttemptEnd;
use taskfleet_common::WorkerId;
use taskfleet_common::config::BackoffConfig;
use taskfleet_common::retry::RetryPolicy;
use taskfleet_common::store::DropReason;

fn fence(attempt: u32) -> Fence {
    Fence {
        worker: WorkerId::from("w-1".to_owned()),
        attempt,
        token: 7,
    }
}

fn applied(state: TaskState) -> Commit {
    Commit::Applied {
        state,
        cancel_latency_ms: None,
        released: Vec::new(),
    }
}

fn policy(max_attempts: u32) -> AttemptPolicy {
    AttemptPolicy {
        retry: RetryPolicy {
            max_attempts,
            backoff: BackoffConfig {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(60),
                jitter: 0.0,
            },
        },
        timeout: Duration::from_secs(30),
        result_limit: 1024,
    }
}

fn returned(result: Result<serde_json::Value, TaskError>, stop: Option<StopReason>) -> AttemptEnd {
    AttemptEnd::Returned { result, stop }
}

fn retrying(delay_ms: u64) -> Verdict {
    Verdict::Retrying {
        error: "boom".into(),
        delay: Duration::from_millis(delay_ms),
    }
}

// ---- after the claim ----

#[test]
fn a_claimed_delivery_runs_under_the_claims_fence() {
    let step = after_claim(
        Some(Claim::Run {
            fence: fence(2),
            checkpoint: Some("{\"page\":3}".into()),
        }),
        2,
    );
    assert_eq!(
        step,
        ClaimStep::Run {
            fence: fence(2),
            checkpoint: Some("{\"page\":3}".into())
        }
    );
}

#[test]
fn a_finished_stale_or_duplicate_copy_is_acked_without_running() {
    for reason in [
        DropReason::Finished(TaskState::Completed),
        DropReason::Stale,
        DropReason::Duplicate,
    ] {
        let step = after_claim(Some(Claim::Drop { reason }), 1);
        assert_eq!(step, ClaimStep::Settle(Decision::Ack), "{reason}");
    }
}

#[test]
fn a_cancelled_task_is_acked_and_never_started() {
    assert_eq!(
        after_claim(Some(Claim::Cancelled), 1),
        ClaimStep::Settle(Decision::Ack)
    );
}

#[test]
fn a_failed_attempt_back_without_its_retry_is_rescheduled_not_run() {
    let step = after_claim(
        Some(Claim::Reschedule {
            next_attempt: 3,
            delay: Duration::from_millis(400),
        }),
        2,
    );
    assert_eq!(
        step,
        ClaimStep::Settle(Decision::Retry {
            attempt: 3,
            delay: Duration::from_millis(400)
        })
    );
}

#[test]
fn a_poison_message_is_dead_lettered_as_poison() {
    let step = after_claim(Some(Claim::Poison { deliveries: 6 }), 2);
    let ClaimStep::Settle(Decision::DeadLetter {
        reason,
        error,
        attempts,
    }) = step
    else {
        panic!("{step:?}");
    };
    assert_eq!((reason, attempts), (DeadReason::Poison, 2));
    assert!(error.contains("6 times"), "{error}");
}

#[test]
fn a_claim_redis_did_not_answer_hands_the_delivery_back() {
    assert_eq!(after_claim(None, 1), ClaimStep::Settle(Decision::Requeue));
}

#[test]
fn unparseable_messages_are_dead_with_the_parsers_reason() {
    let cases = [
        (
            EnvelopeError::Malformed("eof".into()),
            DeadReason::Malformed,
        ),
        (
            EnvelopeError::TooLarge { size: 9, limit: 1 },
            DeadReason::TooLarge,
        ),
        (
            EnvelopeError::Invalid {
                field: "priority",
                problem: "must be between 0 and 9".into(),
            },
            DeadReason::Invalid,
        ),
    ];
    for (e, reason) in cases {
        let copy = unparseable(&e, Some("m-1"));
        assert_eq!(copy.reason, reason);
        assert_eq!(copy.attempts, 0);
        assert_eq!(copy.message_id, "m-1");
        assert_eq!(copy.error, e.to_string());
    }
    assert_eq!(
        unparseable(&EnvelopeError::Malformed("x".into()), None).message_id,
        ""
    );
}

#[test]
fn an_unknown_type_is_dead_lettered_naming_the_type() {
    let Decision::DeadLetter {
        reason,
        error,
        attempts,
    } = unknown_type("resize", 1)
    else {
        panic!()
    };
    assert_eq!((reason, attempts), (DeadReason::UnknownType, 1));
    assert!(error.contains("\"resize\""), "{error}");
}

// ---- after the commit ----

#[test]
fn an_outcome_that_could_not_be_committed_is_handed_back() {
    let v = Verdict::Completed { result: "1".into() };
    assert_eq!(after_commit(None, &v, 1), Decision::Requeue);
}

#[test]
fn a_committed_retry_publishes_the_next_attempt_after_its_delay() {
    assert_eq!(
        after_commit(Some(&applied(TaskState::Retrying)), &retrying(2000), 1),
        Decision::Retry {
            attempt: 2,
            delay: Duration::from_secs(2)
        }
    );
}

#[test]
fn retrying_without_a_delay_to_publish_is_handed_back_for_the_claim_to_reschedule() {
    let v = Verdict::Completed { result: "1".into() };
    assert_eq!(
        after_commit(Some(&applied(TaskState::Retrying)), &v, 1),
        Decision::Requeue
    );
}

#[test]
fn a_final_failure_is_dead_lettered_with_its_reason_and_error() {
    for reason in [DeadReason::Exhausted, DeadReason::Permanent] {
        let v = Verdict::Failed {
            error: "disk full".into(),
            reason,
        };
        assert_eq!(
            after_commit(Some(&applied(TaskState::Failed)), &v, 3),
            Decision::DeadLetter {
                reason,
                error: "disk full".into(),
                attempts: 3
            }
        );
    }
}

#[test]
fn failed_by_the_store_for_another_verdict_is_dead_as_exhausted() {
    // finish.lua is idempotent for its run: a retried commit may answer the state
    // an earlier try left, whatever this verdict was.
    let d = after_commit(Some(&applied(TaskState::Failed)), &retrying(10), 5);
    assert_eq!(
        d,
        Decision::DeadLetter {
            reason: DeadReason::Exhausted,
            error: "boom".into(),
            attempts: 5
        }
    );
}

#[test]
fn an_interrupted_run_is_handed_back_without_using_an_attempt() {
    assert_eq!(
        after_commit(Some(&applied(TaskState::Pending)), &Verdict::Interrupted, 2),
        Decision::Requeue
    );
}

#[test]
fn completed_and_cancelled_are_acked() {
    let v = Verdict::Completed { result: "1".into() };
    for state in [TaskState::Completed, TaskState::Cancelled] {
        assert_eq!(after_commit(Some(&applied(state)), &v, 1), Decision::Ack);
    }
}

#[test]
fn a_refused_commit_requeues_only_an_orphaned_task() {
    let v = Verdict::Completed { result: "1".into() };
    let refused = |current| Commit::Refused { current };
    assert_eq!(after_commit(Some(&refused(None)), &v, 1), Decision::Requeue);
    assert_eq!(
        after_commit(Some(&refused(Some(TaskState::Pending))), &v, 1),
        Decision::Requeue
    );
    for owned in [
        TaskState::Running,
        TaskState::Cancelling,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Retrying,
    ] {
        assert_eq!(
            after_commit(Some(&refused(Some(owned))), &v, 1),
            Decision::Ack,
            "{owned}"
        );
    }
}

// ---- the verdict ----

#[test]
fn a_returned_value_completes_with_the_result_bounded() {
    let v = Verdict::of(
        returned(Ok(serde_json::json!({"a": 1})), None),
        1,
        &policy(3),
    );
    assert_eq!(
        v,
        Verdict::Completed {
            result: r#"{"a":1}"#.into()
        }
    );
    let big = serde_json::Value::String("x".repeat(5000));
    let Verdict::Completed { result } = Verdict::of(returned(Ok(big), None), 1, &policy(3)) else {
        panic!()
    };
    assert!(
        result.len() <= 1024 && result.contains("truncated"),
        "{}",
        result.len()
    );
}

#[test]
fn a_success_that_raced_a_stop_still_completes() {
    let v = Verdict::of(
        returned(Ok(serde_json::json!(1)), Some(StopReason::Cancelled)),
        1,
        &policy(3),
    );
    assert_eq!(v, Verdict::Completed { result: "1".into() });
}

#[test]
fn a_failed_attempt_with_attempts_left_retries_after_the_backoff() {
    let v = Verdict::of(returned(Err(TaskError::retry("boom")), None), 2, &policy(3));
    assert_eq!(v, retrying(2000));
}

#[test]
fn the_last_failed_attempt_fails_for_good_as_exhausted() {
    let v = Verdict::of(returned(Err(TaskError::retry("boom")), None), 3, &policy(3));
    assert_eq!(
        v,
        Verdict::Failed {
            error: "boom".into(),
            reason: DeadReason::Exhausted
        }
    );
}

#[test]
fn a_permanent_failure_never_retries_even_when_stopped() {
    for stop in [None, Some(StopReason::Cancelled)] {
        let v = Verdict::of(
            returned(Err(TaskError::permanent("bad input")), stop),
            1,
            &policy(5),
        );
        assert_eq!(
            v,
            Verdict::Failed {
                error: "bad input".into(),
                reason: DeadReason::Permanent
            }
        );
    }
}

#[test]
fn a_timeout_is_a_failed_attempt() {
    for end in [
        AttemptEnd::Aborted(StopReason::TimedOut),
        returned(Err(TaskError::Stopped), Some(StopReason::TimedOut)),
    ] {
        let Verdict::Retrying { error, delay } = Verdict::of(end, 1, &policy(2)) else {
            panic!()
        };
        assert!(error.contains("timed out after 30s"), "{error}");
        assert_eq!(delay, Duration::from_secs(1));
    }
    let last = Verdict::of(AttemptEnd::Aborted(StopReason::TimedOut), 2, &policy(2));
    assert_eq!(last.dead_reason(), DeadReason::Exhausted);
}

#[test]
fn a_cancel_stops_as_cancelled_whether_it_returned_or_was_aborted() {
    for end in [
        AttemptEnd::Aborted(StopReason::Cancelled),
        returned(Err(TaskError::Stopped), Some(StopReason::Cancelled)),
        returned(
            Err(TaskError::retry("interrupted")),
            Some(StopReason::Cancelled),
        ),
    ] {
        assert_eq!(Verdict::of(end, 1, &policy(3)), Verdict::Cancelled);
    }
}

#[test]
fn a_drain_or_a_lost_lease_is_an_interruption() {
    for reason in [StopReason::Drained, StopReason::LeaseLost] {
        assert_eq!(
            Verdict::of(AttemptEnd::Aborted(reason), 1, &policy(3)),
            Verdict::Interrupted
        );
        assert_eq!(
            Verdict::of(
                returned(Err(TaskError::Stopped), Some(reason)),
                1,
                &policy(3)
            ),
            Verdict::Interrupted
        );
    }
}

#[test]
fn stopping_unasked_is_a_failed_attempt() {
    let v = Verdict::of(returned(Err(TaskError::Stopped), None), 1, &policy(3));
    assert_eq!(v.error(), Some("handler stopped without being asked to"));
}

#[test]
fn long_errors_are_cut() {
    let v = Verdict::of(
        returned(Err(TaskError::retry("e".repeat(10_000))), None),
        1,
        &policy(1),
    );
    assert_eq!(v.error().map(str::len), Some(4096));
}

#[test]
fn each_verdict_commits_its_outcome() {
    use taskfleet_common::store::Outcome;
    assert_eq!(Verdict::Cancelled.outcome(), Outcome::Cancelled);
    assert_eq!(Verdict::Interrupted.outcome(), Outcome::Interrupted);
    assert_eq!(
        retrying(5).outcome(),
        Outcome::Retrying {
            error: "boom".into(),
            delay: Duration::from_millis(5)
        }
    );
    assert_eq!(
        Verdict::Failed {
            error: "x".into(),
            reason: DeadReason::Permanent
        }
        .outcome(),
        Outcome::Failed { error: "x".into() }
    );
}
