//! Issue 16: `amqp_url` listing several nodes, on the default servers: a node that
//! is down is skipped, and when every node is down the error names each of them
//! (passwords redacted) with exit 3, within seconds.

use std::time::{Duration, Instant};
use taskfleet_common::TaskState;
use taskfleet_tests::process::cli;
use taskfleet_tests::{Fleet, amqp_url, free_port, test_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down_is_skipped() {
    let mut config = test_config();
    let dead = free_port().await;
    config.amqp_url = format!("amqp://guest:guest@127.0.0.1:{dead}/%2f,{}", amqp_url());
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let id = fleet.enqueue("echo", r#"{"x":1}"#).await;
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(20))
        .await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_down_is_exit_3_naming_each() {
    let mut config = test_config();
    let (a, b) = (free_port().await, free_port().await);
    config.amqp_url =
        format!("amqp://guest:s3cret@127.0.0.1:{a}/%2f,amqp://guest:s3cret@127.0.0.1:{b}/%2f");
    // The clock starts once the binaries are built.
    taskfleet_tests::process::bin("taskfleet").await;
    let started = Instant::now();
    let (code, _, stderr) = cli(&config, &["enqueue", "echo", "{}"], None).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!("127.0.0.1:{a}")) && stderr.contains(&format!("127.0.0.1:{b}")),
        "names each node: {stderr}"
    );
    assert!(!stderr.contains("s3cret"), "no password: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}
