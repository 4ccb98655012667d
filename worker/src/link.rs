//! One live RabbitMQ connection of a worker: a consuming channel and a confirm
//! channel for retries and dead letters. Replaced as a whole on reconnect.

use lapin::options::{
    BasicAckOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::{Channel, Connection, message::Delivery};
use std::time::Duration;
use taskfleet_common::Names;
use taskfleet_common::amqp::{AmqpError, Topology, bounded, connect};

pub(crate) struct Link {
    pub conn: Connection,
    pub consume: Channel,
    pub publish: Channel,
    pub names: Names,
    pub timeout: Duration,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack,
    /// Back to the queue for another delivery.
    Requeue,
    /// Dead-lettered by the queue's DLX (no requeue).
    Reject,
}

impl Link {
    /// `qos` applies per consumer (RabbitMQ's fast path, and the only one quorum queues
    /// support), so a worker consuming T types may hold up to T × prefetch unacked
    /// messages; the semaphore still bounds how many run.
    pub async fn open(
        url: &str,
        name: &str,
        topology: &Topology,
        prefetch: u16,
        qos: BasicQosOptions,
        timeout: Duration,
    ) -> Result<Self, AmqpError> {
        let conn = connect(url, name, timeout).await?;
        let consume = bounded("opening a channel", timeout, conn.create_channel()).await?;
        bounded(
            "setting the prefetch",
            timeout,
            consume.basic_qos(prefetch, qos),
        )
        .await?;
        let publish = bounded("opening a channel", timeout, conn.create_channel()).await?;
        bounded(
            "enabling confirms",
            timeout,
            publish.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        bounded(
            "declaring the topology",
            timeout,
            topology.declare_base(&consume),
        )
        .await?;
        Ok(Self {
            conn,
            consume,
            publish,
            names: topology.names().clone(),
            timeout,
        })
    }

    /// Acks, requeues or rejects. A failure means the channel is gone, and with it
    /// the delivery: RabbitMQ redelivers it, and the claim fences the copy.
    pub async fn settle(&self, delivery: &Delivery, how: Settle) {
        let result = tokio::time::timeout(self.timeout, async {
            match how {
                Settle::Ack => delivery.ack(BasicAckOptions::default()).await,
                Settle::Requeue => {
                    delivery
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..Default::default()
                        })
                        .await
                }
                Settle::Reject => delivery.reject(BasicRejectOptions { requeue: false }).await,
            }
        })
        .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, ?how, "could not settle a delivery; it will be redelivered")
            }
            Err(_) => tracing::debug!(
                ?how,
                "settling a delivery timed out; it will be redelivered"
            ),
        }
    }

    /// Runs a call on this link with its network timeout.
    pub async fn bounded<T, E: Into<AmqpError>>(
        &self,
        what: &'static str,
        fut: impl Future<Output = Result<T, E>>,
    ) -> Result<T, AmqpError> {
        bounded(what, self.timeout, fut).await
    }

    pub fn is_connected(&self) -> bool {
        self.consume.status().connected() && self.publish.status().connected()
    }

    pub async fn close(&self) {
        let _ = tokio::time::timeout(self.timeout, self.conn.close(200, "worker stopping".into()))
            .await;
    }
}
