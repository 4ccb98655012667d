//! The servers `scripts/cluster up` starts beside the default ones: three clustered
//! RabbitMQ nodes and a Sentinel-watched Redis pair. Tests that need them are
//! `#[ignore]`d and run by `TASKFLEET_CLUSTER_TESTS=1 scripts/test`.

use std::time::Duration;
use tokio::process::Command;

pub const NODES: [u16; 3] = [5681, 5682, 5683];

pub fn node_name(i: usize) -> String {
    format!("tfc{}@localhost", i + 1)
}

/// `amqp_url` naming the three nodes, in order.
pub fn amqp_url() -> String {
    NODES
        .iter()
        .map(|p| format!("amqp://guest:guest@127.0.0.1:{p}/%2f"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn sentinel_url() -> String {
    "redis+sentinel://127.0.0.1:26381,127.0.0.1:26382,127.0.0.1:26383/taskfleet".into()
}

/// `rabbitmqctl -n NODE ARGS` within a minute; stdout or the error.
pub async fn ctl(node: &str, args: &[&str]) -> Result<String, String> {
    let run = Command::new("rabbitmqctl")
        .args(["-q", "-n", node])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .map_err(|_| format!("rabbitmqctl -n {node} {args:?} timed out"))?
        .map_err(|e| format!("rabbitmqctl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Panics with what to do when `scripts/cluster up` has not run.
pub async fn require() {
    for (i, _) in NODES.iter().enumerate() {
        if let Err(e) = ctl(&node_name(i), &["status"]).await {
            panic!(
                "RabbitMQ node {} is not up ({e}): run scripts/cluster up first",
                node_name(i)
            );
        }
    }
}

/// Stops the RabbitMQ application of node `i` (the Erlang node stays, so it can be
/// started again) and starts it again when dropped, even if the test failed.
pub struct StoppedNode(usize);

impl StoppedNode {
    pub async fn stop(i: usize) -> Self {
        ctl(&node_name(i), &["stop_app"])
            .await
            .expect("stop_app on a cluster node");
        Self(i)
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        let node = node_name(self.0);
        let _ = std::thread::spawn(move || {
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["-q", "-n", &node, "start_app"])
                .output();
        })
        .join();
    }
}

/// The port of the primary the first Sentinel names.
pub async fn sentinel_primary_port() -> u16 {
    let out = Command::new("redis-cli")
        .args([
            "-p",
            "26381",
            "sentinel",
            "get-master-addr-by-name",
            "taskfleet",
        ])
        .output()
        .await
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|p| p.trim().parse().ok())
        .expect("the Sentinel names a primary")
}

/// Asks the Sentinels for a failover (graceful: the replica catches up first).
pub async fn sentinel_failover() {
    let out = Command::new("redis-cli")
        .args(["-p", "26381", "sentinel", "failover", "taskfleet"])
        .output()
        .await
        .expect("redis-cli runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.trim() == "OK", "sentinel failover: {said}");
}
