//! How a delivery that flow control holds (`Claim::Wait`, see docs/flow-control.md)
//! waits, decided without I/O:
//! - paused, or no free slot (`max_running`, `group_max_running`): it hops through a
//!   broker-held delay tier and comes back to try again, so the worker holds no
//!   delivery and spins on nothing while the cause lasts for an unknown time;
//! - no rate token yet: the script says when the next one is due. A short wait is
//!   slept here and the claim retried (the delivery stays unacknowledged for at most
//!   [`MAX_LOCAL_WAIT`] in all, far under RabbitMQ's `consumer_timeout`); a longer
//!   one hops for the computed delay.

use super::decision::Decision;
use std::time::Duration;
use taskfleet_common::flow::FlowWait;

/// A paused type's delivery comes back this often to see whether it was resumed:
/// long enough that a paused queue costs little churn, short enough for `resume`.
pub(crate) const PAUSED_HOP: Duration = Duration::from_millis(2048);
/// A delivery without a slot tries again after this (one delay tier).
pub(crate) const CAP_HOP: Duration = Duration::from_millis(256);
/// Longest single rate wait slept in the worker; a longer one hops.
pub(crate) const LOCAL_WAIT_STEP: Duration = Duration::from_secs(1);
/// Longest time one delivery is held in rate waits before it hops.
pub(crate) const MAX_LOCAL_WAIT: Duration = Duration::from_secs(5);

/// What a held delivery does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlowStep {
    /// Sleep this long, then claim again.
    WaitHere(Duration),
    /// Leave the worker: the broker holds it.
    Settle(Decision),
}

/// The next step of a delivery held for `reason` (`delay`: the script's estimate,
/// zero when it has none), after `waited` in earlier local waits of this delivery.
pub(crate) fn step(reason: FlowWait, delay: Duration, waited: Duration) -> FlowStep {
    match reason {
        FlowWait::Paused => FlowStep::Settle(Decision::Hop { delay: PAUSED_HOP }),
        FlowWait::MaxRunning | FlowWait::GroupMaxRunning => {
            FlowStep::Settle(Decision::Hop { delay: CAP_HOP })
        }
        FlowWait::Rate if delay <= LOCAL_WAIT_STEP && waited + delay <= MAX_LOCAL_WAIT => {
            FlowStep::WaitHere(delay)
        }
        FlowWait::Rate => FlowStep::Settle(Decision::Hop {
            delay: delay.max(CAP_HOP),
        }),
    }
}

/// Metrics of a claim's flow control: a counter of waits by reason, and whether the
/// type is paused as this worker last saw it.
pub(crate) fn observe(claim: &taskfleet_common::store::Claim, env: &taskfleet_common::Envelope) {
    use taskfleet_common::store::Claim;
    let t = env.task_type.to_string();
    match claim {
        Claim::Wait { reason, .. } => {
            metrics::counter!("taskfleet_flow_waits_total", "type" => t.clone(), "reason" => reason.as_str())
                .increment(1);
            if *reason == FlowWait::Paused {
                metrics::gauge!("taskfleet_type_paused", "type" => t).set(1.0);
            }
        }
        Claim::Run { .. } => metrics::gauge!("taskfleet_type_paused", "type" => t).set(0.0),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn paused_and_capped_deliveries_wait_in_the_broker() {
        assert_eq!(
            step(FlowWait::Paused, Duration::ZERO, Duration::ZERO),
            FlowStep::Settle(Decision::Hop { delay: PAUSED_HOP })
        );
        for r in [FlowWait::MaxRunning, FlowWait::GroupMaxRunning] {
            assert_eq!(
                step(r, Duration::ZERO, Duration::ZERO),
                FlowStep::Settle(Decision::Hop { delay: CAP_HOP })
            );
        }
    }

    #[test]
    fn a_claim_told_to_wait_becomes_a_step() {
        use super::super::decision::{ClaimStep, after_claim};
        use taskfleet_common::store::Claim;
        let wait = |reason, delay| Some(Claim::Wait { reason, delay });
        assert_eq!(
            after_claim(wait(FlowWait::Rate, MS(30)), 1),
            ClaimStep::WaitHere(MS(30))
        );
        assert_eq!(
            after_claim(wait(FlowWait::Paused, Duration::ZERO), 1),
            ClaimStep::Settle(Decision::Hop { delay: PAUSED_HOP })
        );
    }

    #[test]
    fn short_rate_waits_are_slept_here_up_to_a_bound() {
        assert_eq!(
            step(FlowWait::Rate, MS(40), Duration::ZERO),
            FlowStep::WaitHere(MS(40))
        );
        assert_eq!(
            step(FlowWait::Rate, MS(40), MAX_LOCAL_WAIT),
            FlowStep::Settle(Decision::Hop { delay: CAP_HOP })
        );
        assert_eq!(
            step(FlowWait::Rate, MS(30_000), Duration::ZERO),
            FlowStep::Settle(Decision::Hop { delay: MS(30_000) })
        );
    }
}
