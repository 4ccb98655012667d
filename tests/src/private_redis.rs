//! A `redis-server` of a test's own, on a free port of 127.0.0.1: for what a test must
//! not do to the shared server (ACL users, a restart, a shutdown under load). Without
//! persistence (`start`), or with an append-only file synced at every write
//! (`start_persistent`), so that a crash-restart keeps every acknowledged write.
//! Killed on drop, its directory removed.
//!
//! ```no_run
//! # async fn f() {
//! use taskfleet_tests::private_redis::PrivateRedis;
//! let redis = PrivateRedis::start().await;
//! redis.add_user("w", "pw", &["~*", "resetchannels", "+@all"]).await;
//! let worker_url = redis.url_as("w", "pw");
//! # }
//! ```

use crate::redis_direct;
use crate::scratch::Scratch;
use crate::wait::poll_until;
use redis::aio::MultiplexedConnection;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a fresh server may take to answer PING.
const START_DEADLINE: Duration = Duration::from_secs(10);

pub struct PrivateRedis {
    // `None` while stopped (see `stop`/`start_again`). Declared first so that it is
    // dropped (killed) before its directory is removed.
    child: Option<Child>,
    port: u16,
    // More `redis-server` arguments, given on every start (`--tls-port ...`).
    extra_args: Vec<String>,
    // The server's working directory and log.
    dir: Scratch,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    /// Starts a server that writes every change to its append-only file before it
    /// answers: a `restart` (SIGKILL, start again) loses nothing acknowledged.
    pub async fn start_persistent() -> Self {
        let aof = ["--appendonly", "yes", "--appendfsync", "always"];
        Self::start_with(aof.iter().map(|a| a.to_string()).collect()).await
    }

    /// `start`, with more `redis-server` arguments (`--tls-port` and its files, or
    /// persistence; later arguments override the defaults). The plain port still
    /// listens, so the test can check and clean up without TLS.
    pub async fn start_with(extra_args: Vec<String>) -> Self {
        let mut redis = Self {
            child: None,
            port: crate::free_port().await,
            extra_args,
            dir: Scratch::named("private-redis"),
        };
        redis.start_again().await;
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`: the `default` user, allowed everything.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The URL that authenticates as `user`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}", self.port)
    }

    /// The server's log so far (its stdout and stderr).
    pub async fn log(&self) -> String {
        self.dir.text("redis.log").await.unwrap_or_default()
    }

    /// A connection as the `default` user.
    pub async fn connection(&self) -> MultiplexedConnection {
        redis_direct::connection(&self.url()).await
    }

    /// `ACL SETUSER NAME on >PASSWORD RULES...`, e.g. rules `["~*", "resetchannels",
    /// "+@all"]` for a user that may run every command on every key but use no
    /// pub/sub channel.
    pub async fn add_user(&self, name: &str, password: &str, rules: &[&str]) {
        let mut conn = self.connection().await;
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg(rules)
            .query_async(&mut conn)
            .await
            .expect("ACL SETUSER");
    }

    /// Kills the server (SIGKILL: nothing saved, clients see their connections drop)
    /// and waits until it is gone.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port (empty unless persistent) and waits
    /// until it answers.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "the private Redis already runs");
        let log = crate::files::create(self.dir.path("redis.log")).await;
        let err = log.try_clone().expect("redis log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--appendfsync", "no"])
            .args(&self.extra_args)
            .arg("--dir")
            .arg(self.dir.root())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (Debian package redis-server)");
        self.child = Some(child);
        let url = self.url();
        let up = poll_until(START_DEADLINE, || async {
            redis_direct::answers(&url).await.then_some(())
        })
        .await;
        assert!(
            up.is_some(),
            "private redis-server on port {} did not answer within {START_DEADLINE:?}: {}",
            self.port,
            self.log().await
        );
    }

    /// `stop`, then `start_again`: a crash and restart (that loses everything unless
    /// the server is persistent).
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }
}
