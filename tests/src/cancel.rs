//! Helpers shared by the cancellation tests: a handler that ignores its token, and a
//! cancel's latency from its record.

use crate::record::ms;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use taskfleet_common::store::TaskRecord;
use taskfleet_worker::{Handler, handler_fn};

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

/// Request → `cancelled`, from the record (both stamps come from the Redis clock).
pub fn cancel_latency_ms(r: &TaskRecord) -> u64 {
    ms(r, "finished_at") - ms(r, "cancel_requested_at")
}
