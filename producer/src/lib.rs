//! taskfleet-producer: the enqueue side.
//!
//! # Layout
//! - `producer`: `Producer` — validate, record (Redis), publish (confirmed), return the id
//! - `fleet_types`: each type's settings, workers, paused flag, queue depth (`types`)
//! - `request`: `EnqueueRequest` and its validation
//! - `transient`: retrying a record or publish while its server restarts
//! - `type_info`: a type's declared settings as the producer reads them (cached)
//! - `error`: `ProducerError` and its `ErrorKind` (the CLI maps kinds to exit codes,
//!   the HTTP API to statuses)
//! - `dead`: the dead-letter queue: list it without consuming it, replay tasks from it
//!   (`dead::message`: what a dead message says about itself)
//! - `task_logs`: a task's log lines (`taskfleet logs`, `GET /v1/tasks/{id}/logs`)
//! - `http`: the HTTP API (`taskfleet serve`)
//! - `cli`: the `taskfleet` command line (the binary in `main.rs` only calls `cli::run`)

pub mod cli;
pub mod dead;
pub mod error;
pub mod fleet_types;
pub mod http;
pub mod producer;
pub mod request;
pub mod task_logs;
mod transient;
pub mod type_info;
pub mod wait;
pub mod workflow;

pub use error::{ErrorKind, ProducerError};
pub use producer::{Enqueued, Producer};
pub use request::EnqueueRequest;
pub use workflow::Workflow;
