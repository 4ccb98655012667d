//! The Redis state store: the live view of every task, readable with redis-cli.
//!
//! `StateStore` is a cheap-to-clone handle over one multiplexed connection
//! (`ConnectionManager`, which reconnects by itself), so concurrent tasks share
//! round trips instead of queueing behind each other. Every command has a timeout.
//! Each state change is one Lua script (`common/lua/`) that checks the transition
//! table and fences on worker and attempt.
//!
//! - `tasks`: enqueue, claim, finish, cancel, report, replay (the transitions)
//! - `fleet`: heartbeats, the reaper, the worker registry
//! - `deps`: dependents of a finished task, parents' results (docs/workflows.md)
//! - `read`: records and counters as users see them
//! - `logs`: `{ns}:logs:{id}`, a task's log lines (bounded, batched)
//! - `type_settings`: `{ns}:type:{type}`, the settings workers declare per type
//! - `pause`: pausing and resuming a type fleet-wide
//! - `calls`: one module per script: its typed arguments (KEYS/ARGV order) and reply
//! - `scripts`: loading the scripts, the prelude's constants rendered from Rust
//! - `fields`: the fields of the task hash, named once
//! - `sentinel`: finding (and following) the primary through Redis Sentinel
//! - `reply`: strict readers of Redis replies

mod calls;
mod deps;
mod fields;
mod fleet;
mod flow_settings;
mod logs;
mod pause;
mod read;
mod reply;
mod schedules;
mod scripts;
mod sentinel;
mod tasks;
mod type_settings;

pub use fields::{FieldKind, TaskField};
pub use fleet::{Beat, HeartbeatArgs, Registration, WorkerInfo, WorkerStatus};
pub use logs::{MAX_LOG_LINE, MAX_LOG_LINES};
pub use read::{TaskRecord, TypeStats};
pub use schedules::{Lead, LeadRequest, ScheduleInfo};
pub use tasks::{
    CancelResult, Claim, Commit, DeliveryClaim, DropReason, EnqueueOutcome, Fence, NewTask,
    Outcome, ReplayRefusal, Report,
};
pub use type_settings::{Declaration, DeclaredSettings, FlowView, FlowWaits, TypeDeclaration};

use crate::names::Names;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use scripts::Scripts;
use std::path::Path;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis unreachable at {url}: {reason} (is Redis running? try scripts/services)")]
    Unreachable { url: String, reason: String },
    #[error("TLS to Redis at {url} failed: {reason} ({hint})", hint = crate::tls::CA_HINT)]
    Tls { url: String, reason: String },
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from {script}.lua: {reply}")]
    Protocol { script: &'static str, reply: String },
}

impl StoreError {
    /// Whether waiting for Redis and trying again can help.
    pub fn is_connection_error(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::Tls { .. } => true,
            StoreError::Redis(e) => {
                e.is_connection_dropped()
                    || e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_refusal()
            }
            StoreError::Protocol { .. } => false,
        }
    }

    /// Whether trying again later can help: a connection error, or a Redis that is
    /// loading its data, read-only after a failover, or asking to try again.
    pub fn is_retryable(&self) -> bool {
        use redis::{ErrorKind, ServerErrorKind};
        self.is_connection_error()
            || matches!(self, StoreError::Redis(e) if matches!(
                e.kind(),
                ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                )
            ))
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct StateStore {
    /// Replaced whole when Sentinel names a new primary; every call clones what is
    /// current (cheap), so a move never waits for calls in flight.
    primary: Arc<RwLock<Primary>>,
    names: Names,
    scripts: Arc<Scripts>,
    retention: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("ns", self.names.namespace())
            .finish()
    }
}

impl StateStore {
    /// Connects within `timeout`; every later command is bounded by `timeout` too. A
    /// `rediss://` URL connects over TLS, trusting the system roots or, when given,
    /// the private CA of `tls_ca_file`; a `redis+sentinel://` URL connects to the
    /// primary the Sentinels name, and follows it (see `sentinel`).
    pub async fn connect(
        url: &str,
        names: Names,
        retention: Duration,
        timeout: Duration,
        tls_ca_file: Option<&Path>,
    ) -> Result<Self> {
        let sentinel = match sentinel::SentinelUrl::parse(url) {
            Some(Ok(s)) => Some(s),
            Some(Err(reason)) => {
                return Err(StoreError::Unreachable {
                    url: crate::redact_url(url),
                    reason,
                });
            }
            None => None,
        };
        let primary_url = match &sentinel {
            Some(s) => s.primary(timeout).await?,
            None => url.to_owned(),
        };
        let primary = Primary::open(&primary_url, timeout, tls_ca_file).await?;
        let primary = Arc::new(RwLock::new(primary));
        if let Some(s) = sentinel {
            tokio::spawn(follow(Arc::downgrade(&primary), s, primary_url, timeout));
        }
        Ok(Self {
            primary,
            names,
            scripts: Arc::new(Scripts::load()),
            retention,
            timeout,
        })
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// A dedicated pub/sub connection, which must never share the multiplexed one.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        let client = self.client();
        let ps = tokio::time::timeout(self.timeout, client.get_async_pubsub())
            .await
            .map_err(|_| StoreError::Unreachable {
                url: crate::redact_url(&self.client().get_connection_info().addr().to_string()),
                reason: "pub/sub connection timed out".into(),
            })??;
        Ok(ps)
    }

