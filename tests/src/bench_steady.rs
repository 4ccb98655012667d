//! `scripts/bench --mode steady`: the highest rate a pipeline sustains while tasks are
//! enqueued and consumed at once. The offered rate ramps up by a factor per step;
//! each step offers its rate for a fixed window, and counts as sustained when the
//! submitter kept up (≥ 95 % of the offered count) and the backlog at the end of the
//! window is at most 5 % of the step's tasks plus what the consumers may hold
//! (workers × concurrency). Between steps the backlog drains. The ramp ends at the
//! first step not sustained — then two more steps bisect (geometrically) between the
//! best sustained rate and the lowest failed one — or when the next step would pass
//! the task budget; the result is the completion rate measured during the highest
//! sustained step.

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use std::future::Future;
use std::time::{Duration, Instant};

/// What the ramp drives: one submission at a time, and a count of finished tasks.
pub trait Pipeline {
    fn submit(&self) -> impl Future<Output = ()>;
    fn finished(&self) -> impl Future<Output = u64>;
}

/// The ramp's settings.
pub struct Ramp {
    pub start_rate: f64,
    pub factor: f64,
    pub window: Duration,
    /// At most this many tasks over the whole ramp.
    pub budget: u64,
    /// Tasks the consumers may hold at once (workers × concurrency).
    pub in_flight: u64,
}

/// The ramp's outcome.
pub struct Sustained {
    /// Completions per second during the highest sustained step (0 if none).
    pub rate: f64,
    /// The offered rate of that step.
    pub offered: f64,
    /// Tasks submitted over the whole ramp.
    pub submitted: u64,
    /// Whether the task budget ended the ramp before a step failed.
    pub capped: bool,
}

/// The backlog a sustained step may end with, as a share of the tasks it offered
/// (plus what the consumers hold): 5 % of a 3 s window is 150 ms of work queued.
const BACKLOG_SHARE: f64 = 0.05;

/// Bisection steps after the first step not sustained.
const REFINE: u32 = 2;

/// Runs the ramp against `p`, printing one line per step.
pub async fn ramp<P: Pipeline>(label: &str, p: &P, r: &Ramp) -> Sustained {
    let mut best = Sustained {
        rate: 0.0,
        offered: 0.0,
        submitted: 0,
        capped: false,
    };
    let mut rate = r.start_rate;
    // The lowest offered rate not sustained, once one was seen; then up to
    // `REFINE` steps bisect (geometrically) between it and the best sustained one.
    let mut failed: Option<f64> = None;
    let mut refine = REFINE;
    loop {
        let want = (rate * r.window.as_secs_f64()) as u64;
        if best.submitted + want > r.budget {
            println!(
                "  {label}: next step ({rate:.0}/s) would pass the task budget ({}); stop — the rate is a lower bound",
                r.budget
            );
            best.capped = true;
            break;
        }
        let before = p.finished().await;
        let t0 = Instant::now();
        let sent = offer(p, rate, r.window).await;
        let after = p.finished().await;
        let elapsed = t0.elapsed().as_secs_f64();
        best.submitted += sent;
        let backlog = (before + sent).saturating_sub(after);
        let done_rate = (after - before) as f64 / elapsed;
        let kept_up = sent as f64 >= want as f64 * 0.95;
        let bounded = backlog as f64 <= want as f64 * BACKLOG_SHARE + r.in_flight as f64;
        println!(
            "  {label}: offered {rate:.0}/s, sent {sent}, completed {done_rate:.0}/s, backlog {backlog} -> {}",
            match (kept_up, bounded) {
                (true, true) => "sustained",
                (false, _) => "submitter fell behind",
                (true, false) => "backlog grew",
            }
        );
        // Drain before the next step, so each starts from an empty queue.
        let target = before + sent;
        let drain_deadline = Instant::now() + Duration::from_secs(120);
        while p.finished().await < target && Instant::now() < drain_deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if kept_up && bounded {
            if rate > best.offered {
                best.rate = done_rate;
                best.offered = rate;
            }
        } else {
            failed = Some(failed.map_or(rate, |f| f.min(rate)));
        }
        rate = match failed {
            None => rate * r.factor,
            Some(_) if refine == 0 || best.offered == 0.0 => break,
            Some(f) => {
                refine -= 1;
                (best.offered * f).sqrt()
            }
        };
    }
    best
}

/// Submits at `rate` for `window` (up to 1,024 submissions awaiting at once); how
/// many were submitted.
async fn offer<P: Pipeline>(p: &P, rate: f64, window: Duration) -> u64 {
    let t0 = Instant::now();
    let want = (rate * window.as_secs_f64()) as u64;
    let mut sent = 0u64;
    let mut pending = FuturesUnordered::new();
    while t0.elapsed() < window {
        let due = ((t0.elapsed().as_secs_f64() * rate) as u64).min(want);
        while sent < due && pending.len() < 1024 {
            pending.push(p.submit());
            sent += 1;
        }
        tokio::select! {
            Some(()) = pending.next(), if !pending.is_empty() => {}
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    }
    while pending.next().await.is_some() {}
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Completes at most `cap` tasks per second, whatever is offered.
    struct Capped {
        cap: f64,
        sent: AtomicU64,
        done: Mutex<(f64, Instant)>,
    }

    impl Pipeline for Capped {
        async fn submit(&self) {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        async fn finished(&self) -> u64 {
            let sent = self.sent.load(Ordering::Relaxed) as f64;
            let mut d = self.done.lock().expect("lock");
            let now = Instant::now();
            d.0 = (d.0 + self.cap * (now - d.1).as_secs_f64()).min(sent);
            d.1 = now;
            d.0 as u64
        }
    }

    #[tokio::test]
    async fn the_ramp_finds_a_capped_pipelines_rate() {
        let p = Capped {
            cap: 4_000.0,
            sent: AtomicU64::new(0),
            done: Mutex::new((0.0, Instant::now())),
        };
        let r = Ramp {
            start_rate: 500.0,
            factor: 1.3,
            window: Duration::from_millis(400),
            budget: 1_000_000,
            in_flight: 10,
        };
        let s = ramp("capped", &p, &r).await;
        // Within the ramp's resolution below the cap (1.3 bisected twice ≈ 7 %).
        // The backlog allowance (5 % + in flight) lets a step pass a little above it.
        assert!(
            s.offered > 3_400.0 && s.offered <= 4_400.0 && s.rate <= 4_040.0,
            "sustained {:.0}/s offered ({:.0}/s completed) against a 4000/s cap",
            s.offered,
            s.rate
        );
        assert!(!s.capped);
    }
}
