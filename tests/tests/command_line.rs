//! The `taskfleet` command line: exit codes and one-line errors from the contract.

use std::time::{Duration, Instant};
use taskfleet_common::Config;
use taskfleet_common::TaskState;
use taskfleet_tests::process::{cli, cli_with_env};
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::silent::SilentListener;
use taskfleet_tests::{Fleet, cleanup, test_config};

fn one_line(stderr: &str) {
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line on stderr: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_prints_the_id_and_status_shows_the_record() {
    let mut fleet = Fleet::new().await;
    let (code, out, err) = cli(
        &fleet.config,
        &["enqueue", "echo", r#"{"k":"v"}"#, "--priority", "3"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let id: taskfleet_common::TaskId = out.trim().parse().expect("prints an id");
    fleet.start_worker().await;
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;

    let (code, out, _) = cli(&fleet.config, &["status", &id.to_string(), "--json"], None).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON");
    assert_eq!(v["state"], "completed");
    assert_eq!(v["result"], serde_json::json!({"k": "v"}));
    assert_eq!(v["priority"], 3);

    let (code, out, _) = cli(&fleet.config, &["stats", "--json"], None).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("stats --json");
    assert_eq!(v["types"]["echo"]["completed"], 1);

    let (code, out, _) = cli(&fleet.config, &["workers", "--json"], None).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("workers --json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["status"], "running");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_an_unknown_id_exits_1() {
    let fleet = Fleet::new().await;
    let (code, out, err) = cli(
        &fleet.config,
        &["status", "01934f9e-7a3b-7c00-8000-000000000000"],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(err.contains("not found"), "{err}");
    one_line(&err);
    let (code, _, err) = cli(&fleet.config, &["status", "not-an-id"], None).await;
    assert_eq!(code, 2, "{err}");
    one_line(&err);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_exits_2_with_a_one_line_reason() {
    let fleet = Fleet::new().await;
    for (args, needle) in [
        (vec!["enqueue", "echo", "{not json"], "JSON"),
        (vec!["enqueue", "Not A Type", "{}"], "task type"),
        (
            vec!["enqueue", "echo", "{}", "--priority", "12"],
            "priority",
        ),
        (
            vec!["enqueue", "echo", "{}", "--timeout", "soon"],
            "timeout",
        ),
    ] {
        let (code, out, err) = cli(&fleet.config, &args, None).await;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}");
        assert!(
            err.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: {err}"
        );
        one_line(&err);
    }
    let s = fleet.stats("echo").await;
    assert_eq!(s.enqueued, 0, "nothing was recorded");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_with_a_bad_line_enqueues_the_others_and_exits_2() {
    let fleet = Fleet::new().await;
    let (code, out, err) = cli(
        &fleet.config,
        &["enqueue", "echo", "--batch"],
        Some("{\"n\":1}\n{broken\n{\"n\":3}\n"),
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(out.lines().count(), 2);
    assert_eq!(fleet.stats("echo").await.enqueued, 2);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_servers_exit_3_within_seconds() {
    let mut config = test_config();
    config.redis_url = "redis://127.0.0.1:1".into();
    let started = Instant::now();
    let (code, _, err) = cli(
        &config,
        &["status", "01934f9e-7a3b-7c00-8000-000000000000"],
        None,
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Redis unreachable"), "{err}");
    one_line(&err);

    let mut config = test_config();
    config.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f".into();
    let (code, _, err) = cli(&config, &["enqueue", "echo", "{}"], None).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("RabbitMQ unreachable"), "{err}");
    assert!(!err.contains("guest:guest"), "no password in errors: {err}");
    one_line(&err);

    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    // Servers that accept the connection and never answer: only the client's network
    // timeout ends the wait (a refused or black-holed address may fail at once).
    let silent = SilentListener::start().await;
    let timeout = Duration::from_secs(1);
    let mut config = test_config();
    config.redis_url = format!("redis://127.0.0.1:{}", silent.port());
    let (code, err, took) = timed_cli(&config, &["stats"], timeout).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("Redis unreachable"), "{err}");
    assert!(
        err.contains("no answer within"),
        "the timeout ended it: {err}"
    );
    assert!(took >= timeout, "waited for the timeout, not {took:?}");
    one_line(&err);

    let mut config = test_config();
    config.amqp_url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", silent.port());
    let (code, err, took) = timed_cli(&config, &["enqueue", "echo", "{}"], timeout).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("RabbitMQ unreachable"), "{err}");
    assert!(
        err.contains("no answer within"),
        "the timeout ended it: {err}"
    );
    assert!(took >= timeout, "waited for the timeout, not {took:?}");
    one_line(&err);
    // Whatever the refused enqueue left in Redis (the broker never saw it).
    config.amqp_url = taskfleet_tests::amqp_url();
    cleanup(&config).await;
}

/// `taskfleet ARGS` with `network_timeout` set to `timeout`: (exit code, stderr, time
/// taken). Fails, rather than hangs, if the command does not end by itself.
async fn timed_cli(config: &Config, args: &[&str], timeout: Duration) -> (i32, String, Duration) {
    let t0 = Instant::now();
    let value = format!("{}ms", timeout.as_millis());
    let env = [("TASKFLEET_NETWORK_TIMEOUT", value.as_str())];
    let run = cli_with_env(config, args, None, &env);
    let (code, _, err) = tokio::time::timeout(timeout * 20, run)
        .await
        .unwrap_or_else(|_| panic!("taskfleet {args:?} still waits after {:?}", timeout * 20));
    (code, err, t0.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_value_is_refused_naming_the_key() {
    let config = test_config();
    let dir = Scratch::named("cli");
    let file = dir.write("bad.toml", "[worker]\nconcurrency = 0\n").await;
    let path = file.to_string_lossy().into_owned();
    let (code, _, err) = cli(&config, &["--config", &path, "stats"], None).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("worker.concurrency"), "{err}");
    one_line(&err);
}
