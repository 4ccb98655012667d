//! Issue 2: the fleet end to end on the real servers.

use std::collections::HashSet;
use std::time::Duration;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_tests::runs::RunLog;
use taskfleet_tests::{Fleet, amqp, eventually, worker_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_enqueued_before_any_worker_waits_then_completes() {
    let mut fleet = Fleet::new().await;
    let id = fleet.enqueue("echo", r#"{"hello":"world"}"#).await;

    let queue = fleet.names().queue(&"echo".parse().expect("type"));
    let (ready, consumers) = amqp::queue_depth(&fleet.config.amqp_url, &queue)
        .await
        .expect("queue exists");
    assert_eq!((ready, consumers), (1, 0), "the task waits in {queue}");
    let r = fleet.record(&id).await.expect("record exists");
    assert_eq!(r.state(), Some(TaskState::Pending));

    fleet.start_worker().await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.get("result"), Some(r#"{"hello":"world"}"#));
    assert!(r.get("started_at").is_some() && r.get("finished_at").is_some());
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_drain_a_2000_task_batch_exactly_once() {
    let mut fleet = Fleet::new().await;
    // `echo` that counts its runs: the `completed` counter alone does not move when a
    // finished task runs again, so exactly once is proven by the handlers.
    let runs = RunLog::new();
    for _ in 0..2 {
        let worker = worker_with(&fleet, "echo", runs.echo(Duration::ZERO));
        fleet.start_worker_with(worker).await;
    }
    let payloads: String = (0..2000).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    let (code, out, err) = taskfleet_tests::process::cli(
        &fleet.config,
        &["enqueue", "echo", "--batch"],
        Some(&payloads),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let ids: Vec<TaskId> = out
        .lines()
        .map(|l| l.parse().expect("an id per line"))
        .collect();
    assert_eq!(ids.len(), 2000);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        2000,
        "ids are unique"
    );

    let stats = eventually(Duration::from_secs(60), "2000 completed", || async {
        let s = fleet.stats("echo").await;
        (s.completed >= 2000 && s.live() == 0).then_some(s)
    })
    .await;
    assert_eq!(stats.enqueued, 2000);
    assert_eq!(stats.completed, 2000, "each task counted once");
    assert_eq!(
        (
            stats.pending,
            stats.running,
            stats.retrying,
            stats.cancelling
        ),
        (0, 0, 0, 0)
    );
    assert_eq!((stats.failed, stats.cancelled, stats.retried), (0, 0, 0));
    for (n, id) in ids.iter().enumerate() {
        let r = fleet.record(id).await.expect("record");
        assert_eq!(r.state(), Some(TaskState::Completed), "task {id}");
        assert_eq!(
            r.get("result"),
            Some(format!("{{\"n\":{n}}}").as_str()),
            "output order follows input order"
        );
        assert_eq!(r.get("attempt"), Some("1"), "task {id}");
    }
    assert_eq!(
        runs.not_once(&ids),
        Vec::new(),
        "each task ran exactly once (task, runs)"
    );
    assert_eq!(runs.total(), 2000, "no run of a task outside the batch");
    assert!(
        fleet.store.running_ids().await.expect("redis").is_empty(),
        "no lease left"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_amqp_client_envelope_is_executed_and_recorded() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let id = TaskId::new();
    let body = format!(r#"{{"id":"{id}","type":"echo","payload":{{"from":"pika"}}}}"#);
    amqp::publish_raw(
        &fleet.config.amqp_url,
        &fleet.names().tasks_exchange(),
        "echo",
        body.as_bytes(),
    )
    .await;

    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    assert_eq!(r.get("result"), Some(r#"{"from":"pika"}"#));
    assert_eq!(r.get("type"), Some("echo"));
    let s = fleet.stats("echo").await;
    assert_eq!(
        (s.enqueued, s.completed, s.live()),
        (1, 1, 0),
        "a foreign task is counted like ours"
    );
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_message_is_dead_lettered_and_the_worker_keeps_working() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let url = fleet.config.amqp_url.clone();
    let exchange = fleet.names().tasks_exchange();
    amqp::publish_raw(&url, &exchange, "echo", b"{this is not json").await;
    amqp::publish_raw(
        &url,
        &exchange,
        "echo",
        br#"{"id":"not-a-uuid","type":"echo","payload":1}"#,
    )
    .await;

    let dead = fleet.names().dead();
    let mut reasons = Vec::new();
    for n in 1..=2 {
        let (body, headers) = eventually(
            Duration::from_secs(10),
            &format!("malformed message {n} in the dead queue"),
            || async { amqp::get_one(&url, &dead).await },
        )
        .await;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert!(
            header("x-taskfleet-error").is_some_and(|e| !e.is_empty()),
            "{headers:?}"
        );
        reasons.push((
            String::from_utf8_lossy(&body).into_owned(),
            header("x-taskfleet-reason"),
        ));
    }
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            (
                r#"{"id":"not-a-uuid","type":"echo","payload":1}"#.to_owned(),
                Some("malformed".to_owned())
            ),
            ("{this is not json".to_owned(), Some("malformed".to_owned())),
        ],
        "each message dead-lettered once, with its reason"
    );

    let id = fleet.enqueue("echo", "42").await;
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(10))
        .await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_invalid_envelopes_from_other_clients_are_dead_lettered() {
    let mut config = taskfleet_tests::test_config();
    config.payload_limit = 64;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let url = fleet.config.amqp_url.clone();
    let exchange = fleet.names().tasks_exchange();
    // Valid JSON envelopes that a worker must refuse, each with its own reason.
    let (oversized, invalid) = (TaskId::new(), TaskId::new());
    let cases = [
        (
            oversized,
            format!(
                r#"{{"id":"{oversized}","type":"echo","payload":"{}"}}"#,
                "x".repeat(100)
            ),
            "too_large",
        ),
        (
            invalid,
            format!(r#"{{"id":"{invalid}","type":"echo","payload":1,"priority":12}}"#),
            "invalid",
        ),
    ];
    for (_, body, _) in &cases {
        amqp::publish_raw(&url, &exchange, "echo", body.as_bytes()).await;
    }
    let dead = fleet.names().dead();
    let mut got = Vec::new();
    for n in 1..=cases.len() {
        let (body, headers) = eventually(
            Duration::from_secs(10),
            &format!("refused message {n} dead-lettered"),
            || async { amqp::get_one(&url, &dead).await },
        )
        .await;
        let reason = headers
            .iter()
            .find(|(k, _)| k == "x-taskfleet-reason")
            .map(|(_, v)| v.clone());
        got.push((String::from_utf8_lossy(&body).into_owned(), reason));
    }
    for (id, body, reason) in &cases {
        assert!(
            got.contains(&(body.clone(), Some((*reason).to_owned()))),
            "{id} dead-lettered unchanged with reason {reason}: {got:?}"
        );
        assert!(
            fleet.record(id).await.is_none(),
            "nothing recorded for a refused message ({reason})"
        );
    }
    fleet.teardown().await;
}
