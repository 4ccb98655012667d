//! Carries out a [`Decision`] on the delivery at hand: the only place that settles a
//! delivery or publishes on its behalf. A step that fails falls back to the safe
//! answer: an unconfirmed retry hands the delivery back; an unconfirmed dead copy
//! rejects it to the queue's own dead-letter exchange.

use super::decision::Decision;
use super::ports::{DeadCopy, Inbound};
use crate::link::Settle;
use taskfleet_common::envelope::Envelope;

/// Applies `decision` to the delivery of `env` (`priority`: the task's resolved one).
pub(crate) async fn execute<I: Inbound>(
    inbound: &I,
    env: &Envelope,
    priority: u8,
    decision: Decision,
) {
    match decision {
        Decision::Ack => inbound.settle(Settle::Ack).await,
        Decision::Requeue => inbound.settle(Settle::Requeue).await,
        Decision::Retry { attempt, delay } => {
            let next = env.next_attempt(attempt);
            match inbound.publish_attempt(&next, delay, priority).await {
                Ok(()) => inbound.settle(Settle::Ack).await,
                Err(e) => {
                    // The claim turns the redelivered failed attempt into a `Reschedule`.
                    tracing::warn!(error = %e, "could not schedule the next attempt; handing the delivery back");
                    inbound.settle(Settle::Requeue).await
                }
            }
        }
        Decision::DeadLetter {
            reason,
            error,
            attempts,
        } => {
            let copy = DeadCopy {
                reason,
                error,
                attempts,
                message_id: env.id.to_string(),
                task_type: env.task_type.to_string(),
            };
            dead_letter(inbound, &copy).await
        }
    }
}

/// Publishes the dead copy, then acks the original.
pub(crate) async fn dead_letter<I: Inbound>(inbound: &I, copy: &DeadCopy) {
    if !inbound.is_connected() {
        // The record may already say `failed`, and the redelivery of this message will
        // be dropped as finished: the dead copy must go out on the live connection,
        // or `dead replay` would never see this task.
        if let Err(e) = inbound.publish_dead_elsewhere(copy).await {
            tracing::warn!(error = %e, "could not publish the dead copy on a live connection");
        }
        return;
    }
    match inbound.publish_dead(copy).await {
        Ok(()) => inbound.settle(Settle::Ack).await,
        Err(e) => {
            tracing::warn!(error = %e, "could not publish to the dead-letter exchange; rejecting to the queue's DLX");
            inbound.settle(Settle::Reject).await
        }
    }
}
