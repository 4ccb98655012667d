//! RabbitMQ at the edge: connecting with a deadline, the topology of a namespace,
//! and a confirmed publisher. Nothing outside this module (and the worker's consumer)
//! sees lapin types.
//!
//! - `link`: `Link`, one live connection (confirm channel, optional consume channel);
//!   every connection of the workspace is opened through it
//! - `publisher`: `Publisher`, a `Link` that reconnects on the next publish
//! - `topology`: the exchanges and queues of a namespace
//! - `delay`: broker-held retry delays; `dead`: the dead-letter headers

pub mod dead;
pub mod delay;
mod link;
mod nodes;
mod publisher;
mod topology;

pub use link::{ConsumeOptions, Link, LinkOptions, Settle};
pub use nodes::node_urls;
pub use publisher::{Publish, Publisher, publish_confirmed};
pub use topology::Topology;

use lapin::tcp::OwnedTLSConfig;
use lapin::{Connection, ConnectionProperties};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("RabbitMQ unreachable at {url}: {reason} (is RabbitMQ running? try scripts/services)")]
    Unreachable { url: String, reason: String },
    #[error("TLS to RabbitMQ at {url} failed: {reason} ({hint})", hint = crate::tls::CA_HINT)]
    Tls { url: String, reason: String },
    #[error("RabbitMQ: {0}")]
    Lapin(#[from] lapin::Error),
    #[error("publish not confirmed within {0:?} (is RabbitMQ overloaded or restarting? try again)")]
    ConfirmTimeout(Duration),
    #[error(
        "RabbitMQ did not answer within {after:?} while {what} (is it overloaded or restarting? try again)"
    )]
    TimedOut { what: &'static str, after: Duration },
    #[error(
        "publish refused by RabbitMQ (nack); try again, and see the broker's log if it persists"
    )]
    Nacked,
    #[error(
        "publish unroutable: no queue bound for routing key {0:?} (was the queue deleted? starting a worker of that type declares it again)"
    )]
    Unroutable(String),
}

impl AmqpError {
    /// Whether reconnecting and trying again can help.
    pub fn is_connection_error(&self) -> bool {
        match self {
            AmqpError::Unreachable { .. }
            | AmqpError::Tls { .. }
            | AmqpError::ConfirmTimeout(_)
            | AmqpError::TimedOut { .. } => true,
            AmqpError::Lapin(e) => !e.is_amqp_soft_error(),
            AmqpError::Nacked | AmqpError::Unroutable(_) => false,
        }
    }
}

/// Runs one RabbitMQ call with a deadline: every network call has one.
pub async fn bounded<T, E: Into<AmqpError>>(
    what: &'static str,
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, AmqpError> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| AmqpError::TimedOut {
            what,
            after: timeout,
        })?
        .map_err(Into::into)
}

/// Connects to the first node of `url` that answers (see [`node_urls`]), each within
/// `timeout`; when none does, the error names every node and why it failed.
pub async fn connect(
    url: &str,
    name: &str,
    timeout: Duration,
    tls_ca_file: Option<&Path>,
) -> Result<Connection, AmqpError> {
    let nodes = node_urls(url);
    if nodes.len() == 1 {
        return connect_node(url, name, timeout, tls_ca_file).await;
    }
    let mut failures = Vec::with_capacity(nodes.len());
    for node in &nodes {
        match connect_node(node, name, timeout, tls_ca_file).await {
            Ok(conn) => return Ok(conn),
            Err(e) => {
                tracing::debug!(node = %crate::redact_url(node), error = %e, "RabbitMQ node did not answer; trying the next");
                failures.push(e)
            }
        }
    }
    let tls = failures.iter().any(|e| matches!(e, AmqpError::Tls { .. }));
    let reason = failures
        .iter()
        .map(|e| match e {
            AmqpError::Unreachable { url, reason } | AmqpError::Tls { url, reason } => {
                format!("{url}: {reason}")
            }
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let url = format!("any of {} nodes", nodes.len());
    Err(if tls {
        AmqpError::Tls { url, reason }
    } else {
        AmqpError::Unreachable { url, reason }
    })
}

/// One node, within `timeout`. The AMQP heartbeat is set (unless the URL sets one) so a
/// hung or stopped peer is noticed in seconds and its unacked deliveries requeued.
/// An `amqps://` URL connects over TLS, trusting the system roots and `tls_ca_file`.
async fn connect_node(
    url: &str,
    name: &str,
    timeout: Duration,
    tls_ca_file: Option<&Path>,
) -> Result<Connection, AmqpError> {
    let url_with_heartbeat = if url.contains("heartbeat=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&heartbeat=5")
    } else {
        format!("{url}?heartbeat=5")
    };
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let tls = crate::tls::is_tls_url(url);
    let failed = |reason: String| {
        let url = crate::redact_url(url);
        if tls && crate::tls::is_tls_failure(&reason) {
            AmqpError::Tls { url, reason }
        } else {
            AmqpError::Unreachable { url, reason }
        }
    };
    let mut tls_config = OwnedTLSConfig::default();
    if tls {
        crate::tls::install_provider();
        if let Some(path) = tls_ca_file {
            let ca = crate::tls::read_ca(path)
                .await
                .map_err(|reason| AmqpError::Tls {
                    url: crate::redact_url(url),
                    reason,
                })?;
            tls_config.cert_chain = Some(ca);
        }
    }
    let runtime = lapin::runtime::default_runtime().map_err(|e| failed(e.to_string()))?;
    let connecting =
        Connection::connect_with_config(&url_with_heartbeat, props, tls_config, runtime);
    tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| failed(crate::tls::no_answer(tls, timeout)))?
        .map_err(|e| failed(e.to_string()))
}
