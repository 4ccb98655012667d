//! Real processes: the `taskfleet` and `taskfleet-worker` binaries of this build,
//! run with `tokio::process` so that no test blocks a runtime thread on them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use taskfleet_common::Config;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

/// Path of a binary of this workspace, building the binaries once if needed (in the
/// profile of the running executable: `target/release/taskfleet-chaos` uses release
/// workers).
pub async fn bin(name: &str) -> PathBuf {
    static BUILT: OnceCell<()> = OnceCell::const_new();
    let dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()))
        .map(|d| {
            if d.ends_with("deps") {
                d.parent().map(|p| p.to_path_buf()).unwrap_or(d)
            } else {
                d
            }
        })
        .expect("test executable has a directory");
    let path = dir.join(name);
    BUILT
        .get_or_init(|| async {
            let profile: &[&str] = if dir.ends_with("release") {
                &["--release"]
            } else {
                &[]
            };
            let status = Command::new(env!("CARGO"))
                .args(["build", "--workspace", "--bins", "--quiet"])
                .args(profile)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .await
                .expect("cargo runs");
            assert!(status.success(), "building the binaries failed");
        })
        .await;
    assert!(path.exists(), "{} not found", path.display());
    path
}

/// The environment that points a binary at a test's namespace and servers.
pub fn env_for(config: &Config) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TASKFLEET_NAMESPACE", config.namespace.to_string()),
        ("TASKFLEET_AMQP_URL", config.amqp_url.clone()),
        ("TASKFLEET_REDIS_URL", config.redis_url.clone()),
        (
            "TASKFLEET_WORKER__HEARTBEAT_INTERVAL",
            format!("{}ms", config.worker.heartbeat_interval.as_millis()),
        ),
        (
            "TASKFLEET_WORKER__LEASE",
            format!("{}ms", config.worker.lease.as_millis()),
        ),
        (
            "TASKFLEET_WORKER__CANCEL_GRACE",
            format!("{}ms", config.worker.cancel_grace.as_millis()),
        ),
        (
            "TASKFLEET_WORKER__DRAIN_GRACE",
            format!("{}ms", config.worker.drain_grace.as_millis()),
        ),
        (
            "TASKFLEET_WORKER__PARK_AFTER",
            format!("{}ms", config.worker.park_after.as_millis()),
        ),
        (
            "TASKFLEET_DEFAULTS__BACKOFF__INITIAL",
            format!("{}ms", config.defaults.backoff.initial.as_millis()),
        ),
        (
            "TASKFLEET_DEFAULTS__BACKOFF__MAX",
            format!("{}ms", config.defaults.backoff.max.as_millis()),
        ),
        (
            "TASKFLEET_QUEUE_TYPE",
            match config.queue_type {
                taskfleet_common::config::QueueType::Classic => "classic".into(),
                taskfleet_common::config::QueueType::Quorum => "quorum".into(),
            },
        ),
        ("RUST_LOG", "info".into()),
    ];
    if let Some(ca) = &config.tls_ca_file {
        env.push(("TASKFLEET_TLS_CA_FILE", ca.display().to_string()));
    }
    if let Some(addr) = &config.worker.metrics_listen {
        env.push(("TASKFLEET_WORKER__METRICS_LISTEN", addr.clone()));
    }
    env
}

/// `taskfleet ARGS` against a test's namespace, stdio not yet set, killed on drop.
pub async fn cli_command(config: &Config, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("taskfleet").await);
    cmd.args(args)
        .envs(env_for(config))
        .env_remove("TASKFLEET_CONFIG")
        .kill_on_drop(true);
    cmd
}

/// Runs `taskfleet ARGS` against a test's namespace: (exit code, stdout, stderr).
pub async fn cli(config: &Config, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    cli_with_env(config, args, stdin, &[]).await
}

/// `cli` with extra environment variables (`TASKFLEET_PAYLOAD_LIMIT=...`).
pub async fn cli_with_env(
    config: &Config,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = cli_command(config, args).await;
    cmd.envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("taskfleet starts");
    // Written while the output is read, so a large input cannot dead-lock on a full
    // stdout pipe.
    let feeder = match (stdin, child.stdin.take()) {
        (Some(input), Some(mut pipe)) => {
            let input = input.to_owned();
            Some(tokio::spawn(async move {
                let _ = pipe.write_all(input.as_bytes()).await;
            }))
        }
        _ => None,
    };
    let out = child.wait_with_output().await.expect("taskfleet runs");
    if let Some(f) = feeder {
        let _ = f.await;
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `taskfleet-worker` process; killed (SIGKILL) on drop if still running.
pub struct WorkerProcess {
    pub child: Child,
    // Kept: `Child::id` forgets it once the process was reaped.
    pid: i32,
}

impl WorkerProcess {
    pub async fn start(config: &Config, extra_args: &[&str], log: &Path) -> Self {
        Self::start_with_env(config, extra_args, log, &[]).await
    }

    /// `start` with extra environment variables (they override `env_for`'s, e.g.
    /// `RUST_LOG`).
    pub async fn start_with_env(
        config: &Config,
        extra_args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let log = crate::files::create(log).await;
        // BENCH_WORKER_BIN lets scripts/bench compare another build's worker.
        let program = match std::env::var_os("BENCH_WORKER_BIN") {
            Some(p) => PathBuf::from(p),
            None => bin("taskfleet-worker").await,
        };
        let child = Command::new(program)
            .args(extra_args)
            .envs(env_for(config))
            .envs(env.iter().copied())
            .env_remove("TASKFLEET_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("taskfleet-worker starts");
        let pid = child.id().expect("a running child has a pid") as i32;
        Self { child, pid }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), sig);
    }

    /// Exit code if it has exited (`Some(None)`: killed by a signal).
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// Waits up to `deadline` for it to exit: `Some(exit code)`, `None` if it still
    /// runs.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<Option<i32>> {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => Some(status.ok().and_then(|s| s.code())),
            Err(_) => None,
        }
    }

    /// SIGKILL, and waits until it is gone (reaped): nothing of it runs afterwards.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
