//! What a worker does with handlers that misbehave: a panic is a failed attempt (retried,
//! never a lost delivery or a dead concurrency slot), and exec programs do not see the
//! worker's own settings (server URLs with passwords).

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_common::config::TypeConfig;
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::record::json_of;
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, test_config, worker_with};
use taskfleet_worker::{TaskError, handler_fn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_is_a_failed_attempt_and_frees_its_slot() {
    let mut config = test_config();
    config.worker.concurrency = 1;
    let mut fleet = Fleet::with_config(config).await;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    let worker = worker_with(
        &fleet,
        "explode",
        handler_fn(move |ctx, _payload| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if ctx.attempt() == 1 {
                    panic!("boom on attempt 1");
                }
                Ok::<_, TaskError>(json!({"attempt": ctx.attempt()}))
            }
        }),
    );
    fleet.start_worker_with(worker).await;

    let id = fleet.enqueue("explode", "{}").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    assert_eq!(
        r.get("attempt"),
        Some("2"),
        "the panic used attempt 1, the retry ran"
    );
    assert!(
        r.get("error")
            .is_some_and(|e| e.contains("handler panicked: boom on attempt 1")),
        "{:?}",
        r.get("error")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let s = fleet.stats("explode").await;
    assert_eq!((s.retried, s.completed, s.failed, s.live()), (1, 1, 0, 0));

    // The only slot is free again: another task runs on the same worker.
    let next = fleet.enqueue("echo", "7").await;
    fleet
        .wait_for_state(&next, TaskState::Completed, Duration::from_secs(10))
        .await;
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_programs_do_not_inherit_the_workers_settings() {
    let scratch = Scratch::new();
    let script = scratch
        .write(
            "env.py",
            "import json, os\nprint(json.dumps(sorted(k for k in os.environ if k.startswith('TASKFLEET_'))))\n",
        )
        .await;
    let mut config = test_config();
    config.types.insert(
        "envdump".into(),
        TypeConfig {
            exec: Some(vec![
                "python3".into(),
                script.to_string_lossy().into_owned(),
            ]),
            ..Default::default()
        },
    );
    let fleet = Fleet::with_config(config).await;
    // A real worker process, configured through the environment as in production.
    let log = scratch.path("worker.log");
    let config_file = scratch
        .write(
            "worker.toml",
            &format!(
                "[types.envdump]\nexec = [\"python3\", {:?}]\n",
                script.to_string_lossy()
            ),
        )
        .await;
    let _worker = WorkerProcess::start(
        &fleet.config,
        &["--config", &config_file.to_string_lossy()],
        &log,
    )
    .await;
    fleet.wait_for_consumers("envdump", 1).await;
    let id = fleet.enqueue("envdump", "{}").await;
    let r = fleet
        .wait_for_state(&id, TaskState::Completed, Duration::from_secs(15))
        .await;
    let seen = json_of(r.get("result"));
    assert_eq!(
        seen,
        json!([
            "TASKFLEET_ATTEMPT",
            "TASKFLEET_TASK_ID",
            "TASKFLEET_TASK_TYPE"
        ]),
        "only the exec protocol's variables reach the program"
    );
    fleet.teardown().await;
}
