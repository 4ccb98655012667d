//! `Worker`: register handlers, then `run(shutdown)` until the caller cancels the
//! token. The drain on shutdown lets in-flight tasks finish within the grace period,
//! hands the rest back as `pending` (no attempt used) and deregisters.

use crate::alerts::AlertSink;
use crate::builtin::{Echo, Flaky, Sleep};
use crate::consumer;
use crate::declare;
use crate::exec::Exec;
use crate::handler::{DynHandler, Handler};
use crate::inflight::StopReason;
use crate::liveness;
use crate::scheduler;
use crate::shared::Shared;
use crate::task_logs::LogSink;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::store::{Registration, StoreError};
use taskfleet_common::{Config, Names, StateStore, TaskType, WorkerId};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Fix the configuration or the registration and start again.
    #[error("{0}")]
    Config(String),
    /// Redis could not be reached at start.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Worker {
    config: Config,
    handlers: HashMap<TaskType, Arc<dyn DynHandler>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("types", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Worker {
    /// A worker with the built-in types (`echo`, `sleep`, `flaky`) and the `exec`
    /// types of `config`; add Rust handlers with [`Worker::handler`].
    pub fn new(config: Config) -> Result<Self, WorkerError> {
        let mut w = Self {
            config,
            handlers: HashMap::new(),
        };
        w = w
            .handler("echo", Echo)?
            .handler("sleep", Sleep)?
            .handler("flaky", Flaky)?;
        let exec_types: Vec<(String, Vec<String>)> = w
            .config
            .types
            .iter()
            .filter_map(|(name, t)| t.exec.clone().map(|argv| (name.clone(), argv)))
            .collect();
        let output_limit = w.config.worker.exec_output_limit;
        let grace = w.config.worker.cancel_grace;
        for (name, argv) in exec_types {
            w = w.handler(&name, Exec::new(argv, output_limit, grace))?;
        }
        Ok(w)
    }

    /// Registers (or replaces) the handler of a task type.
    pub fn handler<H: Handler>(mut self, task_type: &str, handler: H) -> Result<Self, WorkerError> {
        let t: TaskType = task_type
            .parse()
            .map_err(|e| WorkerError::Config(format!("handler: {e}")))?;
        self.handlers.insert(t, Arc::new(handler));
        Ok(self)
    }

    /// The types this worker will consume: `worker.types` or every registered one.
    pub fn types(&self) -> Result<Vec<TaskType>, WorkerError> {
        let mut types: Vec<TaskType> = if self.config.worker.types.is_empty() {
            self.handlers.keys().cloned().collect()
        } else {
            let mut v = Vec::new();
            for name in &self.config.worker.types {
                let t: TaskType = name
                    .parse()
                    .map_err(|e| WorkerError::Config(format!("worker.types: {e}")))?;
                if !self.handlers.contains_key(&t) {
                    return Err(WorkerError::Config(format!(
                        "worker.types: no handler for {t:?}; built-in types are echo, sleep, flaky, others need [types.{t}] exec = [...] or a Rust handler"
                    )));
                }
                v.push(t);
            }
            v
        };
        types.sort();
        types.dedup();
        Ok(types)
    }

    /// Runs until `shutdown` is cancelled, then drains. A second cancellation of
    /// `abort` stops waiting for the drain.
    pub async fn run(
        self,
        shutdown: CancellationToken,
        abort: CancellationToken,
    ) -> Result<(), WorkerError> {
        let types = self.types()?;
        let schedules = self
            .config
            .parsed_schedules()
            .map_err(|e| WorkerError::Config(e.to_string()))?;
        for s in &schedules {
            if !self.handlers.contains_key(&s.task_type) {
                tracing::warn!(schedule = %s.name, r#type = %s.task_type, "this worker has no handler for the schedule's type; its tasks wait for a worker that has");
            }
        }
        let c = &self.config;
        let names = Names::new(c.namespace.clone());
        let store = StateStore::connect(
            &c.redis_url,
            names,
            c.retention,
            c.network_timeout,
            c.tls_ca_file.as_deref(),
        )
        .await?;
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".into());
        let pid = std::process::id();
        let worker_id = WorkerId::generate(&host, pid);
        let registration = Registration {
            host,
            pid,
            types: types.iter().map(ToString::to_string).collect(),
            concurrency: c.worker.concurrency,
        };
        // Stopped after the drain, so the last runs' lines are flushed.
        let logs_stop = CancellationToken::new();
        let (logs, log_writer) = LogSink::start(store.clone(), logs_stop.clone());
        let mut shared = Shared::new(
            self.config,
            store,
            worker_id,
            registration,
            self.handlers,
            types,
        );
        shared.logs = logs;
        shared.alerts = AlertSink::start(
            &shared.config.alerts,
            shared.config.network_timeout,
            shared.config.namespace.to_string(),
            shared.store.clone(),
            logs_stop.clone(),
        );
        let shared = Arc::new(shared);
        liveness::beat(&shared).await;
        let w = &shared.config.worker;
        tracing::info!(
            park_after = ?w.park_after,
            check_back = ?w.park_check_back(),
            "runs longer than park_after park their delivery (keep it under RabbitMQ's consumer_timeout, 30 min by default)"
        );
        declare::declare_all(&shared).await;

        let background = CancellationToken::new();
        let hb = tokio::spawn(liveness::heartbeat_loop(shared.clone(), background.clone()));
        let rp = tokio::spawn(liveness::reaper_loop(shared.clone(), background.clone()));
        let cl = tokio::spawn(liveness::cancel_listener(
            shared.clone(),
            background.clone(),
        ));
        // A draining worker leads no schedule: another takes over within a lease.
        let sc = tokio::spawn(scheduler::scheduler_loop(
            shared.clone(),
            schedules,
            shutdown.clone(),
        ));

        let mut tasks = JoinSet::new();
        let link = consumer::run(shared.clone(), shutdown.clone(), &mut tasks).await;
        shared.set_draining();
        liveness::beat(&shared).await;
        drain(&shared, &mut tasks, &abort).await;
        if let Some(link) = link {
            link.close().await;
        }
        background.cancel();
        logs_stop.cancel();
        let _ = tokio::join!(hb, rp, cl, sc, log_writer);
        declare::forget_all(&shared).await;
        if let Err(e) = shared.store.deregister(&shared.worker_id).await {
            tracing::warn!(error = %e, "could not deregister");
        }
        tracing::info!(worker = %shared.worker_id, "stopped");
        Ok(())
    }
}

/// Lets in-flight tasks finish within `drain_grace`; then stops the rest, which commit
/// themselves as interrupted (`pending`) and requeue their deliveries.
async fn drain(shared: &Shared, tasks: &mut JoinSet<()>, abort: &CancellationToken) {
    let grace = shared.config.worker.drain_grace;
    if !tasks.is_empty() {
        tracing::info!(inflight = shared.inflight.len(), ?grace, "draining");
    }
    let all_done = async { while tasks.join_next().await.is_some() {} };
    tokio::select! {
        _ = tokio::time::timeout(grace, all_done) => {}
        _ = abort.cancelled() => {}
    }
    if tasks.is_empty() {
        return;
    }
    tracing::warn!(
        inflight = shared.inflight.len(),
        "drain grace over; handing the remaining tasks back"
    );
    shared.inflight.stop_all(StopReason::Drained);
    // Each stopped task gets the cancel grace to return, then commits and requeues.
    let wait = shared.config.worker.cancel_grace
        + shared.config.network_timeout * 2
        + Duration::from_secs(1);
    let rest = async { while tasks.join_next().await.is_some() {} };
    tokio::select! {
        _ = tokio::time::timeout(wait, rest) => {}
        _ = abort.cancelled() => {}
    }
    tasks.abort_all();
}
