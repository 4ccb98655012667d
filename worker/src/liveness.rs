//! Keeping the fleet's view of this worker true: heartbeats (which renew leases and
//! catch cancellations pub/sub missed), the reaper of dead workers' leases, and the
//! cancellation listener on a dedicated pub/sub connection.

use crate::inflight::StopReason;
use crate::shared::Shared;
use futures_util::StreamExt;
use std::sync::Arc;
use taskfleet_common::TaskId;
use taskfleet_common::reconnect::ReconnectPolicy;
use taskfleet_common::store::HeartbeatArgs;
use tokio_util::sync::CancellationToken;

/// Beats every heartbeat interval until `stop`.
pub(crate) async fn heartbeat_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let interval = shared.config.worker.heartbeat_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        beat(&shared).await;
    }
}

/// Reaps expired leases every heartbeat interval, apart from the beats so a slow reap
/// never delays this worker's own lease renewal.
pub(crate) async fn reaper_loop(shared: Arc<Shared>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(shared.config.worker.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        reap(&shared).await;
    }
}

pub(crate) async fn beat(shared: &Shared) {
    let c = &shared.config.worker;
    let result = shared
        .store
        .heartbeat(&HeartbeatArgs {
            worker: &shared.worker_id,
            registration: &shared.registration,
            status: shared.status(),
            lease: c.lease,
            entry_ttl: c.heartbeat_interval * 3,
            inflight: &shared.inflight.runs(),
        })
        .await;
    match result {
        Ok(beat) => {
            shared.health.ok();
            for id in beat.cancelled {
                if shared.inflight.stop(&id, StopReason::Cancelled) {
                    tracing::info!(%id, "cancellation found by the heartbeat check");
                }
            }
            for (id, fence) in beat.lost {
                if shared.inflight.stop_run(&id, fence, StopReason::LeaseLost) {
                    tracing::warn!(%id, "lease taken over by another worker; stopping this attempt");
                }
            }
        }
        Err(e) => {
            if e.is_connection_error() {
                shared.health.failed();
            }
            tracing::warn!(error = %e, "heartbeat failed");
        }
    }
}

async fn reap(shared: &Shared) {
    let lock_for = shared.config.worker.heartbeat_interval * 3;
    match shared.store.reap(&shared.worker_id, lock_for, 100).await {
        Ok(Some(ids)) => {
            for id in ids {
                tracing::warn!(%id, "lease expired (its worker died or hung); task handed back");
                metrics::counter!("taskfleet_leases_reaped_total").increment(1);
            }
            // The lock holder sweeps too: one sweeper per fleet, no extra lease.
            crate::expiry::sweep(shared).await;
        }
        Ok(None) => {}
        Err(e) => tracing::debug!(error = %e, "reaper pass failed"),
    }
}

/// Listens on `{ns}:cancellations` and stops matching in-flight tasks at once.
/// Resubscribes after any error; what it misses, the heartbeat check catches.
pub(crate) async fn cancel_listener(shared: Arc<Shared>, stop: CancellationToken) {
    let mut backoff = ReconnectPolicy::SESSION.start();
    loop {
        let session = async {
            let mut pubsub = shared
                .store
                .subscribe(&shared.names.cancellations_channel())
                .await?;
            tracing::debug!("listening for cancellations");
            // Requests published while no subscription was live are lost to pub/sub:
            // look at the flags now rather than at the next heartbeat.
            stop_flagged(&shared).await;
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Ok(id) = String::from_utf8_lossy(msg.get_payload_bytes()).parse::<TaskId>()
                else {
                    continue;
                };
                if shared.inflight.stop(&id, StopReason::Cancelled) {
                    tracing::info!(%id, "cancellation received");
                }
            }
            Ok::<(), taskfleet_common::store::StoreError>(())
        };
        tokio::select! {
            r = session => match r {
                // It was subscribed until the connection ended: a fresh loss, so
                // resubscribe after the shortest pause, not the backoff of earlier ones.
                Ok(()) => {
                    tracing::debug!("cancellation listener lost its connection");
                    backoff.reset();
                }
                Err(e) => tracing::debug!(error = %e, "cancellation listener cannot subscribe"),
            },
            _ = stop.cancelled() => return,
        }
        if !backoff.wait(&stop).await {
            return;
        }
    }
}

/// Stops the in-flight tasks whose cancellation flag is set.
async fn stop_flagged(shared: &Shared) {
    let mut ids: Vec<_> = shared
        .inflight
        .runs()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids.dedup();
    match shared.store.cancel_flags(&ids).await {
        Ok(flags) => {
            for (id, _) in ids.iter().zip(flags).filter(|(_, set)| *set) {
                if shared.inflight.stop(id, StopReason::Cancelled) {
                    tracing::info!(%id, "cancellation found on resubscribing");
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not check cancellation flags"),
    }
}
