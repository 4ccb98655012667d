//! What handler authors see: the `Handler` trait, `TaskContext` and `TaskError`.
//! No lapin or redis types cross this line.

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use taskfleet_common::{TaskId, TaskType};
use tokio_util::sync::CancellationToken;

/// How an attempt failed, and so what happens next.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TaskError {
    /// A failed attempt: retried per the type's policy until attempts run out.
    #[error("{0}")]
    Retry(String),
    /// A failure that another attempt cannot fix: the task fails at once.
    #[error("{0}")]
    Permanent(String),
    /// The handler stopped because its cancellation token fired.
    #[error("stopped on request")]
    Stopped,
}

impl TaskError {
    pub fn retry(msg: impl Into<String>) -> Self {
        TaskError::Retry(msg.into())
    }

    pub fn permanent(msg: impl Into<String>) -> Self {
        TaskError::Permanent(msg.into())
    }
}

pub type TaskResult = Result<Value, TaskError>;
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs one attempt of a task type. Implement it with `async fn run(...)`.
pub trait Handler: Send + Sync + 'static {
    fn run(&self, ctx: TaskContext, payload: Value) -> impl Future<Output = TaskResult> + Send;
}

/// Object-safe form of `Handler`, so one registry can hold handlers of many types.
pub(crate) trait DynHandler: Send + Sync {
    fn call(self: Arc<Self>, ctx: TaskContext, payload: Value) -> BoxFuture<TaskResult>;
}

impl<H: Handler> DynHandler for H {
    fn call(self: Arc<Self>, ctx: TaskContext, payload: Value) -> BoxFuture<TaskResult> {
        Box::pin(async move { self.run(ctx, payload).await })
    }
}

/// A handler from an async closure: `handler_fn(|ctx, payload| async move { Ok(payload) })`.
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(TaskContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    FnHandler(f)
}

pub struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(TaskContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = TaskResult> + Send + 'static,
{
    fn run(&self, ctx: TaskContext, payload: Value) -> impl Future<Output = TaskResult> + Send {
        (self.0)(ctx, payload)
    }
}

/// Where progress and checkpoints go (the state store, fenced on this attempt).
pub(crate) trait Reporter: Send + Sync {
    fn progress(&self, percent: u8, message: Option<String>) -> BoxFuture<bool>;
    fn checkpoint(&self, value: String) -> BoxFuture<bool>;
    /// Keeps a log line of the run (`{ns}:logs:{id}`); never waits. Default: dropped.
    fn log(&self, _line: &str) {}
}

/// Everything a handler may know about and do for the attempt it runs.
#[derive(Clone)]
pub struct TaskContext {
    id: TaskId,
    task_type: TaskType,
    attempt: u32,
    token: CancellationToken,
    last_checkpoint: Option<Value>,
    reporter: Arc<dyn Reporter>,
    /// The results of the tasks it waited for (`--after`): id → result.
    parent_results: serde_json::Map<String, Value>,
}

impl std::fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskContext")
            .field("id", &self.id)
            .field("type", &self.task_type)
            .field("attempt", &self.attempt)
            .finish()
    }
}

impl TaskContext {
    pub(crate) fn new(
        id: TaskId,
        task_type: TaskType,
        attempt: u32,
        token: CancellationToken,
        last_checkpoint: Option<Value>,
        reporter: Arc<dyn Reporter>,
    ) -> Self {
        Self {
            id,
            task_type,
            attempt,
            token,
            last_checkpoint,
            reporter,
            parent_results: serde_json::Map::new(),
        }
    }

    /// Hands the handler the results of the tasks it waited for.
    pub(crate) fn with_parent_results(mut self, results: serde_json::Map<String, Value>) -> Self {
        self.parent_results = results;
        self
    }

    /// The results of the tasks this one was enqueued `--after`, by task id (`null`
    /// for a parent whose result is gone); empty for a task that waited for none
    /// (docs/workflows.md).
    pub fn parent_results(&self) -> &serde_json::Map<String, Value> {
        &self.parent_results
    }

    pub fn id(&self) -> TaskId {
        self.id
    }

    pub fn task_type(&self) -> &TaskType {
        &self.task_type
    }

    /// 1 for the first attempt; a crash redelivery keeps the number.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Fires when the task is cancelled, times out or the worker drains: stop soon.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The last checkpoint stored by an earlier attempt (or this one).
    pub fn last_checkpoint(&self) -> Option<&Value> {
        self.last_checkpoint.as_ref()
    }

    /// Stores progress (0-100) in the task record; false if this attempt was taken over.
    pub async fn progress(&self, percent: u8, message: Option<&str>) -> bool {
        self.reporter
            .progress(percent.min(100), message.map(str::to_owned))
            .await
    }

    /// Keeps one log line with the task (`taskfleet logs ID`, the dashboard): bounded,
    /// written in the background, never waits (a line is dropped when the queue is full).
    pub fn log(&self, line: impl AsRef<str>) {
        for l in line.as_ref().lines() {
            self.reporter.log(l);
        }
    }

    /// Stores a checkpoint handed to later attempts; false if this attempt was taken over.
    pub async fn checkpoint(&mut self, value: Value) -> bool {
        let stored = self.reporter.checkpoint(value.to_string()).await;
        if stored {
            self.last_checkpoint = Some(value);
        }
        stored
    }
}
