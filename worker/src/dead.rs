//! Sending a message to `{ns}.dead` with headers saying why, so `taskfleet dead list`
//! and people reading the queue can tell what happened.

use std::time::{SystemTime, UNIX_EPOCH};
use taskfleet_common::amqp::Link;
pub use taskfleet_common::amqp::dead::{ATTEMPTS, DEAD_AT, DeadReason, ERROR, QUEUE, REASON};
use taskfleet_common::amqp::{AmqpError, Publish, publish_confirmed};

pub(crate) struct DeadLetter<'a> {
    pub body: &'a [u8],
    pub message_id: &'a str,
    pub task_type: &'a str,
    pub queue: &'a str,
    pub reason: DeadReason,
    pub error: &'a str,
    pub attempts: u32,
}

/// Publishes (confirmed) the dead copy. The caller acks the original afterwards, or
/// rejects it without requeue if this failed (the queue's DLX then takes it).
pub(crate) async fn publish(link: &Link, d: &DeadLetter<'_>) -> Result<(), AmqpError> {
    let exchange = link.names.dead();
    let error: String = d.error.chars().take(1000).collect();
    let dead_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_millis() as u64)
        .unwrap_or(0);
    let msg = Publish {
        exchange: &exchange,
        routing_key: d.task_type,
        body: d.body,
        message_id: d.message_id,
        task_type: d.task_type,
        priority: 0,
        headers: vec![
            (REASON, d.reason.as_str().to_owned()),
            (ERROR, error),
            (ATTEMPTS, d.attempts.to_string()),
            (QUEUE, d.queue.to_owned()),
            (DEAD_AT, dead_at.to_string()),
        ],
    };
    publish_confirmed(&link.publish, &msg, link.timeout).await
}
