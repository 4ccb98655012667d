//! Carries out a [`Decision`] on the delivery at hand: the only place that settles a
//! delivery or publishes on its behalf. A step that fails falls back to the safe
//! answer: an unconfirmed retry hands the delivery back; an unconfirmed dead copy
//! rejects it to the queue's own dead-letter exchange. A parked run (its delivery
//! acked long ago) carries its outcome by copies, sent on the worker's live
//! connection when the delivery's own is gone or refused the copy.

use super::decision::Decision;
use super::ports::{CopyKind, DeadCopy, Inbound};
use taskfleet_common::amqp::Settle;
use taskfleet_common::envelope::Envelope;

/// Applies `decision` to the delivery of `env` (`priority`: the task's resolved one).
pub(crate) async fn execute<I: Inbound>(
    inbound: &I,
    env: &Envelope,
    priority: u8,
    decision: Decision,
) {
    match decision {
        Decision::Ack => settle(inbound, env, priority, Settle::Ack).await,
        Decision::Requeue => settle(inbound, env, priority, Settle::Requeue).await,
        Decision::Retry { attempt, delay } => {
            let mut next = env.next_attempt(attempt);
            // Its due time, should Redis lose the record before it arrives (the record's
            // `next_attempt_at`, on the Redis clock, rules otherwise).
            next.run_at = Some(now_ms().saturating_add(delay.as_millis() as u64));
            match run_copy(inbound, &next, delay, priority, CopyKind::Attempt).await {
                Ok(()) => settle(inbound, env, priority, Settle::Ack).await,
                Err(e) => {
                    // The claim turns the redelivered failed attempt into a `Reschedule`.
                    tracing::warn!(error = %e, "could not schedule the next attempt; handing the delivery back");
                    settle(inbound, env, priority, Settle::Requeue).await
                }
            }
        }
        Decision::Hop { delay } => {
            match inbound
                .publish_copy(env, delay, priority, CopyKind::Scheduled)
                .await
            {
                Ok(()) => settle(inbound, env, priority, Settle::Ack).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not send a scheduled task on; handing the delivery back");
                    settle(inbound, env, priority, Settle::Requeue).await
                }
            }
        }
        Decision::Park { delay } => {
            if let Err(e) = park(inbound, env, delay, priority).await {
                tracing::warn!(error = %e, "could not park the copy; handing the delivery back");
                inbound.settle(Settle::Requeue).await
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

/// Parks the delivery: a confirmed copy waits `delay` in the broker, then the
/// delivery is acknowledged. RabbitMQ keeps holding the task (the copy) while no
/// delivery of it stays unacknowledged.
pub(crate) async fn park<I: Inbound>(
    inbound: &I,
    env: &Envelope,
    delay: std::time::Duration,
    priority: u8,
) -> Result<(), taskfleet_common::amqp::AmqpError> {
    inbound
        .publish_copy(env, delay, priority, CopyKind::Parked)
        .await?;
    // Parked before the ack is sent: if the run ends meanwhile, its settlement must
    // not be attempted on a delivery already acked.
    inbound.set_parked();
    inbound.settle(Settle::Ack).await;
    metrics::counter!("taskfleet_parked_total", "type" => env.task_type.to_string()).increment(1);
    Ok(())
}

/// Settles the delivery, or, once it was parked (acked already), does what the
/// settlement meant with a copy: a hand-back publishes a copy so the task need not
/// wait for its parked one; an ack needs nothing.
async fn settle<I: Inbound>(inbound: &I, env: &Envelope, priority: u8, how: Settle) {
    if !inbound.parked() {
        return inbound.settle(how).await;
    }
    if how == Settle::Requeue {
        // As a parked copy: it runs at once if the task is back to `pending`, and waits
        // for the lease if the record still says `running` (a commit that failed).
        let copy = run_copy(
            inbound,
            env,
            std::time::Duration::ZERO,
            priority,
            CopyKind::Parked,
        );
        if let Err(e) = copy.await {
            tracing::warn!(error = %e, "could not hand back a parked run; its parked copy will");
        }
    }
}

/// Publishes a copy on behalf of a run. An unparked delivery's copies go on its own
/// connection only: its settlement follows there, and if that connection broke the
/// redelivery decides again. A parked run's delivery is settled already, and the run
/// may have outlived its connection by hours: its copy goes on the live connection
/// when its own is gone or did not confirm it.
async fn run_copy<I: Inbound>(
    inbound: &I,
    env: &Envelope,
    delay: std::time::Duration,
    priority: u8,
    kind: CopyKind,
) -> Result<(), taskfleet_common::amqp::AmqpError> {
    if !inbound.parked() {
        return inbound.publish_copy(env, delay, priority, kind).await;
    }
    if inbound.is_connected() {
        match inbound.publish_copy(env, delay, priority, kind).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "a parked run's copy was not confirmed; trying the live connection")
            }
        }
    }
    inbound
        .publish_copy_elsewhere(env, delay, priority, kind)
        .await
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
        Ok(()) if inbound.parked() => {}
        Ok(()) => inbound.settle(Settle::Ack).await,
        Err(e) if inbound.parked() => {
            // Nothing to reject: the record says failed, and only this copy can put
            // the task where `dead replay` finds it.
            tracing::warn!(error = %e, "the dead copy of a parked run was not confirmed; trying the live connection");
            if let Err(e) = inbound.publish_dead_elsewhere(copy).await {
                tracing::error!(error = %e, "could not publish the dead copy of a parked run; the record says failed")
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not publish to the dead-letter exchange; rejecting to the queue's DLX");
            inbound.settle(Settle::Reject).await
        }
    }
}

/// This machine's clock, ms since the epoch (a fallback for a lost record only).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
