//! A publisher that only reports success once RabbitMQ confirmed the message.
//!
//! Publishes are mandatory (an unroutable message is an error, not a silent drop) and
//! persistent. Many publishes may be in flight at once on the one confirm channel —
//! callers run them concurrently and the confirms come back pipelined. A lost
//! connection is re-established on the next publish; a publish in flight when it
//! broke is reported as failed, never assumed delivered.

use super::link::{Link, LinkOptions};
use super::{AmqpError, Topology, bounded};
use crate::ids::TaskType;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Publish<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub message_id: &'a str,
    pub task_type: &'a str,
    pub priority: u8,
    pub headers: Vec<(&'static str, String)>,
}

#[derive(Clone)]
pub struct Publisher {
    url: String,
    name: String,
    timeout: Duration,
    // The private CA of an `amqps://` URL, read again on each reconnect.
    tls_ca_file: Option<PathBuf>,
    topology: Topology,
    link: Arc<Mutex<Option<Link>>>,
    // Types whose queue this process declared on the current connection.
    declared: Arc<Mutex<HashSet<TaskType>>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("name", &self.name)
            .finish()
    }
}

impl Publisher {
    /// Connects, enables confirms and declares the namespace's base topology.
    pub async fn connect(
        url: &str,
        name: &str,
        topology: Topology,
        timeout: Duration,
        tls_ca_file: Option<PathBuf>,
    ) -> Result<Self, AmqpError> {
        let p = Self {
            url: url.to_owned(),
            name: name.to_owned(),
            timeout,
            tls_ca_file,
            topology,
            link: Arc::new(Mutex::new(None)),
            declared: Arc::new(Mutex::new(HashSet::new())),
        };
        p.channel().await?;
        Ok(p)
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The live confirm channel, reconnecting if the last one broke.
    pub async fn channel(&self) -> Result<Channel, AmqpError> {
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref()
            && l.is_connected()
        {
            return Ok(l.publish.clone());
        }
        *link = None;
        self.declared.lock().await.clear();
        let fresh = Link::open(LinkOptions {
            url: &self.url,
            name: &self.name,
            topology: &self.topology,
            timeout: self.timeout,
            tls_ca_file: self.tls_ca_file.as_deref(),
            consume: None,
        })
        .await?;
        let channel = fresh.publish.clone();
        *link = Some(fresh);
        Ok(channel)
    }

    /// Declares the queue of `task_type` once per connection, so a task enqueued
    /// before any worker started is kept.
    pub async fn ensure_type(&self, task_type: &TaskType) -> Result<(), AmqpError> {
        if self.declared.lock().await.contains(task_type) {
            return Ok(());
        }
        let ch = self.channel().await?;
        bounded(
            "declaring a queue",
            self.timeout,
            self.topology.declare_type(&ch, task_type),
        )
        .await?;
        self.declared.lock().await.insert(task_type.clone());
        Ok(())
    }

    /// Messages ready in each of `queues` (`None`: no such queue), on this
    /// publisher's connection.
    pub async fn queue_depths(&self, queues: &[String]) -> Result<Vec<Option<u32>>, AmqpError> {
        self.channel().await?;
        let link = self.link.lock().await;
        match link.as_ref() {
            Some(l) => l.queue_depths(queues).await,
            None => Ok(vec![None; queues.len()]),
        }
    }

    /// Publishes and waits for the broker's confirm.
    pub async fn publish(&self, msg: &Publish<'_>) -> Result<(), AmqpError> {
        let ch = self.channel().await?;
        publish_confirmed(&ch, msg, self.timeout).await
    }

    pub async fn close(&self) {
        if let Some(l) = self.link.lock().await.take() {
            l.close().await;
        }
    }
}

/// Publishes on a confirm channel and waits (bounded) for the confirm. Mandatory:
/// a message no queue takes comes back as an error.
pub async fn publish_confirmed(
    ch: &Channel,
    msg: &Publish<'_>,
    timeout: Duration,
) -> Result<(), AmqpError> {
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(msg.message_id.into())
        .with_type(msg.task_type.into())
        .with_priority(msg.priority);
    if !msg.headers.is_empty() {
        let mut table = FieldTable::default();
        for (k, v) in &msg.headers {
            table.insert((*k).into(), AMQPValue::LongString(v.as_str().into()));
        }
        props = props.with_headers(table);
    }
    let confirm = async {
        let pending = ch
            .basic_publish(
                msg.exchange.into(),
                msg.routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                msg.body,
                props,
            )
            .await?;
        pending.await.map_err(AmqpError::from)
    };
    let confirmation = tokio::time::timeout(timeout, confirm)
        .await
        .map_err(|_| AmqpError::ConfirmTimeout(timeout))??;
    if confirmation.is_nack() {
        return Err(AmqpError::Nacked);
    }
    if confirmation.take_message().is_some() {
        return Err(AmqpError::Unroutable(msg.routing_key.to_owned()));
    }
    Ok(())
}
