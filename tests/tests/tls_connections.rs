//! TLS to RabbitMQ and Redis against real TLS endpoints made for the test: a
//! private CA, a redis-server with `--tls-port`, and stunnel4 in front of the shared
//! RabbitMQ. A task is enqueued, run and read over `amqps://` + `rediss://`; a
//! certificate that does not verify fails with exit 3 and a message naming TLS, and
//! a TLS URL never falls back to a plain connection.

use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_tests::process::cli;
use taskfleet_tests::tls::{TestCa, TlsRabbit, TlsRedis};
use taskfleet_tests::{Fleet, amqp_url, spawn_worker, test_config};
use taskfleet_worker::Worker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_enqueued_run_and_read_over_amqps_and_rediss_with_a_private_ca() {
    let ca = TestCa::generate().await;
    let redis = TlsRedis::start(&ca).await;
    let rabbit = TlsRabbit::start(&ca, &amqp_url()).await;
    let mut config = test_config();
    config.amqp_url = rabbit.url();
    config.redis_url = redis.url();
    config.tls_ca_file = Some(ca.ca_file());
    let mut fleet = Fleet::with_config(config.clone()).await;

    // The worker runs in this process, over TLS to both servers.
    let worker = spawn_worker(Worker::new(config.clone()).expect("worker builds"));
    let (code, out, err) = cli(&config, &["enqueue", "echo", r#"{"over":"tls"}"#], None).await;
    assert_eq!(code, 0, "enqueue over amqps:// and rediss://: {err}");
    let id = out.trim().to_owned();
    fleet
        .wait_for_state(
            &id.parse().expect("an id"),
            TaskState::Completed,
            Duration::from_secs(20),
        )
        .await;
    let (code, out, err) = cli(&config, &["status", &id, "--json"], None).await;
    assert_eq!(code, 0, "status over rediss://: {err}");
    let record: serde_json::Value = serde_json::from_str(&out).expect("status --json");
    assert_eq!(record["state"], "completed", "{record}");
    assert_eq!(
        record["result"],
        serde_json::json!({"over": "tls"}),
        "{record}"
    );

    worker.stop().await;
    // Clean up through the plain ports of the same servers.
    fleet.config.amqp_url = amqp_url();
    fleet.config.redis_url = redis.plain_url();
    fleet.config.tls_ca_file = None;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_ca_did_not_sign_exits_3_naming_tls() {
    let ca = TestCa::generate().await;
    let other = TestCa::generate().await;
    let redis = TlsRedis::start(&ca).await;
    let rabbit = TlsRabbit::start(&ca, &amqp_url()).await;
    let id = "01934f9e-7a3b-7c00-8000-000000000000";

    let mut wrong_ca = test_config();
    wrong_ca.redis_url = redis.url();
    wrong_ca.tls_ca_file = Some(other.ca_file());
    let (code, _, err) = cli(&wrong_ca, &["status", id], None).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TLS to Redis"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // The system roots alone do not know the private CA either.
    let mut no_ca = test_config();
    no_ca.redis_url = redis.url();
    let (code, _, err) = cli(&no_ca, &["status", id], None).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TLS to Redis"), "{err}");

    let mut amqp_wrong_ca = test_config();
    amqp_wrong_ca.amqp_url = rabbit.url();
    amqp_wrong_ca.tls_ca_file = Some(other.ca_file());
    let (code, _, err) = cli(&amqp_wrong_ca, &["enqueue", "echo", "{}"], None).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TLS to RabbitMQ"), "{err}");
    // The producer connects to both servers before it writes anything; clean up
    // what its Redis connection may have declared all the same.
    amqp_wrong_ca.amqp_url = amqp_url();
    taskfleet_tests::cleanup(&amqp_wrong_ca).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_never_falls_back_to_a_plain_connection() {
    let ca = TestCa::generate().await;
    let redis = TlsRedis::start(&ca).await;
    let mut config = test_config();
    // rediss:// to the plain port of the same server: TLS fails, nothing else is tried.
    config.redis_url = redis.plain_url().replacen("redis://", "rediss://", 1);
    config.tls_ca_file = Some(ca.ca_file());
    let (code, _, err) = cli(
        &config,
        &["status", "01934f9e-7a3b-7c00-8000-000000000000"],
        None,
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("TLS"), "{err}");
}
