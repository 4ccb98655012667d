//! `scripts/bench`: the reference benchmark of docs/performance.md, measured on this machine
//! against the real servers, with release worker processes, for no-op (`echo`) tasks with
//! full status.
//!
//! 1. throughput, `--mode drain` (N tasks pre-enqueued, then W workers drain them; tasks/s
//!    from the first start to the last finish, Redis clock) or `--mode steady` (the
//!    highest rate sustained while enqueueing and consuming at once, `bench_steady`);
//!    worker CPU and peak RSS over that phase, from /proc.
//! 2. the same workload through a minimal lapin + Redis pipeline (`baseline`), and the ratio.
//! 3. start latency p50/p99 at half the measured throughput (created -> started).
//! 4. Redis memory per finished task (`MEMORY USAGE` of a sample of those records).
//! 5. cancel latency p50/p99 of running `sleep` tasks (cancel requested -> cancelled).
//! 6. unless `--no-probes`: timings the test suite asserts only with generous bounds
//!    (`taskfleet_tests::bench`).
//!
//! Then a table, and as the last line one JSON object with the figures.

use redis::AsyncCommands;
use std::time::{Duration, Instant};
use taskfleet_common::store::StateStore;
use taskfleet_common::{TaskId, TaskState, TaskType};
use taskfleet_producer::{EnqueueRequest, Producer};
use taskfleet_tests::baseline::Baseline;
use taskfleet_tests::bench::percentile;
use taskfleet_tests::bench_report::{self, Args, Figures, Mode};
use taskfleet_tests::bench_steady::{self, Pipeline, Ramp};
use taskfleet_tests::process::WorkerProcess;
use taskfleet_tests::procfs::{cpu_seconds, peak_rss_kib};
use taskfleet_tests::{cleanup, eventually, redis_direct, test_config};

async fn enqueue_many(
    producer: &Producer,
    n: usize,
    task_type: &str,
    payload: &str,
) -> Vec<TaskId> {
    use futures_util::StreamExt;
    let req = EnqueueRequest::new(task_type, payload).expect("request");
    futures_util::stream::iter(0..n)
        .map(|_| {
            let req = req.clone();
            async move { producer.enqueue(&req).await.expect("enqueue").id }
        })
        .buffered(512)
        .collect()
        .await
}

/// The fleet, as the steady ramp drives it: one enqueue per submission, completions
/// from the type's counters.
struct Fleet<'a> {
    producer: &'a Producer,
    task_type: TaskType,
}

impl Pipeline for Fleet<'_> {
    async fn submit(&self) {
        let req = EnqueueRequest::new("echo", "{}").expect("request");
        self.producer.enqueue(&req).await.expect("enqueue");
    }
    async fn finished(&self) -> u64 {
        let s = self.producer.store().type_stats(&self.task_type).await;
        s.map(|s| s.completed.max(0) as u64).unwrap_or(0)
    }
}

