//! Issue 12: workflows. A task enqueued `--after` others waits until they completed
//! and gets their results; a failed parent cancels its dependents transitively; a DAG
//! file is accepted or refused whole; a worker killed between a parent's commit and
//! its ack still releases the dependent exactly once; `wait` and `enqueue --wait`
//! block on the events channel.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use taskfleet_common::config::TypeConfig;
use taskfleet_common::{TaskId, TaskState};
use taskfleet_tests::process::{WorkerProcess, cli};
use taskfleet_tests::record::{json_of, ms};
use taskfleet_tests::runs::RunLog;
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, eventually, test_config, worker_with};

/// `taskfleet enqueue ARGS`: the new id.
async fn enqueue(fleet: &Fleet, args: &[&str]) -> TaskId {
    let mut all = vec!["enqueue"];
    all.extend_from_slice(args);
    let (code, out, err) = cli(&fleet.config, &all, None).await;
    assert_eq!(code, 0, "enqueue {args:?}: {err}");
    out.trim().parse().expect("an id")
}

const PARENT_RESULTS_SCRIPT: &str = r#"
import os, sys
sys.stdin.read()
print(os.environ.get("TASKFLEET_PARENT_RESULTS", "null"))
"#;

/// Runs until the test creates the file `go` next to it, then returns `{"gate":1}`.
const GATE_SCRIPT: &str = r#"
import os, sys, time
sys.stdin.read()
go = os.path.join(os.path.dirname(sys.argv[0]), "go")
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.02)
print('{"gate":1}')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_waits_for_its_parent_and_gets_both_parents_results() {
    let scratch = Scratch::new();
    let mut config = test_config();
    for (name, text) in [("collect", PARENT_RESULTS_SCRIPT), ("gate", GATE_SCRIPT)] {
        let script = scratch.write(&format!("{name}.py"), text).await;
        config.types.insert(
            name.into(),
            TypeConfig {
                exec: Some(vec!["python3".into(), script.display().to_string()]),
                ..Default::default()
            },
        );
    }
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;

    let a = enqueue(&fleet, &["gate", "{}"]).await;
    let a_str = a.to_string();
    let b = enqueue(&fleet, &["echo", r#"{"b":2}"#, "--after", &a_str]).await;
    let ab = format!("{a},{b}");
    let c = enqueue(&fleet, &["collect", "{}", "--after", &ab]).await;

    fleet
        .wait_for_state(&a, TaskState::Running, Duration::from_secs(10))
        .await;
    let rb = fleet.record(&b).await.expect("B recorded");
    assert_eq!(rb.state(), Some(TaskState::Waiting), "B waits while A runs");
    assert_eq!(json_of(rb.get("after")), json!([a_str]));
    assert_eq!(fleet.stats("echo").await.waiting, 1, "counted as waiting");
    let (code, out, err) = cli(&fleet.config, &["status", &a_str, "--json"], None).await;
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        status["dependents"],
        json!(2),
        "status counts A's dependents"
    );
    scratch.write("go", "").await;

    let rc = fleet
        .wait_for_state(&c, TaskState::Completed, Duration::from_secs(20))
        .await;
    let ra = fleet.record(&a).await.expect("A");
    let rb = fleet.record(&b).await.expect("B");
    assert_eq!(rb.state(), Some(TaskState::Completed));
    assert!(
        ms(&rb, "started_at") >= ms(&ra, "finished_at"),
        "B started only after A finished"
    );
    assert!(ms(&rc, "started_at") >= ms(&rb, "finished_at"));
    assert_eq!(
        json_of(rc.get("result")),
        json!({ a_str: {"gate": 1}, b.to_string(): {"b": 2} }),
        "C got both parents' results in TASKFLEET_PARENT_RESULTS"
    );
    assert_eq!(fleet.stats("echo").await.waiting, 0);
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_parent_cancels_its_dependents_transitively_and_they_never_run() {
    let mut fleet = Fleet::new().await;
    let runs = RunLog::new();
    fleet
        .start_worker_with(worker_with(&fleet, "echo", runs.echo(Duration::ZERO)))
        .await;
    let a = enqueue(
        &fleet,
        &["flaky", r#"{"fail_times":5}"#, "--max-attempts", "1"],
    )
    .await;
    let b = enqueue(&fleet, &["echo", "{}", "--after", &a.to_string()]).await;
    let c = enqueue(&fleet, &["echo", "{}", "--after", &b.to_string()]).await;

    fleet
        .wait_for_state(&a, TaskState::Failed, Duration::from_secs(15))
        .await;
    for (id, parent, why) in [(b, a, "failed"), (c, b, "cancelled")] {
        let r = fleet
            .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(5))
            .await;
        assert_eq!(r.get("reason"), Some("dependency_failed"));
        assert_eq!(
            r.get("error"),
            Some(format!("dependency {parent} {why}").as_str())
        );
        assert_eq!(r.get("started_at"), None, "never started");
    }
    assert_eq!(runs.total(), 0, "no dependent ran");
    let s = fleet.stats("echo").await;
    assert_eq!((s.waiting, s.cancelled), (0, 2));

    // Depending on a task that already failed resolves at once.
    let d = enqueue(&fleet, &["echo", "{}", "--after", &a.to_string()]).await;
    let r = fleet.record(&d).await.expect("D");
    assert_eq!(r.state(), Some(TaskState::Cancelled));
    assert_eq!(r.get("reason"), Some("dependency_failed"));
    // `wait` on a cancelled task exits 1.
    let (code, _, err) = cli(&fleet.config, &["wait", &d.to_string()], None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cancelled"), "{err}");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_after_is_refused_with_the_contracts_exit_codes() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let unknown = TaskId::new().to_string();
    let (code, _, err) = cli(
        &fleet.config,
        &["enqueue", "echo", "{}", "--after", &unknown],
        None,
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&unknown), "names the unknown parent: {err}");
    let (code, _, err) = cli(
        &fleet.config,
        &["enqueue", "echo", "{}", "--after", "not-an-id"],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    let many = (0..1001)
        .map(|_| TaskId::new().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (code, _, err) = cli(
        &fleet.config,
        &["enqueue", "echo", "{}", "--after", &many],
        None,
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at most 1000"), "{err}");
    assert_eq!(fleet.stats("echo").await.enqueued, 0, "nothing recorded");

    // Completed parent: resolves at once, the task runs.
    let a = fleet.enqueue("echo", "{}").await;
    fleet
        .wait_for_state(&a, TaskState::Completed, Duration::from_secs(10))
        .await;
    let b = enqueue(
        &fleet,
        &["echo", r#"{"late":1}"#, "--after", &a.to_string()],
    )
    .await;
    fleet
        .wait_for_state(&b, TaskState::Completed, Duration::from_secs(10))
        .await;
    fleet.teardown().await;
}

/// One root, 100 pieces after it, one merge after all 100.
fn fan_out_fan_in(cycle: bool) -> String {
    let mut tasks = vec![json!({"key": "root", "type": "echo", "payload": {"n": 0},
        "after": if cycle { vec!["merge"] } else { vec![] }})];
    let pieces: Vec<String> = (0..100).map(|i| format!("piece{i}")).collect();
    for p in &pieces {
        tasks.push(json!({"key": p, "type": "echo", "payload": {"piece": p}, "after": ["root"]}));
    }
    tasks.push(json!({"key": "merge", "type": "echo", "payload": {}, "after": pieces}));
    json!({ "tasks": tasks }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_fan_in_workflow_runs_the_merge_once_after_all_hundred() {
    let mut fleet = Fleet::new().await;
    let scratch = Scratch::new();
    let cyclic = scratch.write("cycle.json", &fan_out_fan_in(true)).await;
    let (code, out, err) = cli(
        &fleet.config,
        &["workflow", "submit", &cyclic.display().to_string()],
        None,
    )
    .await;
    assert_eq!(code, 2, "a cycle is refused: {out} {err}");
    assert!(err.contains("cycle"), "{err}");
    assert_eq!(fleet.stats("echo").await.enqueued, 0, "nothing enqueued");

    let runs = RunLog::new();
    fleet
        .start_worker_with(worker_with(&fleet, "echo", runs.echo(Duration::ZERO)))
        .await;
    let (code, out, err) = cli(
        &fleet.config,
        &["workflow", "submit", "-"],
        Some(&fan_out_fan_in(false)),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let ids: std::collections::HashMap<String, TaskId> = out
        .lines()
        .map(|l| {
            let (k, id) = l.split_once(' ').expect("KEY ID");
            (k.to_owned(), id.parse().expect("an id"))
        })
        .collect();
    assert_eq!(ids.len(), 102, "{out}");
    assert_eq!(
        out.lines().next().map(|l| &l[..5]),
        Some("root "),
        "file order"
    );
    let merge = ids["merge"];
    let rm = fleet
        .wait_for_state(&merge, TaskState::Completed, Duration::from_secs(60))
        .await;
    let mut last_piece = 0;
    for i in 0..100 {
        let r = fleet
            .record(&ids[&format!("piece{i}")])
            .await
            .expect("piece");
        assert_eq!(r.state(), Some(TaskState::Completed));
        last_piece = last_piece.max(ms(&r, "finished_at"));
    }
    assert!(
        ms(&rm, "started_at") >= last_piece,
        "merge ran after all 100"
    );
    assert_eq!(runs.of(&merge), 1, "merge ran once");
    assert_eq!(runs.total(), 102);
    let s = fleet.stats("echo").await;
    assert_eq!((s.enqueued, s.completed, s.waiting), (102, 102, 0));
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_killed_between_the_parents_commit_and_its_ack_still_releases_the_dependent_once() {
    let mut fleet = Fleet::new().await;
    let a = fleet.enqueue("echo", r#"{"a":1}"#).await;
    let b = enqueue(&fleet, &["echo", r#"{"b":1}"#, "--after", &a.to_string()]).await;
    let scratch = Scratch::new();
    let mut victim = WorkerProcess::start_with_env(
        &fleet.config,
        &["--types", "echo"],
        &scratch.path("victim.log"),
        &[("TASKFLEET_TEST_ABORT_AFTER_COMMIT", "1")],
    )
    .await;
    let exit = victim.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(
        exit,
        Some(None),
        "the victim died by a signal right after A's commit"
    );
    let ra = fleet.record(&a).await.expect("A");
    assert_eq!(
        ra.state(),
        Some(TaskState::Completed),
        "A's commit was applied"
    );
    let rb = fleet.record(&b).await.expect("B");
    assert_eq!(
        rb.state(),
        Some(TaskState::Pending),
        "released, not yet published"
    );
    assert!(
        rb.get("envelope").is_some(),
        "marked released-not-published"
    );

    let runs = RunLog::new();
    fleet
        .start_worker_with(worker_with(&fleet, "echo", runs.echo(Duration::ZERO)))
        .await;
    let rb = fleet
        .wait_for_state(&b, TaskState::Completed, Duration::from_secs(30))
        .await;
    assert_eq!(rb.get("result"), Some(r#"{"b":1}"#));
    assert_eq!(runs.of(&a), 0, "A's redelivery was dropped, not run again");
    assert_eq!(runs.of(&b), 1, "B ran exactly once");
    let s = fleet.stats("echo").await;
    assert_eq!((s.completed, s.live()), (2, 0), "each counted once");
    // Nothing is left to publish a second time.
    let again = fleet.store.release(&a).await.expect("release answers");
    assert!(again.is_empty(), "{again:?}");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_wait_prints_the_result_and_wait_times_out_with_exit_4() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let (code, out, err) = cli(
        &fleet.config,
        &["enqueue", "echo", r#"{"x":1}"#, "--wait"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).ok(),
        Some(json!({"x":1}))
    );

    let slow = fleet.enqueue("sleep", r#"{"ms":5000}"#).await;
    let started = Instant::now();
    let (code, _, err) = cli(
        &fleet.config,
        &["wait", &slow.to_string(), "--timeout", "1s"],
        None,
    )
    .await;
    let took = started.elapsed();
    assert_eq!(code, 4, "{err}");
    assert!(
        took < Duration::from_secs(4),
        "gave up after its timeout, took {took:?}"
    );
    let (code, out, err) = cli(
        &fleet.config,
        &["wait", &slow.to_string(), "--timeout", "20s", "--json"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(r["state"], "completed");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_waiting_task_or_a_root_with_dependents_cancels_downstream() {
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    // Runs until cancelled, however slow the machine is.
    let root = fleet.enqueue("sleep", r#"{"ms":600000}"#).await;
    let mid = enqueue(&fleet, &["echo", "{}", "--after", &root.to_string()]).await;
    let leaf = enqueue(&fleet, &["echo", "{}", "--after", &mid.to_string()]).await;
    let (code, out, err) = cli(&fleet.config, &["cancel", &mid.to_string()], None).await;
    assert_eq!((code, out.trim()), (0, "cancelled"), "{err}");
    let r = fleet.record(&leaf).await.expect("leaf");
    assert_eq!(r.state(), Some(TaskState::Cancelled));
    assert_eq!(r.get("reason"), Some("dependency_failed"));

    let other = enqueue(&fleet, &["echo", "{}", "--after", &root.to_string()]).await;
    fleet
        .wait_for_state(&root, TaskState::Running, Duration::from_secs(10))
        .await;
    let (code, _, err) = cli(
        &fleet.config,
        &["cancel", &root.to_string(), "--with-dependents"],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let r = fleet.record(&other).await.expect("other");
    assert_eq!(r.state(), Some(TaskState::Cancelled), "cancelled at once");
    fleet
        .wait_for_state(&root, TaskState::Cancelled, Duration::from_secs(10))
        .await;
    eventually(Duration::from_secs(5), "no live echo task", || async {
        (fleet.stats("echo").await.live() == 0).then_some(())
    })
    .await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_takes_after_long_polls_with_wait_and_submits_workflows() {
    use taskfleet_tests::http::{request, serve};
    let mut fleet = Fleet::new().await;
    fleet.start_worker().await;
    let (addr, stop) = serve(&fleet).await;
    let bad = json!({"tasks":[{"key":"a","type":"echo","after":["b"]},{"key":"b","type":"echo","after":["a"]}]});
    let a = request(addr, "POST", "/v1/workflows", None, Some(&bad.to_string())).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let unknown = TaskId::new().to_string();
    let body = json!({"type":"echo","after":[unknown]}).to_string();
    let a = request(addr, "POST", "/v1/tasks", None, Some(&body)).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.body.contains(&unknown), "{}", a.body);

    let flow = json!({"tasks":[{"key":"a","type":"echo","payload":{"a":1}},
        {"key":"b","type":"echo","payload":{"b":1},"after":["a"]}]});
    let a = request(addr, "POST", "/v1/workflows", None, Some(&flow.to_string())).await;
    assert_eq!(a.status, 202, "{}", a.body);
    let tasks = a.json()["tasks"].clone();
    assert_eq!(tasks[1]["key"], "b");
    let b = tasks[1]["id"].as_str().expect("an id").to_owned();
    let a = request(addr, "GET", &format!("/v1/tasks/{b}?wait=20s"), None, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["state"], "completed");
    assert_eq!(a.json()["result"], json!({"b":1}));
    stop.cancel();
    fleet.teardown().await;
}
