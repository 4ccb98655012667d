//! `scripts/chaos`: fault scenarios against the real servers. Each one uses a fresh
//! namespace, starts two `taskfleet-worker` processes, enqueues N `sleep` tasks with
//! `taskfleet enqueue --batch`, injects one fault, waits (with a deadline) and prints
//! exactly one line
//!   verdict <scenario>: enqueued=N completed=C lost=L completed_twice=D
//! and fails if a task was lost or completed twice (or a check of the scenario failed).
//!
//! - `scenarios`: kill9, drain, sigstop (they touch only their own workers)
//! - `restarts`: rabbitmq-restart, redis-restart (they stop the SHARED servers; never
//!   run by the test suite) and the guard that restores a stopped server
//! - `cluster_faults`: rabbitmq-node-kill, redis-failover, on `scripts/cluster`'s servers
//!   (not in `all`); `recovery`: their recovery time
//! - `batch`: the enqueue; `tally`: what completed, and the verdict

mod batch;
mod cluster_faults;
mod recovery;
mod restarts;
mod scenarios;
mod tally;

use crate::process::WorkerProcess;
use crate::scratch::Scratch;
use crate::wait::poll_until;
use crate::{Fleet, amqp, redis_direct, task_type, test_config};
use batch::{Batch, Enqueued, Shape};
use restarts::Restore;
use std::collections::BTreeMap;
use std::time::Duration;
use tally::{Snapshot, Verdict};
use taskfleet_common::{Config, TaskId};

pub const HEARTBEAT: Duration = Duration::from_millis(500);
pub const LEASE: Duration = Duration::from_millis(3000);
pub const DRAIN_GRACE: Duration = Duration::from_millis(3000);

/// Exit codes: as docs/exit-codes.md's (0 done, 1 a failed check, 2 bad usage or a missing
/// tool, 3 a server unreachable).
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Kill9,
    Drain,
    Sigstop,
    RabbitmqRestart,
    RedisRestart,
    RabbitmqNodeKill,
    RedisFailover,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Kill9,
        Scenario::Drain,
        Scenario::Sigstop,
        Scenario::RabbitmqRestart,
        Scenario::RedisRestart,
    ];

    /// On the servers of `scripts/cluster`: run by name, not by `all`.
    pub const CLUSTER: [Scenario; 2] = [Scenario::RabbitmqNodeKill, Scenario::RedisFailover];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Kill9 => "kill9",
            Scenario::Drain => "drain",
            Scenario::Sigstop => "sigstop",
            Scenario::RabbitmqRestart => "rabbitmq-restart",
            Scenario::RedisRestart => "redis-restart",
            Scenario::RabbitmqNodeKill => "rabbitmq-node-kill",
            Scenario::RedisFailover => "redis-failover",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain(Self::CLUSTER)
            .find(|c| c.name() == s)
    }

    /// Runs the scenario; its exit code.
    pub async fn run(self, settings: &Settings) -> i32 {
        let outcome = match self {
            Scenario::Kill9 => scenarios::kill9(settings).await,
            Scenario::Drain => scenarios::drain(settings).await,
            Scenario::Sigstop => scenarios::sigstop(settings).await,
            Scenario::RabbitmqRestart => restarts::rabbitmq_restart(settings).await,
            Scenario::RedisRestart => restarts::redis_restart(settings).await,
            Scenario::RabbitmqNodeKill => cluster_faults::rabbitmq_node_kill(settings).await,
            Scenario::RedisFailover => cluster_faults::redis_failover(settings).await,
        };
        outcome.unwrap_or_else(|code| code)
    }
}

/// What the environment chose (read once, in `main`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// N (`CHAOS_TASKS`, 500).
    pub tasks: usize,
    /// Keep the logs of a passing run too (`CHAOS_KEEP_LOGS=1`).
    pub keep_logs: bool,
}

/// One scenario's namespace, worker processes, batch and findings. An `Err` out of
/// a step is the exit code to end with (its cleanup still runs: the workers are
/// killed and the namespace removed on drop, a stopped server restored).
pub struct Run {
    pub scenario: Scenario,
    pub tasks: usize,
    keep_logs: bool,
    fleet: Fleet,
    dir: Scratch,
    workers: BTreeMap<&'static str, WorkerProcess>,
    batch: Option<Batch>,
    // How many lines the ended batch was given.
    fed_at_end: usize,
    ids: Vec<TaskId>,
    pre: Option<Snapshot>,
    failed: bool,
    pub restore: Restore,
}

