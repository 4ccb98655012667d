//! Issue 16: a fleet on real clusters (`scripts/cluster up`): three RabbitMQ nodes with
//! quorum queues. Run with `TASKFLEET_CLUSTER_TESTS=1 scripts/test` (or
//! `cargo test -p taskfleet-tests --test cluster -- --ignored` once the cluster is up).

use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::config::QueueType;
use taskfleet_tests::cluster::{self, StoppedNode};
use taskfleet_tests::{Fleet, test_config};

async fn cluster_fleet() -> Fleet {
    cluster::require().await;
    let mut config = test_config();
    config.amqp_url = cluster::amqp_url();
    config.queue_type = QueueType::Quorum;
    Fleet::with_config(config).await
}

async fn enqueue_and_complete(fleet: &Fleet, n: usize, deadline: Duration) {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(fleet.enqueue("echo", &format!(r#"{{"i":{i}}}"#)).await);
    }
    for id in &ids {
        fleet
            .wait_for_state(id, TaskState::Completed, deadline)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster up; run with TASKFLEET_CLUSTER_TESTS=1 scripts/test"]
async fn worker_keeps_consuming_when_its_node_stops() {
    let mut fleet = cluster_fleet().await;
    fleet.start_worker().await;
    enqueue_and_complete(&fleet, 10, Duration::from_secs(20)).await;

    // Nodes are tried in order: the worker and the producer are on the first one.
    let listed = cluster::ctl(
        &cluster::node_name(0),
        &["list_connections", "client_properties"],
    )
    .await
    .expect("list_connections");
    assert!(
        listed.contains("taskfleet-worker"),
        "the worker connected to the first node; connections there: {listed}"
    );
    let stopped = StoppedNode::stop(0).await;

    // The quorum queue keeps its majority on nodes 2 and 3; worker and producer
    // reconnect to them and the tasks enqueued now complete.
    enqueue_and_complete(&fleet, 10, Duration::from_secs(60)).await;
    let stats = fleet.stats("echo").await;
    assert_eq!(stats.completed, 20, "every task completed once: {stats:?}");
    drop(stopped);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster up; run with TASKFLEET_CLUSTER_TESTS=1 scripts/test"]
async fn quorum_queues_carry_a_delivery_limit() {
    let mut fleet = cluster_fleet().await;
    fleet.start_worker().await;
    let queue = fleet.names().queue(&taskfleet_tests::task_type("echo"));
    let listed = cluster::ctl(
        &cluster::node_name(0),
        &["list_queues", "name", "type", "arguments"],
    )
    .await
    .expect("list_queues");
    let row = listed
        .lines()
        .find(|l| l.starts_with(queue.as_str()))
        .unwrap_or_else(|| panic!("{queue} is declared on the cluster: {listed}"));
    assert!(row.contains("quorum"), "{row}");
    assert!(row.contains("x-delivery-limit"), "{row}");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster up; run with TASKFLEET_CLUSTER_TESTS=1 scripts/test"]
async fn fleet_follows_a_sentinel_failover() {
    cluster::require().await;
    let mut config = test_config();
    config.redis_url = cluster::sentinel_url();
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    enqueue_and_complete(&fleet, 10, Duration::from_secs(20)).await;

    let before = cluster::sentinel_primary_port().await;
    cluster::sentinel_failover().await;
    let after = taskfleet_tests::eventually(
        Duration::from_secs(30),
        "Sentinel to promote the replica",
        || async {
            let now = cluster::sentinel_primary_port().await;
            (now != before).then_some(now)
        },
    )
    .await;

    // Until Sentinel demotes it, the old primary still takes writes (that the
    // promotion will lose): wait for the demotion, so the tasks below can only
    // complete if the fleet moved to the new primary.
    taskfleet_tests::eventually(
        Duration::from_secs(30),
        "Sentinel to demote the old primary",
        || async { (role(before).await == "slave").then_some(()) },
    )
    .await;
    assert_eq!(role(after).await, "master");

    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(fleet.enqueue("echo", &format!(r#"{{"late":{i}}}"#)).await);
    }
    for id in &ids {
        fleet
            .wait_for_state(id, TaskState::Completed, Duration::from_secs(60))
            .await;
    }
    let stats = fleet.stats("echo").await;
    assert_eq!(
        (stats.completed, stats.enqueued),
        (20, 20),
        "every task counted once across the failover: {stats:?}"
    );
    let mut on_new = redis::Client::open(format!("redis://127.0.0.1:{after}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("the new primary answers");
    let state: Option<String> = redis::cmd("HGET")
        .arg(fleet.names().task_key(&ids[9]))
        .arg("state")
        .query_async(&mut on_new)
        .await
        .expect("HGET");
    assert_eq!(
        state.as_deref(),
        Some("completed"),
        "written on the new primary"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs scripts/cluster up; run with TASKFLEET_CLUSTER_TESTS=1 scripts/test"]
async fn unknown_sentinel_master_is_a_clear_error() {
    cluster::require().await;
    let mut config = test_config();
    config.redis_url = "redis+sentinel://127.0.0.1:26381,127.0.0.1:26382/nosuch".into();
    let (code, _, stderr) = taskfleet_tests::process::cli(&config, &["stats"], None).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("knows no master named \"nosuch\"") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// `ROLE` of the Redis on `port`: master or slave.
async fn role(port: u16) -> String {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return String::new();
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return String::new();
    };
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    match role.first() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}
