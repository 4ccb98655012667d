//! Issue 6: exec tasks in any language (here Python): stdout is the result, progress
//! and checkpoints travel as marker lines, exit 65 fails at once with the stderr
//! tail, a timeout fails the task, cancelling stops the whole process tree, and a
//! chatty program cannot exhaust the worker's memory.

use futures_util::StreamExt;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use taskfleet_common::config::TypeConfig;
use taskfleet_common::{Config, TaskId, TaskState};
use taskfleet_tests::process::{WorkerProcess, cli};
use taskfleet_tests::procfs::{alive, assert_all_gone, peak_rss_kib, pids_in};
use taskfleet_tests::record::{json_of, ms};
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, eventually, test_config};

/// Declares `name` as an exec type running `python3 SCRIPT SCRATCH_DIR`.
fn python_type(config: &mut Config, name: &str, script: &Path, max_attempts: Option<u32>) {
    let dir = script.parent().expect("script in a directory");
    config.types.insert(
        name.into(),
        TypeConfig {
            exec: Some(vec![
                "python3".into(),
                script.display().to_string(),
                dir.display().to_string(),
            ]),
            max_attempts,
            ..Default::default()
        },
    );
}

const PROGRESS_SCRIPT: &str = r#"
import json, os, sys, time
payload = json.load(sys.stdin)
print("::progress:: 40 halfway there", flush=True)
go = os.path.join(sys.argv[1], "go")
deadline = time.time() + 30
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.02)
print(json.dumps({
    "sum": payload["a"] + payload["b"],
    "id": os.environ["TASKFLEET_TASK_ID"],
    "type": os.environ["TASKFLEET_TASK_TYPE"],
    "attempt": os.environ["TASKFLEET_ATTEMPT"],
    "checkpoint": os.environ.get("TASKFLEET_CHECKPOINT"),
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exec_task_completes_with_stdout_as_result_and_reports_progress() {
    let scratch = Scratch::new();
    let script = scratch.write("job.py", PROGRESS_SCRIPT).await;
    let mut config = test_config();
    python_type(&mut config, "pyjob", &script, None);
    let mut fleet = Fleet::with_config(config).await;
    let mut events = fleet.store.pubsub().await.expect("pubsub");
    events
        .subscribe(fleet.names().events_channel())
        .await
        .expect("subscribe");
    fleet.start_worker().await;

    let id = fleet.enqueue("pyjob", r#"{"a":2,"b":3}"#).await;
    // The script holds at 40 % until the test has seen it in the record.
    let r = eventually(
        Duration::from_secs(15),
        "progress 40 in the record",
        || async {
            fleet
                .record(&id)
                .await
                .filter(|r| r.get("progress") == Some("40"))
        },
    )
    .await;
    assert_eq!(r.state(), Some(TaskState::Running));
    assert_eq!(r.get("progress_message"), Some("halfway there"));
    let mut messages = events.on_message();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let event = loop {
        let msg = tokio::time::timeout_at(deadline, messages.next())
            .await
            .expect("a progress event within 5 s")
            .expect("subscribed");
        let event: Value =
            serde_json::from_str(&msg.get_payload::<String>().expect("text")).expect("JSON");
        if event.get("progress") == Some(&json!("40")) {
            break event;
        }
    };
    assert_eq!(event["id"], id.to_string());
    assert_eq!(event["progress_message"], "halfway there");
    drop(messages);

    scratch.write("go", "").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    assert_eq!(
        json_of(r.get("result")),
        json!({"sum": 5, "id": id.to_string(), "type": "pyjob", "attempt": "1", "checkpoint": null}),
        "stdout is the result; the environment names the task"
    );
    assert_eq!(r.attempt(), 1);
    fleet.teardown().await;
}

const CHECKPOINT_SCRIPT: &str = r#"
import json, os, sys
checkpoint = os.environ.get("TASKFLEET_CHECKPOINT")
if checkpoint is None:
    print('::checkpoint:: {"step": 3, "of": 5}')
    print("crashed at step 4", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"resumed_from": json.loads(checkpoint), "attempt": int(os.environ["TASKFLEET_ATTEMPT"])}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_checkpoint_of_a_failed_attempt_is_handed_to_the_next() {
    let scratch = Scratch::new();
    let script = scratch.write("job.py", CHECKPOINT_SCRIPT).await;
    let mut config = test_config();
    python_type(&mut config, "pyjob", &script, Some(3));
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;

    let id = fleet.enqueue("pyjob", "{}").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(20))
        .await;
    assert_eq!(
        json_of(r.get("result")),
        json!({"resumed_from": {"step": 3, "of": 5}, "attempt": 2}),
        "the second attempt got the first one's checkpoint in TASKFLEET_CHECKPOINT"
    );
    assert_eq!(r.attempt(), 2);
    assert_eq!(json_of(r.get("checkpoint")), json!({"step": 3, "of": 5}));
    let s = fleet.stats("pyjob").await;
    assert_eq!(
        (s.enqueued, s.completed, s.retried, s.failed, s.live()),
        (1, 1, 1, 0, 0)
    );
    fleet.teardown().await;
}

const PERMANENT_SCRIPT: &str = r#"
import sys
sys.stderr.write("noise\n" * 20000)
sys.stderr.write("no such customer: 42\n")
sys.exit(65)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_65_fails_at_once_without_retry_with_the_stderr_tail() {
    let scratch = Scratch::new();
    let script = scratch.write("job.py", PERMANENT_SCRIPT).await;
    let mut config = test_config();
    python_type(&mut config, "pyjob", &script, Some(5));
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;

    let id = fleet.enqueue("pyjob", "{}").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(15))
        .await;
    assert_eq!(r.attempt(), 1, "no second attempt");
    let error = r.get("error").expect("an error");
    assert!(error.contains("exit 65"), "{error}");
    assert!(
        error.ends_with("no such customer: 42"),
        "stderr's tail: {error}"
    );
    assert!(
        error.len() < 4096,
        "stderr is bounded in the error: {} bytes",
        error.len()
    );
    let s = fleet.stats("pyjob").await;
    assert_eq!(
        (s.enqueued, s.failed, s.retried, s.completed, s.live()),
        (1, 1, 0, 0, 0)
    );
    fleet.teardown().await;
}

const SLOW_SCRIPT: &str = r#"
import os, sys, time
with open(os.path.join(sys.argv[1], "pid.tmp"), "w") as f:
    f.write(str(os.getpid()))
os.rename(os.path.join(sys.argv[1], "pid.tmp"), os.path.join(sys.argv[1], "pid"))
time.sleep(60)
print("too late")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_task_past_its_timeout_fails_with_a_timeout_error() {
    let scratch = Scratch::new();
    let script = scratch.write("job.py", SLOW_SCRIPT).await;
    let mut config = test_config();
    python_type(&mut config, "pyjob", &script, None);
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;

    let (code, out, err) = cli(
        &fleet.config,
        &[
            "enqueue",
            "pyjob",
            "{}",
            "--timeout",
            "800ms",
            "--max-attempts",
            "1",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let id: TaskId = out.trim().parse().expect("an id");
    let pids = pids_in(&scratch, "pid").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Failed, Duration::from_secs(15))
        .await;
    let error = r.get("error").expect("an error");
    assert!(error.contains("timed out after 800ms"), "{error}");
    assert_eq!(r.attempt(), 1);
    let ran = ms(&r, "finished_at") - ms(&r, "started_at");
    assert!(
        (800..5_000).contains(&ran),
        "stopped soon after its timeout: ran {ran} ms"
    );
    assert!(r.get("result").is_none(), "{r:?}");
    assert_all_gone(&pids, Duration::from_secs(5)).await;
    let s = fleet.stats("pyjob").await;
    assert_eq!((s.failed, s.retried, s.completed, s.live()), (1, 0, 0, 0));
    fleet.teardown().await;
}

/// Starts a grandchild `sleep 300` (in the same process group), writes both pids,
/// then waits on the grandchild. `IGNORE_TERM` makes both deaf to SIGTERM.
const TREE_SCRIPT: &str = r#"
import os, signal, subprocess, sys
if IGNORE_TERM:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"])
with open(os.path.join(sys.argv[1], "pids.tmp"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.rename(os.path.join(sys.argv[1], "pids.tmp"), os.path.join(sys.argv[1], "pids"))
print("::progress:: 10 started", flush=True)
child.wait()
"#;

/// Cancels a running exec task whose program has a child, and checks that the task
/// ends `cancelled` and both processes are gone. Returns how long the cancel took (ms).
async fn cancel_process_tree(ignore_term: bool, grace: Duration) -> u64 {
    let scratch = Scratch::new();
    let script = scratch
        .write(
            "tree.py",
            &TREE_SCRIPT.replace("IGNORE_TERM", if ignore_term { "True" } else { "False" }),
        )
        .await;
    let mut config = test_config();
    config.worker.cancel_grace = grace;
    python_type(&mut config, "pyjob", &script, None);
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;

    let id = fleet.enqueue("pyjob", "{}").await;
    let pids = pids_in(&scratch, "pids").await;
    assert_eq!(pids.len(), 2);
    for &p in &pids {
        assert!(alive(p).await, "script and grandchild run: {pids:?}");
    }
    eventually(
        Duration::from_secs(10),
        "progress 10 in the record",
        || async {
            fleet
                .record(&id)
                .await
                .filter(|r| r.get("progress") == Some("10"))
        },
    )
    .await;

    let (code, out, err) = cli(&fleet.config, &["cancel", &id.to_string()], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        ["cancelling", "cancelled"].contains(&out.trim()),
        "cancel prints the state: {out}"
    );
    let r = fleet
        .wait_for_state(&id, TaskState::Cancelled, Duration::from_secs(15))
        .await;
    assert_all_gone(&pids, Duration::from_secs(5)).await;
    let s = fleet.stats("pyjob").await;
    assert_eq!((s.cancelled, s.failed, s.retried, s.live()), (1, 0, 0, 0));
    let took = ms(&r, "finished_at") - ms(&r, "cancel_requested_at");
    eprintln!("cancel (ignore SIGTERM: {ignore_term}): cancelled {took} ms after the request");
    fleet.teardown().await;
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_exec_task_leaves_no_child_process_behind() {
    let took = cancel_process_tree(false, Duration::from_secs(5)).await;
    assert!(
        took < 2_000,
        "SIGTERM stops a polite program at once, not after the 5 s grace: {took} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_program_ignoring_sigterm_is_killed_after_the_grace_period() {
    let took = cancel_process_tree(true, Duration::from_millis(700)).await;
    assert!(
        (700..5_000).contains(&took),
        "SIGKILL after the grace period: {took} ms"
    );
}

const CHATTY_SCRIPT: &str = r#"
import sys
chunk = b"x" * 65536
for _ in range(800):  # 50 MiB on stdout, without a single newline
    sys.stdout.buffer.write(chunk)
line = b"e" * 1023 + b"\n"
for _ in range(10240):  # 10 MiB on stderr
    sys.stderr.buffer.write(line)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatty_exec_program_does_not_exhaust_worker_memory() {
    let scratch = Scratch::new();
    let script = scratch.write("chatty.py", CHATTY_SCRIPT).await;
    // The exec type comes from a config file, as an operator would write it.
    let config_file = scratch
        .write(
            "taskfleet.toml",
            &format!(
                "[types.chatty]\nexec = [\"python3\", {:?}]\nmax_attempts = 1\n",
                script.display().to_string()
            ),
        )
        .await;
    let fleet = Fleet::new().await;
    let mut worker = WorkerProcess::start(
        &fleet.config,
        &["--config", &config_file.display().to_string()],
        &scratch.path("worker.log"),
    )
    .await;
    fleet.wait_for_consumers("chatty", 1).await;
    let before = peak_rss_kib(worker.pid()).await;

    let id = fleet.enqueue("chatty", "{}").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(60))
        .await;
    let peak = peak_rss_kib(worker.pid()).await;
    assert!(
        worker.try_exit().is_none(),
        "the worker survived: {:?}",
        scratch.text("worker.log").await
    );
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!("chatty: worker peak RSS {before} KiB -> {peak} KiB");
    assert!(
        grew_mib < 25,
        "60 MiB of output raised the worker's peak memory by {grew_mib} MiB ({before} -> {peak} KiB)"
    );
    let stored = r.get("result").expect("a result");
    assert!(
        stored.len() <= fleet.config.result_limit,
        "{} bytes stored",
        stored.len()
    );
    let Value::String(text) = json_of(Some(stored)) else {
        panic!("non-JSON output is stored as a JSON string");
    };
    let kept_of: usize = text
        .rsplit_once(" of ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a truncation marker: {}", &text[text.len() - 80..]));
    assert!(
        kept_of <= fleet.config.worker.exec_output_limit + 2,
        "stdout was bounded at exec_output_limit before the result limit: {kept_of}"
    );
    drop(worker);
    fleet.teardown().await;
}
