//! What every part of a running worker shares: configuration, the state store, the
//! handlers, the in-flight registry, and whether Redis is answering.

use crate::handler::DynHandler;
use crate::inflight::Inflight;
use crate::link::Link;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::amqp::Topology;
use taskfleet_common::store::{Registration, WorkerStatus};
use taskfleet_common::{Config, Names, StateStore, TaskType, WorkerId};
use tokio::sync::Notify;

pub(crate) struct Shared {
    pub config: Config,
    pub names: Names,
    pub topology: Topology,
    pub store: StateStore,
    pub worker_id: WorkerId,
    pub registration: Registration,
    pub handlers: HashMap<TaskType, Arc<dyn DynHandler>>,
    pub inflight: Inflight,
    /// The types this worker consumes, in a stable order.
    pub types: Vec<TaskType>,
    draining: AtomicBool,
    /// The consumer's live connection, for work that outlived its own (a dead copy).
    link: std::sync::Mutex<Option<Arc<Link>>>,
    redis_down: AtomicBool,
    redis_back: Notify,
}

impl Shared {
    pub fn new(
        config: Config,
        store: StateStore,
        worker_id: WorkerId,
        registration: Registration,
        handlers: HashMap<TaskType, Arc<dyn DynHandler>>,
        types: Vec<TaskType>,
    ) -> Self {
        let names = Names::new(config.namespace.clone());
        let topology = Topology::new(names.clone(), config.queue_type);
        Self {
            config,
            names,
            topology,
            store,
            worker_id,
            registration,
            handlers,
            inflight: Inflight::default(),
            types,
            draining: AtomicBool::new(false),
            link: std::sync::Mutex::new(None),
            redis_down: AtomicBool::new(false),
            redis_back: Notify::new(),
        }
    }

    pub fn status(&self) -> WorkerStatus {
        if self.draining.load(Ordering::Relaxed) {
            WorkerStatus::Draining
        } else {
            WorkerStatus::Running
        }
    }

    pub fn set_link(&self, link: Arc<Link>) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
    }

    /// The current connection once it is up, waiting for a reconnect at most `wait`.
    pub async fn live_link(&self, wait: Duration) -> Option<Arc<Link>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let link = self.link.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(l) = link.filter(|l| l.is_connected()) {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Called when a Redis call failed for connection reasons: the worker stops
    /// taking deliveries (it could not record them) until Redis answers again.
    pub fn redis_failed(&self) {
        if !self.redis_down.swap(true, Ordering::Relaxed) {
            tracing::warn!("Redis is not answering; pausing deliveries until it is back");
        }
    }

    pub fn redis_ok(&self) {
        if self.redis_down.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; resuming deliveries");
            self.redis_back.notify_waiters();
        }
    }

    pub fn is_redis_down(&self) -> bool {
        self.redis_down.load(Ordering::Relaxed)
    }

    /// Waits until Redis answers, probing it every `probe` (the heartbeat also clears it).
    pub async fn wait_for_redis(&self, probe: Duration) {
        while self.is_redis_down() {
            tokio::select! {
                _ = self.redis_back.notified() => {}
                _ = tokio::time::sleep(probe) => {
                    if self.store.ping().await.is_ok() {
                        self.redis_ok();
                    }
                }
            }
        }
    }
}
