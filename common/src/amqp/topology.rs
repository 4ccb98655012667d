//! Declares the exchanges and queues of a namespace. Idempotent: producers declare a
//! type's queue at its first enqueue and workers at start, with identical arguments
//! (RabbitMQ refuses a redeclaration with different ones).

use super::AmqpError;
use crate::config::QueueType;
use crate::ids::TaskType;
use crate::names::Names;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

/// On a quorum queue RabbitMQ itself counts deliveries and dead-letters a message
/// delivered more often than this, so poison stays bounded even when Redis lost the
/// count `max_redeliveries` is judged by (a failover to a replica that lagged). The
/// claim's own bound acts first; this one is generous because a worker that cannot
/// reach Redis hands deliveries back, and the broker counts those too. A constant, not
/// a setting: producers and workers must declare identical queue arguments.
pub const QUORUM_DELIVERY_LIMIT: i32 = 50;

#[derive(Debug, Clone)]
pub struct Topology {
    names: Names,
    queue_type: QueueType,
}

impl Topology {
    pub fn new(names: Names, queue_type: QueueType) -> Self {
        Self { names, queue_type }
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn queue_type(&self) -> QueueType {
        self.queue_type
    }

    /// `{ns}.tasks` and `{ns}.dead` (exchange and queue).
    pub async fn declare_base(&self, ch: &Channel) -> Result<(), AmqpError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.exchange_declare(
            self.names.tasks_exchange().into(),
            ExchangeKind::Direct,
            durable,
            FieldTable::default(),
        )
        .await?;
        // Fanout: whatever routing key a dead message carries, it lands in the queue.
        ch.exchange_declare(
            self.names.dead().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
        ch.queue_declare(
            self.names.dead().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            replicated(self.queue_type),
        )
        .await?;
        ch.queue_bind(
            self.names.dead().into(),
            self.names.dead().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        Ok(())
    }

    /// `{ns}.q.{type}`, bound to `{ns}.tasks` with key = type.
    pub async fn declare_type(&self, ch: &Channel, task_type: &TaskType) -> Result<(), AmqpError> {
        let queue = self.names.queue(task_type);
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            self.queue_arguments(),
        )
        .await?;
        ch.queue_bind(
            queue.into(),
            self.names.tasks_exchange().into(),
            task_type.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        Ok(())
    }

    fn queue_arguments(&self) -> FieldTable {
        // On quorum queues priorities are ignored (3.10), and poison is also bounded
        // by the broker.
        let mut args = replicated(self.queue_type);
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.names.dead().into()),
        );
        match self.queue_type {
            QueueType::Classic => {
                args.insert("x-max-priority".into(), AMQPValue::LongInt(9));
            }
            QueueType::Quorum => {
                args.insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongInt(QUORUM_DELIVERY_LIMIT),
                );
            }
        }
        args
    }
}

/// The arguments that make a queue of `queue_type`: every queue of a namespace (task,
/// delay and dead queues) is replicated when the namespace is, so losing a node loses
/// no queue.
pub(crate) fn replicated(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    if queue_type == QueueType::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    args
}
