//! `scripts/bench`'s command line and its output: a table, then as the last line one
//! JSON object with the same figures (for scripts and the README's results table).

use std::fmt;

/// How the throughput is measured.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Pre-fill the queue, then start the consumers and measure until it is empty.
    Drain,
    /// Enqueue and consume at once; the highest rate sustained (`bench_steady`).
    Steady,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Drain => "drain",
            Mode::Steady => "steady",
        })
    }
}

/// What one run measures.
#[derive(Debug)]
pub struct Args {
    pub mode: Mode,
    /// Drain: tasks pre-filled. Steady: the ramp's task budget.
    pub tasks: usize,
    pub workers: usize,
    pub concurrency: usize,
    /// Also run the probes of `taskfleet_tests::bench` (before the table).
    pub probes: bool,
}

pub const USAGE: &str = "usage: scripts/bench [--mode drain|steady] [--tasks N] [--workers W] [--concurrency C] [--no-probes]\n       scripts/bench N        (drain N tasks)\n       scripts/bench probes   (only the timings the suite no longer asserts)";

/// Parses the arguments after the program name; `Err` is the line to print (exit 2).
pub fn parse(args: &[String], default_concurrency: usize) -> Result<Args, String> {
    let mut a = Args {
        mode: Mode::Drain,
        tasks: 0,
        workers: 2,
        concurrency: default_concurrency,
        probes: true,
    };
    let mut tasks = None;
    let mut it = args.iter();
    let number = |flag: &str, v: Option<&String>| -> Result<usize, String> {
        v.and_then(|v| v.parse().ok())
            .filter(|&n: &usize| (1..=10_000_000).contains(&n))
            .ok_or_else(|| format!("{flag} needs a number from 1 to 10000000\n{USAGE}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mode" => {
                a.mode = match it.next().map(String::as_str) {
                    Some("drain") => Mode::Drain,
                    Some("steady") => Mode::Steady,
                    _ => return Err(format!("--mode is drain or steady\n{USAGE}")),
                }
            }
            "--tasks" => tasks = Some(number("--tasks", it.next())?),
            "--workers" => a.workers = number("--workers", it.next())?.min(64),
            "--concurrency" => a.concurrency = number("--concurrency", it.next())?.min(4096),
            "--no-probes" => a.probes = false,
            n if n.parse::<usize>().is_ok() => tasks = Some(number("TASKS", Some(arg))?),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    a.tasks = tasks.unwrap_or(match a.mode {
        Mode::Drain => 20_000,
        Mode::Steady => 300_000,
    });
    Ok(a)
}

/// The figures of one run.
pub struct Figures {
    pub end_to_end_per_s: f64,
    pub baseline_per_s: f64,
    pub start_p50_ms: u64,
    pub start_p99_ms: u64,
    pub start_rate: f64,
    pub cancel_p50_ms: u64,
    pub cancel_p99_ms: u64,
    pub redis_bytes_per_task: u64,
    pub worker_rss_mb: f64,
    pub worker_cpu_s_per_1000: f64,
}

/// Prints the table, then the JSON line (last).
pub fn print(a: &Args, f: &Figures) {
    let ratio = f.end_to_end_per_s / f.baseline_per_s.max(0.001);
    let rows = [
        (
            "mode",
            format!(
                "{} ({} tasks, {} workers x concurrency {})",
                a.mode, a.tasks, a.workers, a.concurrency
            ),
        ),
        ("end to end", format!("{:.0} tasks/s", f.end_to_end_per_s)),
        (
            "baseline (lapin + 3 Redis writes)",
            format!("{:.0} tasks/s", f.baseline_per_s),
        ),
        (
            "ratio",
            format!("{ratio:.2} (target >= 0.75 drain, 0.85 steady)"),
        ),
        (
            "start latency",
            format!(
                "p50 {} ms, p99 {} ms at {:.0} tasks/s (target p99 <= 20 ms)",
                f.start_p50_ms, f.start_p99_ms, f.start_rate
            ),
        ),
        (
            "cancel latency",
            format!(
                "p50 {} ms, p99 {} ms (target p99 <= 100 ms)",
                f.cancel_p50_ms, f.cancel_p99_ms
            ),
        ),
        (
            "redis bytes per finished task",
            format!("{} (target <= 1024)", f.redis_bytes_per_task),
        ),
        (
            "worker RSS (peak, largest)",
            format!("{:.1} MB", f.worker_rss_mb),
        ),
        (
            "worker CPU per 1,000 tasks",
            format!("{:.3} s (all workers)", f.worker_cpu_s_per_1000),
        ),
    ];
    println!();
    for (k, v) in rows {
        println!("{k:<34} {v}");
    }
    let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
    println!(
        "{}",
        serde_json::json!({
            "mode": a.mode.to_string(),
            "tasks": a.tasks,
            "workers": a.workers,
            "concurrency": a.concurrency,
            "end_to_end_per_s": round(f.end_to_end_per_s, 0),
            "baseline_per_s": round(f.baseline_per_s, 0),
            "ratio": round(ratio, 3),
            "start_p50_ms": f.start_p50_ms,
            "start_p99_ms": f.start_p99_ms,
            "cancel_p50_ms": f.cancel_p50_ms,
            "cancel_p99_ms": f.cancel_p99_ms,
            "redis_bytes_per_task": f.redis_bytes_per_task,
            "worker_rss_mb": round(f.worker_rss_mb, 1),
            "worker_cpu_s_per_1000": round(f.worker_cpu_s_per_1000, 3),
        })
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = s.split_whitespace().map(String::from).collect();
        parse(&v, 64)
    }

    #[test]
    fn positional_tasks_is_a_drain() {
        let a = args("50000").expect("accepted");
        assert_eq!(
            (a.mode, a.tasks, a.workers, a.concurrency),
            (Mode::Drain, 50_000, 2, 64)
        );
    }

    #[test]
    fn flags() {
        let a = args("--mode steady --workers 3 --concurrency 16 --no-probes").expect("accepted");
        assert_eq!(
            (a.mode, a.tasks, a.workers, a.concurrency),
            (Mode::Steady, 300_000, 3, 16)
        );
        assert!(!a.probes);
    }

    #[test]
    fn bad_arguments_say_what_is_allowed() {
        assert!(
            args("--mode fast")
                .expect_err("rejected")
                .contains("drain or steady")
        );
        assert!(
            args("--tasks 0")
                .expect_err("rejected")
                .contains("1 to 10000000")
        );
        assert!(args("--frob").expect_err("rejected").contains("usage"));
    }
}