    /// A dedicated pub/sub connection subscribed to `channel`, within the network timeout.
    pub async fn subscribe(&self, channel: &str) -> Result<redis::aio::PubSub> {
        let mut ps = self.pubsub().await?;
        tokio::time::timeout(self.timeout, ps.subscribe(channel))
            .await
            .map_err(|_| StoreError::Unreachable {
                url: crate::redact_url(&self.client().get_connection_info().addr().to_string()),
                reason: format!("subscribing to {channel} timed out"),
            })??;
        Ok(ps)
    }

    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn();
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    fn retention_ms(&self) -> u64 {
        self.retention.as_millis() as u64
    }

    fn conn(&self) -> ConnectionManager {
        self.current().conn
    }

    fn client(&self) -> redis::Client {
        self.current().client
    }

    fn current(&self) -> Primary {
        // A poisoned lock only means a follower panicked mid-swap; what it holds is whole.
        self.primary
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Deletes every key of the namespace (tests and demos clean up with it).
    pub async fn purge_namespace(&self) -> Result<u64> {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        let mut removed = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(self.names.redis_pattern())
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                removed += redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<u64>(&mut conn)
                    .await?;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }
}

/// The `redis://` URL of the server a store on `url` talks to now: `url` itself, or
/// for a Sentinel URL the primary the Sentinels name (tools reading Redis directly).
pub async fn current_server(url: &str, timeout: Duration) -> Result<String> {
    match sentinel::SentinelUrl::parse(url) {
        Some(Ok(s)) => s.primary(timeout).await,
        Some(Err(reason)) => Err(StoreError::Unreachable {
            url: crate::redact_url(url),
            reason,
        }),
        None => Ok(url.to_owned()),
    }
}

/// The server every command goes to: one multiplexed connection and the client that
/// opens pub/sub connections beside it.
#[derive(Clone)]
struct Primary {
    conn: ConnectionManager,
    client: redis::Client,
}

impl Primary {
    async fn open(url: &str, timeout: Duration, tls_ca_file: Option<&Path>) -> Result<Self> {
        let tls = crate::tls::is_tls_url(url);
        let failed = |reason: String| {
            let url = crate::redact_url(url);
            if tls && crate::tls::is_tls_failure(&reason) {
                StoreError::Tls { url, reason }
            } else {
                StoreError::Unreachable { url, reason }
            }
        };
        let client = client(url, tls, tls_ca_file).await?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| failed(crate::tls::no_answer(tls, timeout)))?
        .map_err(|e| failed(e.to_string()))?;
        Ok(Self { conn, client })
    }
}

/// Asks the Sentinels who the primary is every `sentinel::POLL` and moves the store
/// there when the answer changes; ends with the last clone of the store.
async fn follow(
    slot: Weak<RwLock<Primary>>,
    sentinel: sentinel::SentinelUrl,
    mut current: String,
    timeout: Duration,
) {
    loop {
        tokio::time::sleep(sentinel::POLL).await;
        if slot.strong_count() == 0 {
            return;
        }
        let url = match sentinel.primary(timeout).await {
            Ok(url) if url != current => url,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "no Sentinel answered; keeping the primary");
                continue;
            }
        };
        match Primary::open(&url, timeout, None).await {
            Ok(primary) => {
                let Some(slot) = slot.upgrade() else { return };
                *slot.write().unwrap_or_else(|e| e.into_inner()) = primary;
                tracing::warn!(
                    master = sentinel.master(),
                    from = %crate::redact_url(&current),
                    to = %crate::redact_url(&url),
                    "Redis failover: following the new primary"
                );
                current = url;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the new primary Sentinel named does not answer yet")
            }
        }
    }
}

/// The client of `url`: over TLS for `rediss://` (with the private CA, if any).
async fn client(url: &str, tls: bool, tls_ca_file: Option<&Path>) -> Result<redis::Client> {
    let invalid = |reason: String| StoreError::Unreachable {
        url: crate::redact_url(url),
        reason,
    };
    if !tls {
        return redis::Client::open(url).map_err(|e| invalid(e.to_string()));
    }
    crate::tls::install_provider();
    let Some(path) = tls_ca_file else {
        return redis::Client::open(url).map_err(|e| invalid(e.to_string()));
    };
    let ca = crate::tls::read_ca(path)
        .await
        .map_err(|reason| StoreError::Tls {
            url: crate::redact_url(url),
            reason,
        })?;
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.into_bytes()),
    };
    redis::Client::build_with_tls(url, certs).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod tests;
