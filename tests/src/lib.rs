//! Test harness for the end-to-end tests (and `taskfleet-bench`, `taskfleet-chaos`):
//! every test gets a fresh namespace on the real RabbitMQ and Redis, starts the
//! workers it needs (in-process or as real processes), waits by polling with a
//! deadline, and removes what it declared.
//!
//! # Layout
//! - this file: `Fleet` (a namespace, its producer, store and in-process workers)
//! - `queues`: waits on a fleet's queues (consumers, settled deliveries)
//! - `amqp`: a plain AMQP client's view (raw publish, depths, the dead queue)
//! - `rabbitmqctl`: what only `rabbitmqctl` tells (unacked counts, queue names)
//! - `process`: the real binaries (`taskfleet` CLI runs, `taskfleet-worker` processes)
//! - `procfs`: other processes from /proc (alive, peak memory)
//! - `logs`: where worker processes log; `scratch`: a temporary directory per test
//! - `silent`: a listener that accepts and never answers (timeouts)
//! - `private_redis`: a `redis-server` of a test's own (ACL users, restarts, TLS)
//! - `http`: the HTTP API of a fleet on a free port, and a minimal client
//! - `tls`: a private CA, a TLS Redis and a TLS terminator in front of RabbitMQ
//! - `redis_direct`: a plain Redis connection (PING, scans)
//! - `files`: file access off the runtime threads
//! - `webhook`: a receiver of alert POSTs and the signature check
//! - `browser`: headless Chromium over the DevTools protocol (dashboard tests)
//! - `wait`: polling with a deadline; `record`: reading a task's record
//! - `cancel`, `retries`: helpers of the cancellation and retry tests
//! - `runs`: handlers that count their runs (exactly once, by what ran)
//! - `cluster`: the servers of `scripts/cluster` (three RabbitMQ nodes, Sentinel)
//! - `chaos`: the scenarios of `scripts/chaos`; `bench`: probes of `scripts/bench`

pub mod amqp;
pub mod baseline;
pub mod bench;
pub mod bench_report;
pub mod bench_steady;
pub mod browser;
pub mod cancel;
pub mod chaos;
pub mod cluster;
pub mod files;
pub mod http;
pub mod logs;
pub mod private_rabbit;
pub mod private_redis;
pub mod process;
pub mod procfs;
pub mod queues;
pub mod rabbitmqctl;
pub mod record;
pub mod redis_direct;
pub mod retries;
pub mod runs;
pub mod scratch;
pub mod silent;
pub mod tls;
pub mod wait;
pub mod webhook;

pub use wait::{eventually, poll_until};

