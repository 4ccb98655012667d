//! taskfleet-worker: consume, run, retry, cancel, heartbeat, drain.
//!
//! # Layout
//! - `worker`: `Worker` — register handlers, `run(shutdown, abort)`, the drain
//! - `handler`: `Handler`, `TaskContext`, `TaskError` — all a handler author sees
//! - `builtin`: `echo`, `sleep`, `flaky`; `exec`: programs in any language
//! - `consumer`: the consuming loop and its reconnect loop (one `Link` per session)
//! - `delivery`: one delivery: parse → claim → run → commit → settle, as a pure
//!   `Decision` and one executor, behind seams that unit tests fake
//! - `health`: whether Redis answers (deliveries pause while it does not)
//! - `reporter`: progress and checkpoints to the store, bounded and fenced
//! - `task_logs`: a task's log lines, queued and written to Redis in batches
//! - `runner`: one attempt against its timeout, stop signal and grace period
//! - `inflight`: running attempts and their stop switches
//! - `scheduler`: the elected leader of each `[schedules.NAME]` enqueues its ticks
//! - `declare`: this worker's settings of each served type, in `{ns}:type:{type}`
//! - `liveness`: heartbeats, lease renewal, the reaper, the cancellation listener
//! - `expiry`: the sweep of tasks not started by their `expires_at` (in the reaper's turn)
//! - `alerts`: signed webhook POSTs on final failures and dead letters, off the hot path
//! - `dead`: publishing to the dead-letter queue with headers saying why
//!
//! The binary (`main.rs`) parses flags, installs the signal handlers and calls
//! `Worker::run`; the library never touches signals or the environment.

mod alerts;
mod builtin;
mod consumer;
mod dead;
mod declare;
mod delivery;
mod exec;
mod expiry;
mod handler;
mod health;
mod inflight;
mod liveness;
mod reporter;
mod runner;
mod scheduler;
mod shared;
mod task_logs;
mod worker;

pub use builtin::{Echo, Flaky, Sleep};
pub use delivery::abort_after_release_commit;
pub use exec::{EXIT_PERMANENT, Exec};
pub use handler::{FnHandler, Handler, TaskContext, TaskError, TaskResult, handler_fn};
pub use worker::{Worker, WorkerError};