fn ramp(a: &Args) -> Ramp {
    Ramp {
        start_rate: 500.0,
        factor: 1.3,
        window: Duration::from_secs(3),
        budget: a.tasks as u64,
        in_flight: (a.workers * a.concurrency) as u64,
    }
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("probes") {
        probes().await;
        return;
    }
    let default_concurrency = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let a = match bench_report::parse(&argv, default_concurrency) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut config = test_config();
    config.worker.heartbeat_interval = Duration::from_secs(2);
    config.worker.lease = Duration::from_secs(10);
    let producer = Producer::connect(config.clone())
        .await
        .expect("producer connects");
    let store = producer.store().clone();
    let dir = std::env::temp_dir();
    let concurrency = a.concurrency.to_string();
    let worker_args = [
        "--types",
        "echo,sleep",
        "--concurrency",
        concurrency.as_str(),
    ];
    let t: TaskType = "echo".parse().expect("type");
    let start_workers = || async {
        let mut workers: Vec<WorkerProcess> = Vec::new();
        for i in 0..a.workers {
            let log = dir.join(format!("bench-worker-{i}.log"));
            workers.push(WorkerProcess::start(&config, &worker_args, &log).await);
        }
        workers
    };
    let cpu = |workers: &[WorkerProcess]| {
        let pids: Vec<i32> = workers.iter().map(WorkerProcess::pid).collect();
        async move {
            let mut s = 0.0;
            for p in pids {
                s += cpu_seconds(p).await;
            }
            s
        }
    };

    // 1. Throughput of the fleet.
    println!("fleet, {} mode:", a.mode);
    let (workers, end_to_end, done, cpu_used) = match a.mode {
        Mode::Drain => {
            let t0 = Instant::now();
            let ids = enqueue_many(&producer, a.tasks, "echo", "{}").await;
            let enqueue_rate = a.tasks as f64 / t0.elapsed().as_secs_f64();
            // The workers consume as soon as each starts: their CPU counts from
            // their start (start-up included, a few ms).
            let workers = start_workers().await;
            let n = a.tasks;
            eventually(Duration::from_secs(600), "all tasks completed", || async {
                let s = store.type_stats(&t).await.ok()?;
                (s.completed as usize >= n).then_some(())
            })
            .await;
            let cpu_used = cpu(&workers).await;
            let rate = drained_rate(&store, &ids).await;
            println!("  {n} tasks pre-enqueued at {enqueue_rate:.0}/s, drained at {rate:.0}/s");
            (workers, rate, n as u64, cpu_used)
        }
        Mode::Steady => {
            let workers = start_workers().await;
            let queue = taskfleet_common::Names::new(config.namespace.clone()).queue(&t);
            eventually(Duration::from_secs(30), "workers consuming", || async {
                taskfleet_tests::amqp::queue_depth(&config.amqp_url, &queue)
                    .await
                    .filter(|(_, c)| *c as usize >= a.workers)
                    .map(|_| ())
            })
            .await;
            let cpu0 = cpu(&workers).await;
            let fleet = Fleet {
                producer: &producer,
                task_type: t.clone(),
            };
            let r = bench_steady::ramp("fleet", &fleet, &ramp(&a)).await;
            let cpu_used = cpu(&workers).await - cpu0;
            (workers, r.rate, r.submitted, cpu_used)
        }
    };
    let mut rss_kib = 0;
    for w in &workers {
        rss_kib = rss_kib.max(peak_rss_kib(w.pid()).await);
    }

    // 2. The baseline on the same workload.
    println!("baseline, {} mode:", a.mode);
    let mut baseline = Baseline::declare(
        &config.amqp_url,
        &config.redis_url,
        config.namespace.as_str(),
    )
    .await;
    let concurrency16 = a.concurrency.min(u16::MAX as usize) as u16;
    let baseline_rate = match a.mode {
        Mode::Drain => {
            let r = baseline.drain(a.tasks, a.workers, concurrency16).await;
            println!("  {} tasks drained at {r:.0}/s", a.tasks);
            r
        }
        Mode::Steady => {
            baseline.start(a.workers, concurrency16).await;
            bench_steady::ramp("baseline", &baseline, &ramp(&a))
                .await
                .rate
        }
    };
    baseline.remove().await;

    // 3. Start latency at about half load: paced enqueues for a few seconds.
    let rate = (end_to_end / 2.0).clamp(100.0, 20_000.0);
    let count = (rate * 5.0) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
    let before = store.type_stats(&t).await.map(|s| s.completed).unwrap_or(0) as usize;
    let started = Instant::now();
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        let p = producer.clone();
        // Spawned, so each enqueue runs at its own pace rather than when polled.
        handles.push(tokio::spawn(async move {
            let req = EnqueueRequest::new("echo", "{}").expect("request");
            p.enqueue(&req).await.expect("enqueue").id
        }));
    }
    let mut paced = Vec::with_capacity(count);
    for h in handles {
        paced.push(h.await.expect("enqueue task"));
    }
    eventually(
        Duration::from_secs(120),
        "paced tasks completed",
        || async {
            let s = store.type_stats(&t).await.ok()?;
            (s.completed as usize >= before + count).then_some(())
        },
    )
    .await;
    let mut lat = Vec::new();
    for id in &paced {
        if let Ok(Some(r)) = store.get(id).await {
            let c: Option<u64> = r.get("created_at").and_then(|v| v.parse().ok());
            let s: Option<u64> = r.get("started_at").and_then(|v| v.parse().ok());
            if let (Some(c), Some(s)) = (c, s) {
                lat.push(s.saturating_sub(c));
            }
        }
    }
    println!("start latency: {} tasks paced at {rate:.0}/s", lat.len());

    // 4. Memory per finished record, sampled from the paced tasks.
    let mut conn = redis_direct::connection(&config.redis_url).await;
    let names = taskfleet_common::Names::new(config.namespace.clone());
    let mut bytes = Vec::new();
    for id in paced.iter().step_by((paced.len() / 200).max(1)) {
        let b: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(names.task_key(id))
            .query_async(&mut conn)
            .await
            .ok()
            .flatten();
        bytes.extend(b);
    }
    let avg = bytes.iter().sum::<u64>() / bytes.len().max(1) as u64;

    // 5. Cancel latency of running sleep tasks.
    let mut cancel = cancel_latencies(&producer).await;

    for w in &workers {
        w.signal(nix::sys::signal::Signal::SIGTERM);
    }
    drop(workers);
    let _: Result<(), _> = conn.del::<_, ()>(names.types_key()).await;
    producer.close().await;
    cleanup(&config).await;

    if a.probes {
        probes().await;
    }
    let figures = Figures {
        end_to_end_per_s: end_to_end,
        baseline_per_s: baseline_rate,
        start_p50_ms: percentile(&mut lat, 0.5),
        start_p99_ms: percentile(&mut lat, 0.99),
        start_rate: rate,
        cancel_p50_ms: percentile(&mut cancel, 0.5),
        cancel_p99_ms: percentile(&mut cancel, 0.99),
        redis_bytes_per_task: avg,
        worker_rss_mb: rss_kib as f64 / 1024.0,
        worker_cpu_s_per_1000: cpu_used / (done.max(1) as f64) * 1000.0,
    };
    bench_report::print(&a, &figures);
}

