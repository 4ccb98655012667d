//! Real processes: the `taskfleet` and `taskfleet-worker` binaries of this build.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use taskfleet_common::Config;

/// Path of a binary of this workspace, building the binaries once if needed.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
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
    BUILT.get_or_init(|| {
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
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
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
        ("RUST_LOG", "info".into()),
    ];
    if let Some(addr) = &config.worker.metrics_listen {
        env.push(("TASKFLEET_WORKER__METRICS_LISTEN", addr.clone()));
    }
    env
}

/// Runs `taskfleet ARGS` against a test's namespace: (exit code, stdout, stderr).
pub fn cli(config: &Config, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(bin("taskfleet"));
    cmd.args(args)
        .envs(env_for(config))
        .env_remove("TASKFLEET_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("taskfleet starts");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("taskfleet runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `taskfleet-worker` process; killed (SIGKILL) on drop if still running.
pub struct WorkerProcess {
    pub child: std::process::Child,
}

impl WorkerProcess {
    pub fn start(config: &Config, extra_args: &[&str], log: &std::path::Path) -> Self {
        let log = std::fs::File::create(log).expect("log file");
        // BENCH_WORKER_BIN lets scripts/bench compare another build's worker.
        let program = std::env::var_os("BENCH_WORKER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| bin("taskfleet-worker"));
        let child = Command::new(program)
            .args(extra_args)
            .envs(env_for(config))
            .env_remove("TASKFLEET_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("taskfleet-worker starts");
        Self { child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Exit code if it has exited.
    pub fn try_exit(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unacknowledged deliveries of a queue, as `rabbitmqctl` reports them (local broker).
pub fn unacked(queue: &str) -> Option<u64> {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "--no-table-headers",
            "name",
            "messages_unacknowledged",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_owned(), parts.next()?.parse::<u64>().ok()?))
        })
        .find(|(name, _)| name == queue)
        .map(|(_, n)| n)
}

/// Names of the local broker's queues that start with `prefix` (via `rabbitmqctl`).
pub fn queues_with_prefix(prefix: &str) -> Vec<String> {
    let Ok(out) = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "--no-table-headers", "name"])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}
