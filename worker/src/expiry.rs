//! The expiry sweep: a task not started by its `expires_at` ends `cancelled`, reason
//! `expired`, when it is next seen — its delivery (claim.lua) or this sweep, whichever
//! comes first. The sweep runs in the reaper's turn, on the one worker holding the
//! reaper lock, so the fleet sweeps once per heartbeat interval with no extra lease;
//! it covers the tasks a delivery would reach late or never (a backlog, a paused
//! type, a type no live worker serves). docs/guarantees.md.

use crate::shared::Shared;

/// Due entries one sweep visits; more wait for the next sweep (a bounded script).
const SWEEP_LIMIT: usize = 500;

pub(crate) async fn sweep(shared: &Shared) {
    match shared.store.expire(&shared.worker_id, SWEEP_LIMIT).await {
        Ok(ids) => {
            for id in &ids {
                tracing::info!(%id, "not started by its expires_at: cancelled (expired) by the sweep");
            }
            metrics::counter!("taskfleet_tasks_expired_total").increment(ids.len() as u64);
        }
        Err(e) => tracing::debug!(error = %e, "expiry sweep failed; the next reaper turn retries"),
    }
}
