//! Recovery time of a cluster scenario: the `completed` counter sampled every 250 ms
//! in the background; the time from the fault until the throughput over a trailing
//! second is back to half its level in the 2 s before the fault.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use taskfleet_common::Names;
use tokio::task::JoinHandle;

const EVERY: Duration = Duration::from_millis(250);
const BEFORE: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(1);

pub struct Sampler {
    samples: Arc<Mutex<Vec<(Instant, i64)>>>,
    task: JoinHandle<()>,
}

impl Sampler {
    pub fn start(redis_url: String, names: Names) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let into = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                // A read that fails (the primary is gone) is no sample, not a zero.
                if let Some(n) = super::tally::try_counter(&redis_url, &names).await {
                    into.lock().expect("samples").push((Instant::now(), n));
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        Self { samples, task }
    }

    /// Seconds from `fault` until throughput was back to half; `None` if it never was
    /// (or there was no throughput to compare with before the fault).
    pub fn recovery(&self, fault: Instant) -> Option<Duration> {
        let s = self.samples.lock().expect("samples").clone();
        let at = |t: Instant| -> Option<i64> {
            s.iter().rev().find(|(when, _)| *when <= t).map(|(_, n)| *n)
        };
        let before = (at(fault)? - at(fault - BEFORE)?) as f64 / BEFORE.as_secs_f64();
        if before <= 0.0 {
            return None;
        }
        s.iter()
            .filter(|(when, _)| *when >= fault + WINDOW)
            .find(|(when, n)| {
                at(*when - WINDOW)
                    .is_some_and(|then| (*n - then) as f64 / WINDOW.as_secs_f64() >= before / 2.0)
            })
            .map(|(when, _)| *when - fault)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}
