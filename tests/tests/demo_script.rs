//! `./scripts/demo` runs start to finish (with the debug build, servers already up):
//! two workers, 1,000 tasks, the state shown with redis-cli, everything removed after
//! (checked in the Redis the demo was pointed at).

use std::path::Path;
use taskfleet_tests::redis_direct;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_start_to_finish() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    taskfleet_tests::process::bin("taskfleet-worker").await;
    let (amqp_url, redis_url) = (taskfleet_tests::amqp_url(), taskfleet_tests::redis_url());
    let out = Command::new(root.join("scripts/demo"))
        .current_dir(&root)
        .env("TASKFLEET_AMQP_URL", &amqp_url)
        .env("TASKFLEET_REDIS_URL", &redis_url)
        .env("DEMO_PROFILE", "debug")
        .env_remove("TASKFLEET_NAMESPACE")
        .kill_on_drop(true)
        .output()
        .await
        .expect("scripts/demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1000 tasks enqueued and completed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("state\ncompleted"),
        "a task's record is shown: {stdout}"
    );
    assert!(stdout.contains("removed Redis keys"), "{stdout}");
    let ns = stdout
        .lines()
        .find_map(|l| l.strip_prefix("==> cleaning up namespace "))
        .expect("namespace named");
    // Read from the Redis the demo used (the configured URL); an unreachable server
    // fails the test instead of reading as "no keys left".
    let mut conn = redis_direct::connection(&redis_url).await;
    let left = redis_direct::keys_matching(&mut conn, &format!("{ns}:*"))
        .await
        .unwrap_or_else(|e| panic!("SCAN on {redis_url}: {e}"));
    assert!(left.is_empty(), "keys left behind in {redis_url}: {left:?}");
}
