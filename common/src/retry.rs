//! The retry policy: exponential backoff with jitter. The only file that knows the
//! `backoff` crate (unmaintained upstream), so it can be swapped here alone.

use crate::config::BackoffConfig;
use backoff::backoff::Backoff;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub backoff: BackoffConfig,
}

impl RetryPolicy {
    /// Whether an attempt that just failed may be followed by another.
    pub fn should_retry(&self, failed_attempt: u32) -> bool {
        failed_attempt < self.max_attempts
    }

    /// The delay before attempt `failed_attempt + 1`: `initial * multiplier^(n-1)`,
    /// capped at `max`, randomised by ±`jitter`.
    pub fn delay_after(&self, failed_attempt: u32) -> Duration {
        let b = &self.backoff;
        let mut eb = backoff::ExponentialBackoff {
            current_interval: b.initial,
            initial_interval: b.initial,
            randomization_factor: b.jitter,
            multiplier: b.multiplier,
            max_interval: b.max,
            max_elapsed_time: None,
            ..Default::default()
        };
        let mut delay = b.initial;
        for _ in 0..failed_attempt.max(1) {
            delay = eb.next_backoff().unwrap_or(b.max);
        }
        // Jitter may push a capped delay above `max`; the cap is a promise.
        delay.min(b.max.mul_f64(1.0 + b.jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff: BackoffConfig {
                initial: Duration::from_secs(1),
                multiplier: 2.0,
                max: Duration::from_secs(10),
                jitter,
            },
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let p = policy(0.0);
        let got: Vec<u64> = (1..=6)
            .map(|n| p.delay_after(n).as_millis() as u64)
            .collect();
        assert_eq!(got, vec![1000, 2000, 4000, 8000, 10000, 10000]);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = policy(0.25);
        for _ in 0..200 {
            let d = p.delay_after(2).as_millis() as u64;
            assert!((1500..=2500).contains(&d), "{d}");
        }
    }

    #[test]
    fn retries_stop_at_max_attempts() {
        let p = policy(0.0);
        assert!(p.should_retry(4));
        assert!(!p.should_retry(5));
    }
}
