//! `./scripts/demo` runs start to finish (with the debug build, servers already up):
//! two workers, 1,000 tasks, the state shown with redis-cli, everything removed after.

use std::path::Path;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_start_to_finish() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    taskfleet_tests::process::bin("taskfleet-worker").await;
    let out = Command::new(root.join("scripts/demo"))
        .current_dir(&root)
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
    let left = Command::new("redis-cli")
        .args(["--scan", "--pattern", &format!("{ns}:*")])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert!(left.is_empty(), "keys left behind: {left}");
}
