//! What every part of a running worker shares: configuration, the state store, the
//! handlers, the in-flight registry, Redis's health and the live connection.
//! Generic over the store so the delivery path runs against a fake in unit tests.

use crate::handler::DynHandler;
use crate::health::RedisHealth;
use crate::inflight::Inflight;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use taskfleet_common::amqp::Link;
use taskfleet_common::amqp::Topology;
use taskfleet_common::store::{Registration, WorkerStatus};
use taskfleet_common::{Config, Names, StateStore, TaskType, WorkerId};

pub(crate) struct Shared<S = StateStore> {
    pub config: Config,
    pub names: Names,
    pub topology: Topology,
    pub store: S,
    pub worker_id: WorkerId,
    pub registration: Registration,
    pub handlers: HashMap<TaskType, Arc<dyn DynHandler>>,
    pub inflight: Inflight,
    /// The types this worker consumes, in a stable order.
    pub types: Vec<TaskType>,
    pub health: RedisHealth,
    pub link: CurrentLink,
    /// Where runs' log lines go (`task_logs`); off unless the worker starts a writer.
    pub logs: crate::task_logs::LogSink,
    /// Where final failures and dead letters are announced (`alerts`); off by default.
    pub alerts: crate::alerts::AlertSink,
    draining: AtomicBool,
}

impl<S> Shared<S> {
    pub fn new(
        config: Config,
        store: S,
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
            health: RedisHealth::default(),
            link: CurrentLink::default(),
            logs: crate::task_logs::LogSink::off(),
            alerts: crate::alerts::AlertSink::off(),
            draining: AtomicBool::new(false),
        }
    }

    pub fn status(&self) -> WorkerStatus {
        if self.draining.load(Ordering::Relaxed) {
            WorkerStatus::Draining
        } else {
            WorkerStatus::Running
        }
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

impl Shared<StateStore> {
    /// Waits until Redis answers, probing it every `probe`.
    pub async fn wait_for_redis(&self, probe: Duration) {
        self.health.wait_until_up(probe, || self.store.ping()).await
    }
}

/// The consumer's live connection, for work that outlived its own (a dead copy).
#[derive(Clone, Default)]
pub(crate) struct CurrentLink(Arc<Mutex<Option<Arc<Link>>>>);

impl CurrentLink {
    pub fn set(&self, link: Arc<Link>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
    }

    /// The current connection once it is up, waiting for a reconnect at most `wait`.
    pub async fn live(&self, wait: Duration) -> Option<Arc<Link>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let link = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(l) = link.filter(|l| l.is_connected()) {
                return Some(l);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