/// Tasks/s of the drained `ids`: from the first start to the last finish (Redis clock).
async fn drained_rate(store: &StateStore, ids: &[TaskId]) -> f64 {
    let mut first_start = u64::MAX;
    let mut last_finish = 0;
    for id in ids {
        if let Ok(Some(r)) = store.get(id).await {
            let field = |f: &str| r.get(f).and_then(|v| v.parse::<u64>().ok());
            first_start = first_start.min(field("started_at").unwrap_or(u64::MAX));
            last_finish = last_finish.max(field("finished_at").unwrap_or(0));
        }
    }
    let secs = last_finish.saturating_sub(first_start) as f64 / 1000.0;
    ids.len() as f64 / secs.max(0.001)
}

/// Cancel latency (cancel requested -> cancelled, ms) of 100 running sleep tasks.
async fn cancel_latencies(producer: &Producer) -> Vec<u64> {
    let store = producer.store();
    let sleeps = enqueue_many(producer, 100, "sleep", r#"{"ms":60000}"#).await;

    for id in &sleeps {
        eventually(Duration::from_secs(30), "sleep running", || async {
            store
                .get(id)
                .await
                .ok()
                .flatten()
                .filter(|r| r.state() == Some(TaskState::Running))
                .map(|_| ())
        })
        .await;
    }
    for id in &sleeps {
        store.cancel(id).await.expect("cancel");
    }
    let mut cancel = Vec::new();
    for id in &sleeps {
        let r = eventually(Duration::from_secs(30), "cancelled", || async {
            store
                .get(id)
                .await
                .ok()
                .flatten()
                .filter(|r| r.state() == Some(TaskState::Cancelled))
        })
        .await;
        let field = |f: &str| r.get(f).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        cancel.push(field("finished_at").saturating_sub(field("cancel_requested_at")));
    }
    cancel
}

/// 6. What the suite asserts only as behaviour, with generous bounds.
async fn probes() {
    taskfleet_tests::bench::resubscribe(10).await;
    taskfleet_tests::bench::retry_gaps(10).await;
    taskfleet_tests::bench::registry_exit(5).await;
}
