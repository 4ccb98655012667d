//! Turns a dead-lettering decision into an alert (`crate::alerts`): one per dead
//! copy, so a task that fails for good is announced once, whatever path led there.

use super::decision::Decision;
use super::ports::DeadCopy;
use crate::alerts::{Alert, AlertEvent};
use crate::dead::DeadReason;
use crate::shared::Shared;
use taskfleet_common::envelope::Envelope;

/// Queues an alert when `decision` dead-letters `env`'s task; never waits.
pub(crate) fn decision<S>(shared: &Shared<S>, env: &Envelope, decision: &Decision) {
    if let Decision::DeadLetter {
        reason,
        error,
        attempts,
    } = decision
    {
        shared.alerts.send(Alert {
            event: event(*reason),
            id: env.id.to_string(),
            task_type: env.task_type.to_string(),
            reason: reason.as_str().to_owned(),
            error: error.clone(),
            attempts: *attempts,
        });
    }
}

/// Queues an alert for a message dead-lettered without a task (unparseable).
pub(crate) fn dead_copy<S>(shared: &Shared<S>, copy: &DeadCopy) {
    shared.alerts.send(Alert {
        event: event(copy.reason),
        id: copy.message_id.clone(),
        task_type: copy.task_type.clone(),
        reason: copy.reason.as_str().to_owned(),
        error: copy.error.clone(),
        attempts: copy.attempts,
    });
}

fn event(reason: DeadReason) -> AlertEvent {
    match reason {
        DeadReason::Exhausted | DeadReason::Permanent => AlertEvent::Failed,
        _ => AlertEvent::DeadLettered,
    }
}
