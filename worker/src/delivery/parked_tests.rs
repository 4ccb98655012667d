//! A parked run's outcome copies (its delivery acked long ago) against the fakes:
//! they go out on the worker's live connection when the delivery's own is gone or
//! did not confirm them (docs/long-tasks.md, "How a parked run ends").

use super::fakes::{Did, FakeInbound};
use super::ports::CopyKind;
use super::tests::{parking_after, run_stopped_with};
use crate::inflight::StopReason;
use std::sync::atomic::Ordering;
use taskfleet_common::Config;
use taskfleet_common::amqp::Settle;
use taskfleet_common::store::Outcome;

/// Ready once parked; then breaks the delivery's connection (`disconnect`) or makes
/// it refuse publishes.
fn once_parked(disconnect: bool) -> impl Fn(&FakeInbound) -> bool {
    move |i| {
        if !i.parked.load(Ordering::Relaxed) {
            return false;
        }
        if disconnect {
            i.connected.store(false, Ordering::Relaxed);
        } else {
            i.publish_fails.store(true, Ordering::Relaxed);
        }
        true
    }
}

fn one_attempt(mut c: Config) -> Config {
    c.defaults.max_attempts = 1;
    c
}

#[tokio::test]
async fn a_parked_run_whose_connection_closed_publishes_its_retry_on_the_live_one() {
    let (s, inbound) =
        run_stopped_with(StopReason::TimedOut, parking_after(20), once_parked(true)).await;
    assert!(matches!(s.store.finished()[..], [Outcome::Retrying { .. }]));
    let did = inbound.did();
    assert!(
        matches!(
            did[..],
            [
                Did::PublishedParked { .. },
                Did::Settled(Settle::Ack),
                Did::PublishedElsewhere {
                    kind: CopyKind::Attempt,
                    attempt: 2,
                    ..
                }
            ]
        ),
        "the next attempt on the live connection, nothing settled: {did:?}"
    );
}

#[tokio::test]
async fn a_parked_runs_unconfirmed_retry_is_sent_again_on_the_live_connection() {
    let (_, inbound) =
        run_stopped_with(StopReason::TimedOut, parking_after(20), once_parked(false)).await;
    let did = inbound.did();
    assert!(
        matches!(
            did[..],
            [
                Did::PublishedParked { .. },
                Did::Settled(Settle::Ack),
                Did::PublishedAttempt { attempt: 2, .. },
                Did::PublishedElsewhere {
                    kind: CopyKind::Attempt,
                    attempt: 2,
                    ..
                }
            ]
        ),
        "{did:?}"
    );
}

#[tokio::test]
async fn a_parked_runs_unconfirmed_dead_copy_is_sent_again_on_the_live_connection() {
    let (s, inbound) = run_stopped_with(
        StopReason::TimedOut,
        one_attempt(parking_after(20)),
        once_parked(false),
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
                Did::PublishedDead(_),
                Did::PublishedDeadElsewhere(_)
            ]
        ),
        "no reject (nothing to settle), a second try on the live connection: {did:?}"
    );
}

#[tokio::test]
async fn a_drained_parked_run_whose_connection_closed_hands_back_on_the_live_one() {
    let (s, inbound) =
        run_stopped_with(StopReason::Drained, parking_after(20), once_parked(true)).await;
    assert_eq!(s.store.finished(), vec![Outcome::Interrupted]);
    let did = inbound.did();
    assert!(
        matches!(
            did[..],
            [
                Did::PublishedParked { .. },
                Did::Settled(Settle::Ack),
                Did::PublishedElsewhere {
                    kind: CopyKind::Parked,
                    attempt: 1,
                    delay: std::time::Duration::ZERO
                }
            ]
        ),
        "{did:?}"
    );
}
