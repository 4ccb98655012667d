//! Per-task log lines (exec stderr, `ctx.log`) on their way to `{ns}:logs:{id}`.
//!
//! A handler never waits for Redis to log: a line goes into a bounded channel
//! (`try_send`; when full the line is dropped and counted in
//! `taskfleet_log_lines_dropped_total`), and one writer task per worker drains the
//! channel in batches, one pipelined round trip per batch.

use crate::handler::{BoxFuture, Reporter};
use crate::reporter::truncate_text;
use std::collections::HashMap;
use std::sync::Arc;
use taskfleet_common::store::MAX_LOG_LINE;
use taskfleet_common::{StateStore, TaskId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Lines waiting for the writer, across all tasks of the worker.
const QUEUE: usize = 16 * 1024;
/// Lines written per round trip at most.
const BATCH: usize = 1024;

type Line = (TaskId, String);

/// Cheap-to-clone sending side; `off()` for workers (and unit tests) without a writer.
#[derive(Clone, Default)]
pub(crate) struct LogSink(Option<mpsc::Sender<Line>>);

impl LogSink {
    pub fn off() -> Self {
        Self(None)
    }

    /// A sink and the writer that drains it into `store` until `stop` (then flushes).
    pub fn start(
        store: StateStore,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        // Registered at 0, so dashboards show a flat line rather than no data.
        metrics::counter!("taskfleet_log_lines_dropped_total").increment(0);
        let writer = tokio::spawn(write_loop(store, rx, stop));
        (Self(Some(tx)), writer)
    }

    /// Queues one line of `id`'s attempt `attempt`; never waits.
    pub fn push(&self, id: TaskId, attempt: u32, line: &str) {
        let Some(tx) = &self.0 else { return };
        let line = line.trim_end_matches(['\r', '\n']);
        let text = truncate_text(format!("attempt {attempt}: {line}"), MAX_LOG_LINE);
        if tx.try_send((id, text)).is_err() {
            metrics::counter!("taskfleet_log_lines_dropped_total").increment(1);
        }
    }
}

async fn write_loop(store: StateStore, mut rx: mpsc::Receiver<Line>, stop: CancellationToken) {
    let mut buf: Vec<Line> = Vec::with_capacity(BATCH);
    loop {
        let n = tokio::select! {
            n = rx.recv_many(&mut buf, BATCH) => n,
            _ = stop.cancelled() => {
                // Flush what the last attempts logged, then stop.
                rx.close();
                while rx.recv_many(&mut buf, BATCH).await > 0 {
                    write(&store, &mut buf).await;
                }
                return;
            }
        };
        if n == 0 {
            return;
        }
        write(&store, &mut buf).await;
    }
}

/// Writes `buf` grouped by task (lines of one task keep their order), then empties it.
async fn write(store: &StateStore, buf: &mut Vec<Line>) {
    let mut order: Vec<TaskId> = Vec::new();
    let mut by_task: HashMap<TaskId, Vec<String>> = HashMap::new();
    for (id, line) in buf.drain(..) {
        by_task
            .entry(id)
            .or_insert_with(|| {
                order.push(id);
                Vec::new()
            })
            .push(line);
    }
    let batch: Vec<(TaskId, Vec<String>)> = order
        .into_iter()
        .filter_map(|id| by_task.remove(&id).map(|l| (id, l)))
        .collect();
    if let Err(e) = store.append_logs(&batch).await {
        // Log lines are a convenience: never worth holding a run back for.
        let lines: usize = batch.iter().map(|(_, l)| l.len()).sum();
        metrics::counter!("taskfleet_log_lines_dropped_total").increment(lines as u64);
        tracing::warn!(error = %e, lines, "could not store task log lines; dropped");
    }
}

/// A run's reporter that also takes its log lines.
pub(crate) struct LoggingReporter {
    pub inner: Arc<dyn Reporter>,
    pub sink: LogSink,
    pub id: TaskId,
    pub attempt: u32,
}

impl Reporter for LoggingReporter {
    fn progress(&self, percent: u8, message: Option<String>) -> BoxFuture<bool> {
        self.inner.progress(percent, message)
    }

    fn checkpoint(&self, value: String) -> BoxFuture<bool> {
        self.inner.checkpoint(value)
    }

    fn log(&self, line: &str) {
        self.sink.push(self.id, self.attempt, line)
    }
}
