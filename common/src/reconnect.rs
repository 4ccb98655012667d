//! The one reconnect policy of the workspace: how long to wait before trying a lost
//! server again. Every reconnect or retry-while-unreachable loop (the consumer, the
//! cancellation listener, the worker's commit, the producer's record and publish)
//! draws its pauses from a [`Reconnect`] made from one of the policies below, so
//! their shape (exponential, capped, jittered) is decided here alone.

use std::time::Duration;

/// Exponential backoff with jitter for reconnecting to RabbitMQ or Redis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Each pause is randomised by ±`jitter` (0.0–1.0) so a fleet that lost its
    /// server at one instant does not come back in lockstep.
    pub jitter: f64,
}

impl ReconnectPolicy {
    /// Sessions: a worker's RabbitMQ connection, the cancellation subscription.
    pub const SESSION: ReconnectPolicy = ReconnectPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
        multiplier: 2.0,
        jitter: 0.2,
    };

    /// A single call retried while its server restarts (a commit, a record, a
    /// publish), within a deadline set by the caller.
    pub const CALL: ReconnectPolicy = ReconnectPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        multiplier: 2.0,
        jitter: 0.2,
    };

    pub fn start(self) -> Reconnect {
        Reconnect {
            policy: self,
            next: self.initial,
        }
    }
}

/// The pauses of one loop: each call to [`Reconnect::pause`] is longer than the last
/// (up to the cap) until [`Reconnect::reset`].
#[derive(Debug, Clone)]
pub struct Reconnect {
    policy: ReconnectPolicy,
    next: Duration,
}

impl Reconnect {
    /// The pause to wait now; the next one grows by the multiplier.
    pub fn pause(&mut self) -> Duration {
        let p = self.policy;
        let base = self.next;
        self.next = base.mul_f64(p.multiplier).min(p.max);
        jittered(base, p.jitter)
    }

    /// The pause `pause` would return next, without jitter (for logs).
    pub fn upcoming(&self) -> Duration {
        self.next
    }

    /// Back to the first pause: the connection was healthy for a while.
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }

    /// Sleeps the next pause unless `stop` fires first; false when stopped.
    pub async fn wait(&mut self, stop: &tokio_util::sync::CancellationToken) -> bool {
        let pause = self.pause();
        tokio::select! {
            _ = tokio::time::sleep(pause) => true,
            _ = stop.cancelled() => false,
        }
    }
}

fn jittered(base: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return base;
    }
    // uuid's v4 generator is already a dependency; a random factor needs no more.
    let r = uuid::Uuid::new_v4().as_u64_pair().0 as f64 / u64::MAX as f64;
    base.mul_f64(1.0 - jitter + 2.0 * jitter * r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_to_the_cap_and_reset() {
        let mut r = ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::SESSION
        }
        .start();
        let got: Vec<u64> = (0..7).map(|_| r.pause().as_millis() as u64).collect();
        assert_eq!(got, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
        r.reset();
        assert_eq!(r.pause(), Duration::from_millis(200));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let mut r = ReconnectPolicy::CALL.start();
        for _ in 0..100 {
            r.reset();
            let p = r.pause().as_millis() as u64;
            assert!((80..=120).contains(&p), "{p}");
        }
    }
}