impl Run {
    pub async fn setup(scenario: Scenario, settings: &Settings) -> Result<Self, i32> {
        Self::setup_on(scenario, settings, chaos_config()).await
    }

    /// `setup` on the servers (and queue type) of `config`.
    pub async fn setup_on(
        scenario: Scenario,
        settings: &Settings,
        config: Config,
    ) -> Result<Self, i32> {
        let say = |m: &str| eprintln!("chaos[{}]: {m}", scenario.name());
        if !redis_direct::answers(&config.redis_url).await {
            say("Redis does not answer (try scripts/services)");
            return Err(EXIT_UNREACHABLE);
        }
        if !amqp::reachable(&config.amqp_url).await {
            say("RabbitMQ does not answer (try scripts/services)");
            return Err(EXIT_UNREACHABLE);
        }
        let fleet = Fleet::with_config(config).await;
        let dir = Scratch::named(&format!("chaos-{}", scenario.name()));
        say(&format!(
            "namespace {}, logs in {}",
            fleet.config.namespace,
            dir.root().display()
        ));
        Ok(Self {
            scenario,
            tasks: settings.tasks,
            keep_logs: settings.keep_logs,
            fleet,
            dir,
            workers: BTreeMap::new(),
            batch: None,
            fed_at_end: 0,
            ids: Vec::new(),
            pre: None,
            failed: false,
            restore: Restore::default(),
        })
    }

    pub fn say(&self, message: &str) {
        eprintln!("chaos[{}]: {message}", self.scenario.name());
    }

    pub fn config(&self) -> &Config {
        &self.fleet.config
    }

    pub fn names(&self) -> taskfleet_common::Names {
        self.fleet.names()
    }

    /// A check failed: the run ends non-zero whatever the verdict.
    pub fn fail(&mut self, message: &str) {
        self.say(message);
        self.failed = true;
    }

    pub async fn start_worker(&mut self, name: &'static str) {
        let log = self.dir.path(&format!("{name}.log"));
        let args = ["--types", "sleep", "--concurrency", "8"];
        let w = WorkerProcess::start(&self.fleet.config, &args, &log).await;
        self.workers.insert(name, w);
    }

    pub fn worker(&mut self, name: &str) -> &mut WorkerProcess {
        self.workers.get_mut(name).expect("a worker of this run")
    }

    /// Takes a worker out of the run (it is not stopped at the end then).
    pub fn take_worker(&mut self, name: &str) -> WorkerProcess {
        self.workers.remove(name).expect("a worker of this run")
    }

    /// Starts enqueueing the batch in the background.
    pub async fn enqueue(&mut self, shape: Shape) {
        let shape = Shape {
            tasks: self.tasks,
            ..shape
        };
        self.batch = Some(Batch::start(&self.fleet.config, shape).await);
    }

    /// How many lines the producer was given so far.
    pub fn fed(&self) -> usize {
        self.batch.as_ref().map_or(self.fed_at_end, Batch::fed)
    }

    /// Waits for the enqueue to end and reports its failures.
    pub async fn enqueue_done(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        self.fed_at_end = batch.fed();
        let Enqueued {
            ids,
            exit_code,
            failures,
        } = batch.done().await;
        if exit_code != Some(0) {
            self.say(&format!(
                "taskfleet enqueue exited {exit_code:?}; {} enqueue(s) reported as failed (no id printed), e.g.:",
                failures.len()
            ));
            if let Some(first) = failures.first() {
                eprintln!("{first}");
            }
        }
        self.ids = ids;
    }

    pub fn ids(&self) -> &[TaskId] {
        &self.ids
    }

    pub async fn counter(&self) -> i64 {
        tally::counter(&self.fleet.config.redis_url, &self.fleet.names()).await
    }

    pub async fn snapshot(&self) -> Snapshot {
        tally::snapshot(&self.fleet.config.redis_url, &self.fleet.names()).await
    }

    /// The snapshot taken while writes were paused, before Redis lost everything.
    pub fn set_pre_restart(&mut self, pre: Snapshot) {
        self.pre = Some(pre);
    }

    /// Waits until `n` tasks completed (60 s at most).
    pub async fn when_completed_reaches(&self, n: usize) -> Result<(), i32> {
        let reached = poll_until(Duration::from_secs(60), || async {
            (self.counter().await >= n as i64).then_some(())
        })
        .await;
        reached.ok_or_else(|| {
            self.say(&format!("never reached {n} completed"));
            EXIT_FAILED
        })
    }

