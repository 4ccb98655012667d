//! The scenarios on the servers of `scripts/cluster` (never the default ones):
//! `rabbitmq-node-kill` (kill -9 of the node leading the task queue, under load, then
//! restart it) and `redis-failover` (kill -9 of the Redis primary under load; Sentinel
//! promotes the replica). Each prints the usual verdict and the recovery time.

use super::batch::Shape;
use super::recovery::Sampler;
use super::{EXIT_FAILED, EXIT_USAGE, Run, Scenario, Settings};
use crate::cluster;
use crate::wait::poll_until;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use taskfleet_common::config::QueueType;

fn cluster_dir() -> PathBuf {
    std::env::var_os("TASKFLEET_CLUSTER_DIR")
        .map_or_else(|| PathBuf::from("/tmp/taskfleet-cluster"), PathBuf::from)
}

async fn pid_in(file: PathBuf) -> Option<i32> {
    let text = tokio::fs::read_to_string(&file).await.ok()?;
    text.trim().parse().ok()
}

fn kill_9(pid: i32) -> bool {
    use nix::sys::signal::{Signal, kill};
    kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_ok()
}

/// `scripts/cluster up`: starts again whatever a scenario killed.
async fn cluster_up() -> bool {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster");
    let run = tokio::process::Command::new(script).arg("up").output();
    matches!(
        tokio::time::timeout(Duration::from_secs(240), run).await,
        Ok(Ok(out)) if out.status.success()
    )
}

async fn setup(scenario: Scenario, settings: &Settings) -> Result<Run, i32> {
    if cluster::ctl(&cluster::node_name(0), &["status"])
        .await
        .is_err()
    {
        eprintln!(
            "chaos[{}]: the cluster is not up: run scripts/cluster up first",
            scenario.name()
        );
        return Err(EXIT_USAGE);
    }
    let mut config = super::chaos_config();
    config.amqp_url = cluster::amqp_url();
    config.redis_url = cluster::sentinel_url();
    config.queue_type = QueueType::Quorum;
    Run::setup_on(scenario, settings, config).await
}

fn report(run: &mut Run, sampler: &Sampler, fault: Instant) {
    match sampler.recovery(fault) {
        Some(t) => run.say(&format!(
            "recovery: throughput back to half its level {:.1} s after the fault",
            t.as_secs_f64()
        )),
        None => run.fail("FAILED: throughput never came back to half its level"),
    }
}

/// kill -9 of the RabbitMQ node that leads the `sleep` queue, then a restart.
pub async fn rabbitmq_node_kill(settings: &Settings) -> Result<i32, i32> {
    let mut run = setup(Scenario::RabbitmqNodeKill, settings).await?;
    run.start_worker("w1").await;
    run.start_worker("w2").await;
    let sampler = Sampler::start(run.config().redis_url.clone(), run.names());
    // All at once: the throughput before and after the fault is the fleet's own.
    run.enqueue(Shape::default()).await;
    run.when_completed_reaches(run.tasks * 2 / 5).await?;
    let queue = run.names().queue(&crate::task_type("sleep"));
    let listed = cluster::ctl(&cluster::node_name(0), &["list_queues", "name", "leader"])
        .await
        .unwrap_or_default();
    let Some(leader) = listed
        .lines()
        .find_map(|l| l.strip_prefix(queue.as_str())?.split_whitespace().next())
        .map(str::to_owned)
    else {
        run.say(&format!("no leader listed for {queue}: {listed}"));
        return Err(EXIT_FAILED);
    };
    let Some(i) = (0..cluster::NODES.len()).find(|&i| cluster::node_name(i) == leader) else {
        run.say(&format!("{leader} is not a node of scripts/cluster"));
        return Err(EXIT_FAILED);
    };
    let Some(pid) = pid_in(cluster_dir().join(format!("rabbit{}/pid", i + 1))).await else {
        run.say("no pid file for the leader node");
        return Err(EXIT_FAILED);
    };
    run.say(&format!(
        "kill -9 {leader} (pid {pid}, leader of {queue}) at {} completed",
        run.counter().await
    ));
    let fault = Instant::now();
    if !kill_9(pid) {
        run.say("kill -9 failed");
        return Err(EXIT_FAILED);
    }
    let back = poll_until(Duration::from_secs(60), || async {
        sampler.recovery(fault).map(|_| ())
    });
    back.await;
    report(&mut run, &sampler, fault);
    run.say(&format!("restarting {leader} (scripts/cluster up)"));
    if !cluster_up().await {
        run.fail("FAILED: scripts/cluster up could not restart the node");
    }
    run.enqueue_done().await;
    run.wait_completed(Duration::from_secs(180)).await;
    run.check_no_lease_left().await;
    run.check_alive(&["w1", "w2"]);
    run.finish().await
}

/// kill -9 of the Redis primary; Sentinel promotes the replica and the fleet follows.
pub async fn redis_failover(settings: &Settings) -> Result<i32, i32> {
    let mut run = setup(Scenario::RedisFailover, settings).await?;
    run.start_worker("w1").await;
    run.start_worker("w2").await;
    let sampler = Sampler::start(run.config().redis_url.clone(), run.names());
    // All at once: the throughput before and after the fault is the fleet's own.
    run.enqueue(Shape::default()).await;
    run.when_completed_reaches(run.tasks * 2 / 5).await?;
    let port = cluster::sentinel_primary_port().await;
    let Some(pid) = pid_in(cluster_dir().join(format!("redis{port}/pid"))).await else {
        run.say(&format!("no pid file for the primary on {port}"));
        return Err(EXIT_FAILED);
    };
    run.say(&format!(
        "kill -9 the Redis primary on {port} (pid {pid}) at {} completed",
        run.counter().await
    ));
    let fault = Instant::now();
    if !kill_9(pid) {
        run.say("kill -9 failed");
        return Err(EXIT_FAILED);
    }
    let promoted = poll_until(Duration::from_secs(60), || async {
        (cluster::sentinel_primary_port().await != port).then_some(())
    });
    if promoted.await.is_some() {
        run.say(&format!(
            "Sentinel promoted the replica after {:.1} s",
            fault.elapsed().as_secs_f64()
        ));
    } else {
        run.fail("FAILED: Sentinel promoted no replica within 60 s");
    }
    let back = poll_until(Duration::from_secs(60), || async {
        sampler.recovery(fault).map(|_| ())
    });
    back.await;
    report(&mut run, &sampler, fault);
    run.say(&format!(
        "restarting the old primary on {port} (scripts/cluster up)"
    ));
    if !cluster_up().await {
        run.fail("FAILED: scripts/cluster up could not restart it");
    }
    run.enqueue_done().await;
    run.wait_completed(Duration::from_secs(180)).await;
    run.check_no_lease_left().await;
    run.check_alive(&["w1", "w2"]);
    run.finish().await
}
