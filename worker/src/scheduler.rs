//! The scheduler: every worker runs it, and for each `[schedules.NAME]` one worker at
//! a time leads (a lease in the schedule's own Redis hash, renewed every pass and taken
//! over within a lease of its holder dying). The leader enqueues each due tick with
//! the idempotency key `schedule:NAME:TICK_MS`, so a tick is one task fleet-wide even
//! when two workers believe they lead at the instant of a takeover; then it records
//! the tick and the next one (fenced on the lease). Ticks missed while no worker led
//! are skipped (`catch_up = "none"`) or the latest is fired once (`"one"`).

use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use taskfleet_common::TaskId;
use taskfleet_common::amqp::{AmqpError, Publish, publish_confirmed};
use taskfleet_common::config::{CatchUp, Schedule};
use taskfleet_common::envelope::Envelope;
use taskfleet_common::store::{EnqueueOutcome, Lead, LeadRequest, NewTask, StoreError};
use tokio_util::sync::CancellationToken;

/// How often the scheduler looks at its schedules.
const PASS: Duration = Duration::from_millis(100);
/// Most missed ticks walked through to find the latest one (`catch_up = "one"`).
const MAX_WALK: usize = 100_000;

#[derive(Debug, thiserror::Error)]
enum TickError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Amqp(#[from] AmqpError),
    #[error("no RabbitMQ connection to publish the tick on")]
    NoLink,
    #[error("the schedule has no tick after {0}")]
    NoNextTick(u64),
}

pub(crate) async fn scheduler_loop(
    shared: Arc<Shared>,
    schedules: Vec<Schedule>,
    stop: CancellationToken,
) {
    if schedules.is_empty() {
        return;
    }
    let lease = (shared.config.worker.heartbeat_interval * 2).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(PASS) => {}
            _ = stop.cancelled() => return,
        }
        for s in &schedules {
            if let Err(e) = pass(&shared, s, lease).await {
                tracing::warn!(schedule = %s.name, error = %e, "schedule pass failed; trying again");
            }
        }
    }
}

async fn pass(shared: &Shared, s: &Schedule, lease: Duration) -> Result<(), TickError> {
    let request = LeadRequest {
        schedule: &s.name,
        worker: &shared.worker_id,
        lease,
        task_type: s.task_type.as_str(),
    };
    let Lead::Leading { now, next_at } = shared.store.lead(request, s.timing.describe()).await?
    else {
        return Ok(());
    };
    let next_after = |t: u64| s.timing.next_after(t).ok_or(TickError::NoNextTick(t));
    let Some(due) = next_at else {
        // The schedule's first leader: its first tick is the next one from now.
        shared
            .store
            .fired(&s.name, &shared.worker_id, next_after(now)?, None)
            .await?;
        return Ok(());
    };
    if now < due {
        return Ok(());
    }
    // Later than a takeover allows: no scheduler ran at that tick.
    let missed = now - due > (lease + Duration::from_secs(1)).as_millis() as u64;
    let fire = match (missed, s.catch_up) {
        (false, _) => Some(due),
        (true, CatchUp::None) => None,
        (true, CatchUp::One) => Some(latest_tick(s, due, now)),
    };
    let next = if missed {
        next_after(now)?
    } else {
        next_after(due)?
    };
    let fired = match fire {
        Some(tick) => Some((tick, enqueue_tick(shared, s, tick).await?)),
        None => {
            tracing::info!(schedule = %s.name, missed_since = due, "ticks missed while no scheduler ran; skipped (catch_up = none)");
            None
        }
    };
    if !shared
        .store
        .fired(&s.name, &shared.worker_id, next, fired)
        .await?
    {
        tracing::debug!(schedule = %s.name, "lost the lead while firing; the new leader goes on");
    }
    Ok(())
}

/// The latest tick at or before `now`, from the overdue `due`.
fn latest_tick(s: &Schedule, due: u64, now: u64) -> u64 {
    let mut latest = due;
    for _ in 0..MAX_WALK {
        match s.timing.next_after(latest) {
            Some(t) if t <= now => latest = t,
            _ => break,
        }
    }
    latest
}

/// Records and publishes the task of one tick, once fleet-wide; its id.
async fn enqueue_tick(shared: &Shared, s: &Schedule, tick: u64) -> Result<TaskId, TickError> {
    let key = format!("schedule:{}:{tick}", s.name);
    let settings = shared.config.type_settings(&s.task_type);
    let id = TaskId::new();
    let task = NewTask {
        id,
        task_type: &s.task_type,
        payload: &s.payload,
        max_attempts: Some(settings.max_attempts),
        priority: Some(settings.priority),
        trace_id: None,
        created_at: None,
        idempotency_key: Some(&key),
        run_at: None,
        expires_at: None,
        group: None,
        after: &[],
        envelope: None,
    };
    match shared.store.enqueue(&task).await? {
        EnqueueOutcome::Exists(existing) if existing != id => return Ok(existing),
        // No parents: never held, never an unknown parent.
        _ => {}
    }
    if let Err(e) = publish(shared, s, id).await {
        // Unpublished: the key must not claim the tick, or it would never run.
        shared.store.abandon(&id, &s.task_type, Some(&key)).await?;
        return Err(e);
    }
    tracing::info!(schedule = %s.name, tick, %id, "schedule fired");
    metrics::counter!("taskfleet_schedule_fired_total", "schedule" => s.name.clone()).increment(1);
    Ok(id)
}

async fn publish(shared: &Shared, s: &Schedule, id: TaskId) -> Result<(), TickError> {
    let timeout = shared.config.network_timeout;
    let link = shared.link.live(timeout).await.ok_or(TickError::NoLink)?;
    link.bounded(
        "declaring a queue",
        shared.topology.declare_type(&link.publish, &s.task_type),
    )
    .await?;
    let body = format!(
        r#"{{"id":"{id}","type":"{}","payload":{}}}"#,
        s.task_type, s.payload
    );
    // The body is built from validated parts; parsing it back proves it is an envelope.
    debug_assert!(Envelope::parse(body.as_bytes(), usize::MAX).is_ok());
    let exchange = shared.names.tasks_exchange();
    let msg = Publish {
        exchange: &exchange,
        routing_key: s.task_type.as_str(),
        body: body.as_bytes(),
        message_id: &id.to_string(),
        task_type: s.task_type.as_str(),
        priority: shared.config.type_settings(&s.task_type).priority,
        headers: Vec::new(),
    };
    publish_confirmed(&link.publish, &msg, timeout).await?;
    Ok(())
}
