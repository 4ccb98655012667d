//! The real [`Inbound`]: a lapin delivery on the link it came on.

use super::ports::{CopyKind, DeadCopy, Inbound};
use crate::dead::{self, DeadLetter};
use crate::shared::CurrentLink;
use lapin::message::Delivery;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::amqp::{AmqpError, Publish, delay, publish_confirmed};
use taskfleet_common::amqp::{Link, Settle};
use taskfleet_common::envelope::Envelope;

pub(crate) struct AmqpInbound {
    pub link: Arc<Link>,
    pub delivery: Delivery,
    pub queue: String,
    /// The worker's live connection, for a dead copy whose own connection broke.
    pub current: CurrentLink,
    pub parked: AtomicBool,
}

impl AmqpInbound {
    fn dead_letter<'a>(&'a self, copy: &'a DeadCopy) -> DeadLetter<'a> {
        DeadLetter {
            body: &self.delivery.data,
            message_id: &copy.message_id,
            task_type: &copy.task_type,
            queue: &self.queue,
            reason: copy.reason,
            error: &copy.error,
            attempts: copy.attempts,
        }
    }
}

impl Inbound for AmqpInbound {
    fn body(&self) -> &[u8] {
        &self.delivery.data
    }

    fn redelivered(&self) -> bool {
        self.delivery.redelivered
    }

    fn message_id(&self) -> Option<&str> {
        self.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str())
    }

    fn queue(&self) -> &str {
        &self.queue
    }

    fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    fn parked(&self) -> bool {
        self.parked.load(Ordering::Relaxed)
    }

    fn set_parked(&self) {
        self.parked.store(true, Ordering::Relaxed)
    }

    fn is_parked_copy(&self) -> bool {
        self.delivery
            .properties
            .headers()
            .as_ref()
            .is_some_and(|h| h.inner().contains_key(delay::PARKED))
    }

    async fn settle(&self, how: Settle) {
        self.link.settle(&self.delivery, how).await
    }

    async fn publish_copy(
        &self,
        env: &Envelope,
        delay: Duration,
        priority: u8,
        kind: CopyKind,
    ) -> Result<(), AmqpError> {
        publish_copy_on(&self.link, env, delay, priority, kind).await
    }

    async fn publish_copy_elsewhere(
        &self,
        env: &Envelope,
        delay: Duration,
        priority: u8,
        kind: CopyKind,
    ) -> Result<(), AmqpError> {
        let live = self.live_link().await?;
        publish_copy_on(&live, env, delay, priority, kind).await
    }

    async fn publish_dead(&self, copy: &DeadCopy) -> Result<(), AmqpError> {
        dead::publish(&self.link, &self.dead_letter(copy)).await
    }

    async fn publish_dead_elsewhere(&self, copy: &DeadCopy) -> Result<(), AmqpError> {
        let live = self.live_link().await?;
        dead::publish(&live, &self.dead_letter(copy)).await
    }
}

impl AmqpInbound {
    /// The worker's live connection, waiting for a reconnect at most 3 × the timeout.
    async fn live_link(&self) -> Result<Arc<Link>, AmqpError> {
        let wait = self.link.timeout * 3;
        self.current
            .live(wait)
            .await
            .ok_or_else(|| AmqpError::Unreachable {
                url: "the worker's connection".into(),
                reason: format!("no RabbitMQ connection came back within {wait:?}"),
            })
    }
}

/// Publishes a copy of `env` on `link`: through the delay tiers, or straight to the
/// tasks exchange when `delay` is zero.
async fn publish_copy_on(
    link: &Link,
    env: &Envelope,
    delay: Duration,
    priority: u8,
    kind: CopyKind,
) -> Result<(), AmqpError> {
    let body = env.to_bytes();
    let id = env.id.to_string();
    let tasks_exchange = link.names.tasks_exchange();
    // Every delayed copy hops through the bounded delay tiers (see `delay::tier`).
    let wait_ms = delay::tier(delay);
    let (exchange, routing_key) = match wait_ms {
        None => (tasks_exchange.as_str(), env.task_type.to_string()),
        Some(ms) => {
            let queue = delay::declare(
                &link.publish,
                &link.names,
                link.queue_type,
                &env.task_type,
                ms,
            );
            ("", link.bounded("declaring a delay queue", queue).await?)
        }
    };
    let msg = Publish {
        exchange,
        routing_key: &routing_key,
        body: &body,
        message_id: &id,
        task_type: env.task_type.as_str(),
        priority,
        headers: env
            .traceparent()
            .map(|t| ("traceparent", t))
            .into_iter()
            .chain((kind == CopyKind::Parked).then(|| (delay::PARKED, "1".to_owned())))
            .collect(),
    };
    publish_confirmed(&link.publish, &msg, link.timeout).await
}