    async fn all_completed(&self) -> bool {
        let ids: std::collections::BTreeSet<String> =
            self.ids.iter().map(ToString::to_string).collect();
        let now = tally::completed_records(&self.fleet.config.redis_url, &self.fleet.names()).await;
        !ids.is_empty() && tally::completed_ids(&ids, &now, self.pre.as_ref()) == ids.len()
    }

    /// Waits until every enqueued task completed; says so if they did not.
    pub async fn wait_completed(&self, deadline: Duration) {
        let done = poll_until(deadline, || async {
            self.all_completed().await.then_some(())
        });
        if done.await.is_none() {
            self.say(&format!(
                "not all enqueued tasks completed within {deadline:?}: {:?}",
                self.fleet.store.type_stats(&task_type("sleep")).await
            ));
        }
    }

    pub async fn check_no_lease_left(&mut self) {
        match self.fleet.store.running_ids().await {
            Ok(ids) if ids.is_empty() => {}
            Ok(ids) => self.fail(&format!("{} lease(s) left in {{ns}}:running", ids.len())),
            Err(e) => self.fail(&format!("cannot read the leases: {e}")),
        }
    }

    pub fn check_alive(&mut self, names: &[&str]) {
        for name in names {
            if self.worker(name).try_exit().is_some() {
                let log = self.dir.path(&format!("{name}.log"));
                let m = format!("worker {name} exited unexpectedly (see {})", log.display());
                self.fail(&m);
            }
        }
    }

    /// Whether a worker's log holds `needle`.
    pub async fn logged(&self, name: &str, needle: &str) -> bool {
        let log = self.dir.path(&format!("{name}.log"));
        crate::files::read_text(log)
            .await
            .is_some_and(|t| t.contains(needle))
    }

    /// Waits up to `deadline` for a worker's log to hold `needle`.
    pub async fn wait_logged(&self, name: &str, needle: &str, deadline: Duration) -> bool {
        poll_until(deadline, || async {
            self.logged(name, needle).await.then_some(())
        })
        .await
        .is_some()
    }

    /// Consumers on the `sleep` queue now.
    pub async fn consumers(&self) -> Option<u32> {
        let queue = self.fleet.names().queue(&task_type("sleep"));
        amqp::queue_depth(&self.fleet.config.amqp_url, &queue)
            .await
            .map(|(_, c)| c)
    }

    /// How many enqueued ids come from lines read after the first `line` lines: the
    /// producer published again after the fault if this is not 0.
    pub async fn enqueued_after_line(&self, line: usize) -> usize {
        let mut after = 0;
        for id in &self.ids {
            let n = self
                .fleet
                .store
                .get(id)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.get("payload").map(str::to_owned))
                .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
                .and_then(|p| p["n"].as_u64());
            if n.is_some_and(|n| n as usize > line) {
                after += 1;
            }
        }
        after
    }

    /// Prints the verdict, stops the workers, removes the namespace (and the logs of a
    /// passing run); the exit code.
    pub async fn finish(mut self) -> Result<i32, i32> {
        let post = self.snapshot().await;
        let verdict = Verdict::of(&self.ids, &post, self.pre.as_ref());
        println!("{}", verdict.line(self.scenario.name()));
        if verdict.completed_twice < 0 {
            self.say(&format!(
                "the completed counter is BELOW the completed records ({})",
                verdict.completed_twice
            ));
        }
        let ok = verdict.ok() && !self.failed;
        self.restore.restore(self.scenario).await;
        for w in self.workers.values() {
            w.signal(nix::sys::signal::Signal::SIGCONT);
            w.signal(nix::sys::signal::Signal::SIGTERM);
        }
        for w in self.workers.values_mut() {
            if w.wait_exit(Duration::from_secs(20)).await.is_none() {
                w.kill().await;
            }
        }
        self.fleet.teardown().await;
        if ok && !self.keep_logs {
            drop(self.dir);
        } else {
            eprintln!(
                "chaos[{}]: logs kept in {}",
                self.scenario.name(),
                self.dir.keep().display()
            );
        }
        Ok(if ok { 0 } else { EXIT_FAILED })
    }
}

/// A fresh `chaos…` namespace on the servers of `TASKFLEET_AMQP_URL` and
/// `TASKFLEET_REDIS_URL`, with the scenario's heartbeat, lease and drain grace.
pub(super) fn chaos_config() -> Config {
    let mut c = test_config();
    let ns = format!("chaos{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    c.namespace = ns.parse().expect("valid namespace");
    c.worker.heartbeat_interval = HEARTBEAT;
    c.worker.lease = LEASE;
    c.worker.drain_grace = DRAIN_GRACE;
    c
}
