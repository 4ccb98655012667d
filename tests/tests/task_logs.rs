//! Issue 14: per-task logs. An exec program's stderr lines and a Rust handler's
//! `ctx.log(..)` are kept with the task (`{ns}:logs:{id}`, bounded) and shown by
//! `taskfleet logs ID` and `GET /v1/tasks/{id}/logs`.

use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::config::TypeConfig;
use taskfleet_common::store::MAX_LOG_LINES;
use taskfleet_tests::process::cli;
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, eventually, test_config, worker_with};
use taskfleet_worker::handler_fn;

const STDERR_SCRIPT: &str = r#"
import sys
sys.stderr.write("starting the job\n")
sys.stderr.write("step 2 <b>not markup</b>\n")
sys.stderr.flush()
sys.stderr.write("no newline at the end")
print('{"ok": true}')
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskfleet_logs_prints_an_exec_tasks_stderr_lines() {
    let scratch = Scratch::new();
    let script = scratch.write("job.py", STDERR_SCRIPT).await;
    let mut config = test_config();
    config.types.insert(
        "pylog".into(),
        TypeConfig {
            exec: Some(vec!["python3".into(), script.display().to_string()]),
            ..Default::default()
        },
    );
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let id = fleet.enqueue("pylog", "{}").await;
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(20))
        .await;

    let want = "attempt 1: starting the job\nattempt 1: step 2 <b>not markup</b>\nattempt 1: no newline at the end\n";
    // Written in the background: wait for the writer, with a deadline.
    let out = eventually(Duration::from_secs(10), "the three log lines", || async {
        let (code, out, err) = cli(&fleet.config, &["logs", &id.to_string()], None).await;
        assert_eq!(code, 0, "taskfleet logs failed: {err}");
        (out == want).then_some(out)
    })
    .await;
    assert_eq!(out, want);

    let (code, json, _) = cli(&fleet.config, &["logs", &id.to_string(), "--json"], None).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["lines"].as_array().map(Vec::len), Some(3), "{v}");

    let (code, _, err) = cli(
        &fleet.config,
        &["logs", &taskfleet_common::TaskId::new().to_string()],
        None,
    )
    .await;
    assert_eq!(code, 1, "an unknown task is not found: {err}");
    assert!(err.contains("not found"), "{err}");
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_ctx_log_lines_are_kept_bounded_and_served_over_http() {
    let mut fleet = Fleet::new().await;
    let w = worker_with(
        &fleet,
        "chatty",
        handler_fn(|ctx, _payload| async move {
            for i in 0..MAX_LOG_LINES + 50 {
                ctx.log(format!("line {i}"));
            }
            Ok(serde_json::json!(null))
        }),
    );
    fleet.start_worker_with(w).await;
    let id = fleet.enqueue("chatty", "{}").await;
    fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(20))
        .await;
    let last = format!("attempt 1: line {}", MAX_LOG_LINES + 49);
    let lines = eventually(Duration::from_secs(10), "the last line stored", || async {
        let lines = fleet.store.task_logs(&id).await.expect("redis answers");
        (lines.last() == Some(&last)).then_some(lines)
    })
    .await;
    assert_eq!(
        lines.len(),
        MAX_LOG_LINES,
        "the list is trimmed to its bound"
    );
    assert_eq!(lines[0], "attempt 1: line 50", "the oldest lines go first");

    let ttl: i64 = {
        let mut c = taskfleet_tests::redis_direct::connection(&taskfleet_tests::redis_url()).await;
        redis::cmd("PTTL")
            .arg(fleet.names().task_logs_key(&id))
            .query_async(&mut c)
            .await
            .expect("PTTL")
    };
    assert!(ttl > 0, "the list expires like the record (PTTL {ttl})");

    let (addr, stop) = taskfleet_tests::http::serve(&fleet).await;
    let (status, body) =
        taskfleet_tests::http::call(addr, "GET", &format!("/v1/tasks/{id}/logs"), None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lines"].as_array().map(Vec::len), Some(MAX_LOG_LINES));
    stop.cancel();
    fleet.teardown().await;
}
