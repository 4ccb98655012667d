//! The batch a chaos scenario enqueues: `taskfleet enqueue sleep --batch` in the
//! background, fed N payloads (each tagged with its line number `n`), optionally
//! paced so that the producer still publishes when the fault hits.

use crate::process::cli_command;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use taskfleet_common::{Config, TaskId};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

/// Shape of a batch: every `long_every`-th task sleeps `long_ms` instead of 50 ms;
/// after the first `burst` lines, `pace` of pause every 10 lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    pub tasks: usize,
    pub long_every: usize,
    pub long_ms: u64,
    pub burst: usize,
    pub pace: Duration,
}

impl Shape {
    fn payload(&self, n: usize) -> String {
        let ms = if self.long_every > 0 && n.is_multiple_of(self.long_every) {
            self.long_ms
        } else {
            50
        };
        format!("{{\"ms\":{ms},\"n\":{n}}}\n")
    }
}

/// A batch being enqueued.
pub struct Batch {
    // How many lines the producer was given so far (counted every 10 lines).
    fed: Arc<AtomicUsize>,
    feeder: JoinHandle<()>,
    output: JoinHandle<std::io::Result<Output>>,
}

/// What the enqueue printed once it ended.
pub struct Enqueued {
    pub ids: Vec<TaskId>,
    pub exit_code: Option<i32>,
    /// Its error lines for single tasks (the ones that printed no id).
    pub failures: Vec<String>,
}

impl Batch {
    pub async fn start(config: &Config, shape: Shape) -> Self {
        let mut cmd = cli_command(config, &["enqueue", "sleep", "--batch"]).await;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("taskfleet enqueue starts");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let fed = Arc::new(AtomicUsize::new(0));
        let counter = fed.clone();
        let feeder = tokio::spawn(async move {
            for n in 1..=shape.tasks {
                if stdin.write_all(shape.payload(n).as_bytes()).await.is_err() {
                    return; // the producer exited; `done` reports why
                }
                if n.is_multiple_of(10) {
                    counter.store(n, Ordering::SeqCst);
                    if n > shape.burst && !shape.pace.is_zero() {
                        // Pacing (a publishing rate), not a wait for a condition.
                        tokio::time::sleep(shape.pace).await;
                    }
                }
            }
            counter.store(shape.tasks, Ordering::SeqCst);
        });
        let output = tokio::spawn(child.wait_with_output());
        Self {
            fed,
            feeder,
            output,
        }
    }

    pub fn fed(&self) -> usize {
        self.fed.load(Ordering::SeqCst)
    }

    /// Waits for the enqueue to end; its failures are reported, not lost (they print
    /// no id).
    pub async fn done(self) -> Enqueued {
        let _ = self.feeder.await;
        let out = self
            .output
            .await
            .expect("enqueue task")
            .expect("taskfleet enqueue runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        Enqueued {
            ids: String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect(),
            exit_code: out.status.code(),
            failures: stderr
                .lines()
                .filter(|l| l.starts_with("taskfleet: ") && !l.contains("line(s) of the batch"))
                .map(str::to_owned)
                .collect(),
        }
    }
}
