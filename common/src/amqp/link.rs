//! `Link`: one live RabbitMQ connection as every part of taskfleet uses it — a
//! confirm channel to publish on and, for consumers, a channel of its own to consume
//! from. A link is opened whole (connect → channels → confirms → base topology) and
//! replaced whole when it breaks: nothing repairs a channel in place.

use super::{AmqpError, Topology, bounded, connect};
use crate::config::QueueType;
use crate::names::Names;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use std::path::Path;
use std::time::Duration;

/// How to open a [`Link`].
#[derive(Debug, Clone, Copy)]
pub struct LinkOptions<'a> {
    pub url: &'a str,
    /// The connection name shown in RabbitMQ's management UI.
    pub name: &'a str,
    /// Its base (`{ns}.tasks`, `{ns}.dead`) is declared on every new link, so a link
    /// never publishes into an exchange that does not exist yet.
    pub topology: &'a Topology,
    /// The deadline of every network call on the link.
    pub timeout: Duration,
    /// The private CA an `amqps://` URL trusts besides the system roots.
    pub tls_ca_file: Option<&'a Path>,
    /// `Some` for links that consume: a second channel with this prefetch.
    pub consume: Option<ConsumeOptions>,
}

/// The consuming side of a link.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    /// Unacknowledged deliveries RabbitMQ hands out before waiting for acks.
    pub prefetch: u16,
    /// `global: false` applies the prefetch per consumer (RabbitMQ's fast path, and
    /// the only one quorum queues support).
    pub qos: BasicQosOptions,
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Back to the queue for another delivery.
    Requeue,
    /// Dead-lettered by the queue's DLX (no requeue).
    Reject,
}

pub struct Link {
    // Owned here so the connection lives exactly as long as its channels are used.
    conn: Connection,
    /// In confirm mode: every publish on it waits for the broker's confirm.
    pub publish: Channel,
    /// Where deliveries are read. Opened with [`ConsumeOptions`] it is a channel of
    /// its own, so a slow consumer's flow never holds up publishes; without them it
    /// is the publish channel (`basic.get` and acks work on a confirm channel, and a
    /// link that only reads now and then needs no second channel).
    pub consume: Channel,
    pub names: Names,
    /// Of the namespace's queues, for those declared on the way (delay queues).
    pub queue_type: QueueType,
    pub timeout: Duration,
}

impl Link {
    /// Connects, opens the channels and declares the namespace's base topology, each
    /// step within `timeout`.
    pub async fn open(opts: LinkOptions<'_>) -> Result<Self, AmqpError> {
        let timeout = opts.timeout;
        let conn = connect(opts.url, opts.name, timeout, opts.tls_ca_file).await?;
        let publish = bounded("opening a channel", timeout, conn.create_channel()).await?;
        bounded(
            "enabling confirms",
            timeout,
            publish.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        let consume = match opts.consume {
            Some(c) => {
                let ch = bounded("opening a channel", timeout, conn.create_channel()).await?;
                bounded(
                    "setting the prefetch",
                    timeout,
                    ch.basic_qos(c.prefetch, c.qos),
                )
                .await?;
                ch
            }
            None => publish.clone(),
        };
        bounded(
            "declaring the topology",
            timeout,
            opts.topology.declare_base(&publish),
        )
        .await?;
        Ok(Self {
            conn,
            publish,
            consume,
            names: opts.topology.names().clone(),
            queue_type: opts.topology.queue_type(),
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

    /// Messages ready in each of `queues`, `None` for a queue that does not exist.
    /// Passive declares on a channel of their own: the broker closes a channel that
    /// asks for a missing queue, and that must not be one a caller publishes on.
    pub async fn queue_depths(&self, queues: &[String]) -> Result<Vec<Option<u32>>, AmqpError> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut depths = Vec::with_capacity(queues.len());
        let mut ch: Option<Channel> = None;
        for q in queues {
            let channel = match ch.take() {
                Some(c) => c,
                None => {
                    self.bounded("opening a channel", self.conn.create_channel())
                        .await?
                }
            };
            let declared = self
                .bounded(
                    "reading a queue's depth",
                    channel.queue_declare(q.as_str().into(), passive, FieldTable::default()),
                )
                .await;
            match declared {
                Ok(queue) => {
                    depths.push(Some(queue.message_count()));
                    ch = Some(channel);
                }
                // The broker closed this channel (404): the next queue gets a new one.
                Err(_) if self.conn.status().connected() => depths.push(None),
                Err(e) => return Err(e),
            }
        }
        if let Some(c) = ch {
            let _ = self
                .bounded("closing a channel", c.close(200, "done".into()))
                .await;
        }
        Ok(depths)
    }

    /// False once either channel was closed, by the broker (a channel-level error
    /// leaves the connection up) or by a lost connection: time for a new link.
    pub fn is_connected(&self) -> bool {
        self.consume.status().connected() && self.publish.status().connected()
    }

    /// Closes the connection (and with it the channels) within the timeout. Best
    /// effort: unacknowledged deliveries go back to their queues either way.
    pub async fn close(&self) {
        let _ = tokio::time::timeout(self.timeout, self.conn.close(200, "closing".into())).await;
    }
}
