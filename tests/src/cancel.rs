//! Helpers shared by the cancellation tests: a handler that ignores its token, a
//! cancel's latency from its record, and waiting until a queue has settled.

use crate::process::unacked;
use crate::{Fleet, amqp, eventually};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::TaskType;
use taskfleet_common::store::TaskRecord;
use taskfleet_worker::{Handler, Worker, handler_fn};

/// Sets its flag when dropped: tells whether a handler's future was dropped (aborted).
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Ignores its token and sleeps 30 s; `dropped` is set when its future is dropped.
pub fn stubborn(dropped: Arc<AtomicBool>) -> impl Handler {
    handler_fn(move |_ctx, _payload: Value| {
        let dropped = dropped.clone();
        async move {
            let _flag = SetOnDrop(dropped);
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(json!("slept 30 s"))
        }
    })
}

fn ms(r: &TaskRecord, field: &str) -> u64 {
    r.get(field)
        .unwrap_or_else(|| panic!("record has no {field}: {:?}", r.fields))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {:?}", r.fields))
}

/// Request → `cancelled`, from the record (both stamps come from the Redis clock).
pub fn cancel_latency_ms(r: &TaskRecord) -> u64 {
    ms(r, "finished_at") - ms(r, "cancel_requested_at")
}

pub fn task_type(name: &str) -> TaskType {
    name.parse().expect("valid type")
}

/// Waits until `queue` holds no message, ready or unacknowledged, with `consumers`
/// consumers: every delivery of it was acknowledged.
pub async fn wait_for_settled_queue(fleet: &Fleet, task_type_name: &str, consumers: u32) {
    let queue = fleet.names().queue(&task_type(task_type_name));
    let url = fleet.config.amqp_url.clone();
    eventually(
        Duration::from_secs(15),
        &format!("{queue} empty, every delivery acknowledged"),
        || async {
            let depth = amqp::queue_depth(&url, &queue).await;
            (depth == Some((0, consumers)) && unacked(&queue) == Some(0)).then_some(())
        },
    )
    .await;
}

pub async fn delete_queue(url: &str, queue: &str) {
    let (conn, ch) = amqp::channel(url).await;
    let _ = ch
        .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
}

/// A worker of the fleet's configuration whose `task_type` runs `handler`.
pub fn worker_with(fleet: &Fleet, task_type: &str, handler: impl Handler) -> Worker {
    Worker::new(fleet.config.clone())
        .expect("worker builds")
        .handler(task_type, handler)
        .expect("valid type")
}