use std::time::Duration;
use taskfleet_common::store::TaskRecord;
use taskfleet_common::{Config, Names, StateStore, TaskId, TaskState, TaskType};
use taskfleet_producer::{EnqueueRequest, Producer};
use taskfleet_worker::{Handler, Worker};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn amqp_url() -> String {
    std::env::var("TASKFLEET_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("TASKFLEET_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A port of 127.0.0.1 nothing listens on right now (the OS picks it; released at
/// once, for a server the test starts).
pub async fn free_port() -> u16 {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A configuration for a fresh namespace, with fast heartbeats and short backoffs so
/// tests finish quickly.
pub fn test_config() -> Config {
    let mut c = Config::default();
    let ns = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    c.namespace = ns.parse().expect("valid namespace");
    c.amqp_url = amqp_url();
    c.redis_url = redis_url();
    c.worker.heartbeat_interval = Duration::from_millis(300);
    c.worker.lease = Duration::from_secs(2);
    c.worker.cancel_grace = Duration::from_secs(2);
    c.worker.drain_grace = Duration::from_secs(5);
    c.worker.concurrency = 8;
    c.defaults.backoff.initial = Duration::from_millis(100);
    c.defaults.backoff.max = Duration::from_secs(2);
    c
}

pub fn task_type(name: &str) -> TaskType {
    name.parse().expect("valid type")
}

/// One test's fleet: its namespace, a producer, a state store, and the workers it
/// started. Call `teardown` at the end (it also runs, best effort, on drop).
pub struct Fleet {
    pub config: Config,
    pub producer: Producer,
    pub store: StateStore,
    workers: Vec<InProcessWorker>,
    torn_down: bool,
}

pub struct InProcessWorker {
    shutdown: CancellationToken,
    abort: CancellationToken,
    handle: JoinHandle<Result<(), taskfleet_worker::WorkerError>>,
}

impl InProcessWorker {
    /// SIGTERM-like: drain and wait for it to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.handle).await;
    }

    /// Like `kill -9` as far as this process can: no drain, nothing committed.
    pub fn kill(self) {
        self.abort.cancel();
        self.handle.abort();
    }
}

impl Fleet {
    pub async fn new() -> Self {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: Config) -> Self {
        let producer = Producer::connect(config.clone())
            .await
            .expect("producer connects");
        let store = producer.store().clone();
        Self {
            config,
            producer,
            store,
            workers: Vec::new(),
            torn_down: false,
        }
    }

    pub fn names(&self) -> Names {
        Names::new(self.config.namespace.clone())
    }

    /// Starts an in-process worker built from this fleet's configuration.
    pub async fn start_worker(&mut self) {
        let w = Worker::new(self.config.clone()).expect("worker builds");
        self.start_worker_with(w).await;
    }

    pub async fn start_worker_with(&mut self, worker: Worker) {
        let w = spawn_worker(worker);
        self.workers.push(w);
        self.wait_for_consumers("echo", self.workers.len() as u32)
            .await;
    }

    pub fn take_worker(&mut self, i: usize) -> InProcessWorker {
        self.workers.remove(i)
    }

    pub async fn enqueue(&self, task_type: &str, payload: &str) -> TaskId {
        let req = EnqueueRequest::new(task_type, payload).expect("valid request");
        self.producer.enqueue(&req).await.expect("enqueue").id
    }

    pub async fn record(&self, id: &TaskId) -> Option<TaskRecord> {
        self.store.get(id).await.expect("redis answers")
    }

    /// Waits until the task is in `state` and returns its record.
    pub async fn wait_for_state(
        &self,
        id: &TaskId,
        state: TaskState,
        deadline: Duration,
    ) -> TaskRecord {
        eventually(deadline, &format!("task {id} to be {state}"), || async {
            self.record(id).await.filter(|r| r.state() == Some(state))
        })
        .await
    }

    pub async fn stats(&self, task_type: &str) -> taskfleet_common::store::TypeStats {
        let t = crate::task_type(task_type);
        self.store.type_stats(&t).await.expect("redis answers")
    }

    /// Stops the workers, deletes the namespace's queues (delay queues too),
    /// exchanges and Redis keys, and the logs of its worker processes.
    pub async fn teardown(mut self) {
        for w in self.workers.drain(..) {
            w.stop().await;
        }
        self.producer.close().await;
        cleanup(&self.config).await;
        logs::remove_logs(&self.config).await;
        self.torn_down = true;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in self.workers.drain(..) {
            w.kill();
        }
        if !self.torn_down {
            // A failed test still removes what it declared, on a runtime of its own.
            let config = self.config.clone();
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Runtime::new() {
                    rt.block_on(cleanup(&config));
                }
            })
            .join();
        }
    }
}

/// A worker of the fleet's configuration whose `task_type` runs `handler`.
pub fn worker_with(fleet: &Fleet, task_type: &str, handler: impl Handler) -> Worker {
    Worker::new(fleet.config.clone())
        .expect("worker builds")
        .handler(task_type, handler)
        .expect("valid type")
}

pub fn spawn_worker(worker: Worker) -> InProcessWorker {
    let shutdown = CancellationToken::new();
    let abort = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone(), abort.clone()));
    InProcessWorker {
        shutdown,
        abort,
        handle,
    }
}

/// Removes everything a namespace declared: queues of every type seen, the dead
/// queue, the exchanges and all Redis keys, plus every other queue the local broker
/// lists under the namespace's prefix (via `rabbitmqctl`).
pub async fn cleanup(config: &Config) {
    let names = Names::new(config.namespace.clone());
    if let Ok(store) = StateStore::connect(
        &config.redis_url,
        names.clone(),
        config.retention,
        Duration::from_secs(3),
        config.tls_ca_file.as_deref(),
    )
    .await
    {
        let types = store.types().await.unwrap_or_default();
        // Workers declare the queues of all their types, used or not, and delay queues
        // have computed names: list what the broker has under the namespace's prefix.
        let prefix = format!("{}.", names.namespace());
        let declared = rabbitmqctl::queues_with_prefix(&config.amqp_url, &prefix).await;
        amqp::delete_namespace(&config.amqp_url, &names, &types).await;
        amqp::delete_queues(&config.amqp_url, &declared).await;
        let _ = store.purge_namespace().await;
    }
}
