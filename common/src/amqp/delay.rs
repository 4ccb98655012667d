//! Broker-held delays: retries, scheduled tasks and parked copies.
//!
//! A delayed copy waits in RabbitMQ, never in a worker: it is published (via the
//! default exchange) to `{ns}.delay.{type}.{ms}`, a queue whose every message has the
//! same TTL (`x-message-ttl`) and which dead-letters to `{ns}.tasks` with routing key
//! = type (`x-dead-letter-routing-key`) when a message expires. One TTL per queue
//! means expiry order is arrival order, so a short delay is never stuck behind a long
//! one (the head-of-line problem of per-message TTLs in one shared queue).
//!
//! The delays are tiers of `MIN_TIER_MS × 2^k` (64 ms … about 50 days): a copy takes
//! the longest tier that does not pass its due time, and when it comes back early the
//! claim sends it on for the rest (each hop at least halves what is left), so a type
//! has at most [`TIERS`] delay queues however many distinct delays exist, and a copy
//! is due at most one shortest tier (plus a hop's latency) late, never early. Each
//! queue deletes itself (`x-expires`) a while after its last declaration; publishers
//! redeclare it before every publish, so it never expires while holding a message.

use super::AmqpError;
use crate::config::QueueType;
use crate::ids::TaskType;
use crate::names::Names;
use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::AMQPValue;
use std::time::Duration;

/// Header of a parked copy: the envelope of a run that is still going, left in a
/// delay queue so RabbitMQ holds a copy of the task while no delivery is unacked.
/// When it comes back, the claim checks on the run instead of starting one.
pub const PARKED: &str = "x-taskfleet-parked";

/// The shortest delay tier, ms.
pub const MIN_TIER_MS: u64 = 64;
/// Number of tiers: the longest holds `MIN_TIER_MS × 2^(TIERS-1)` ≈ 49.7 days.
pub const TIERS: u32 = 27;

/// Longest delay a task may be scheduled ahead.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(60 * 60 * 24 * 45);

/// The tier a delay waits in: the longest tier not longer than `delay`, or the
/// shortest one for a delay shorter than that (it arrives at most that much late,
/// never early); `None` for no delay at all.
pub fn tier(delay: Duration) -> Option<u64> {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return None;
    }
    let k = (ms / MIN_TIER_MS).max(1).ilog2().min(TIERS - 1);
    Some(MIN_TIER_MS << k)
}

/// How long an idle delay queue outlives its TTL before RabbitMQ deletes it.
const IDLE_MARGIN: Duration = Duration::from_secs(60);

/// Declares the delay queue of `task_type` for `delay_ms` and returns its name.
pub async fn declare(
    ch: &Channel,
    names: &Names,
    queue_type: QueueType,
    task_type: &TaskType,
    delay_ms: u64,
) -> Result<String, AmqpError> {
    let queue = names.delay_queue(task_type, delay_ms);
    let mut args = super::topology::replicated(queue_type);
    if queue_type == QueueType::Quorum {
        // A quorum queue dead-letters at most once by default: a node lost at the
        // moment of expiry could drop the delayed task. At least once needs
        // reject-publish overflow (RabbitMQ 3.10+).
        args.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    }
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(delay_ms as i64),
    );
    args.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt((delay_ms + IDLE_MARGIN.as_millis() as u64) as i64),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(names.tasks_exchange().into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(task_type.as_str().into()),
    );
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_are_bounded_and_never_pass_the_delay() {
        assert_eq!(tier(Duration::ZERO), None);
        assert_eq!(tier(Duration::from_millis(1)), Some(64));
        assert_eq!(tier(Duration::from_millis(63)), Some(64));
        assert_eq!(tier(Duration::from_millis(64)), Some(64));
        assert_eq!(tier(Duration::from_millis(1000)), Some(512));
        assert_eq!(tier(Duration::from_secs(3)), Some(2048));
        let mut seen = std::collections::BTreeSet::new();
        for ms in (64..=MAX_SCHEDULE_AHEAD.as_millis() as u64).step_by(997_331) {
            let t = tier(Duration::from_millis(ms)).expect("a tier");
            assert!(
                t <= ms && t * 2 > ms.min(MIN_TIER_MS << (TIERS - 1)),
                "{ms} -> {t}"
            );
            seen.insert(t);
        }
        assert!(seen.len() <= TIERS as usize, "{}", seen.len());
    }
}
