//! `scripts/bench`: the speed targets of docs/performance.md, measured on this machine against
//! the real servers, with release worker processes.
//!
//! 1. throughput: N no-op (`echo`) tasks pre-enqueued, then two workers drain them;
//!    tasks/s from the first start to the last finish (Redis clock), full status kept.
//! 2. start latency p50/p99 at about half the measured throughput (created → started).
//! 3. cancel latency p50/p99 of running `sleep` tasks (cancel requested → cancelled).
//! 4. Redis memory per finished task (`MEMORY USAGE` of a sample of records).
//! 5. Timings the test suite asserts only with generous bounds (`taskfleet_tests::bench`):
//!    the cancellation listener's resubscribe pause, retry gaps against the policy,
//!    a killed worker's exit from the registry.

use redis::AsyncCommands;
use std::time::{Duration, Instant};
use taskfleet_common::{TaskId, TaskState};
use taskfleet_producer::{EnqueueRequest, Producer};
use taskfleet_tests::bench::percentile;
use taskfleet_tests::process::WorkerProcess;
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

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("probes") {
        probes().await;
        return;
    }
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let concurrency = std::env::var("BENCH_CONCURRENCY").unwrap_or_else(|_| "64".into());
    let mut config = test_config();
    config.worker.heartbeat_interval = Duration::from_secs(2);
    config.worker.lease = Duration::from_secs(10);
    let producer = Producer::connect(config.clone())
        .await
        .expect("producer connects");
    let store = producer.store().clone();
    let dir = std::env::temp_dir();

    // 1. Throughput.
    let t0 = Instant::now();
    let ids = enqueue_many(&producer, n, "echo", "{}").await;
    let enqueue_rate = n as f64 / t0.elapsed().as_secs_f64();
    let args = [
        "--types",
        "echo,sleep",
        "--concurrency",
        concurrency.as_str(),
    ];
    let mut workers: Vec<WorkerProcess> = Vec::new();
    for i in 0..2 {
        let log = dir.join(format!("bench-worker-{i}.log"));
        workers.push(WorkerProcess::start(&config, &args, &log).await);
    }
    let t = "echo".parse().expect("type");
    eventually(Duration::from_secs(600), "all tasks completed", || async {
        let s = store.type_stats(&t).await.ok()?;
        (s.completed as usize >= n).then_some(())
    })
    .await;
    let mut first_start = u64::MAX;
    let mut finishes: Vec<u64> = Vec::with_capacity(n);
    for id in &ids {
        if let Ok(Some(r)) = store.get(id).await {
            let field = |f: &str| r.get(f).and_then(|v| v.parse::<u64>().ok());
            first_start = first_start.min(field("started_at").unwrap_or(u64::MAX));
            finishes.extend(field("finished_at"));
        }
    }
    finishes.sort_unstable();
    let last_finish = finishes.last().copied().unwrap_or(0);
    let secs = (last_finish.saturating_sub(first_start)) as f64 / 1000.0;
    let throughput = n as f64 / secs.max(0.001);
    // The steady rate: the middle 80 % of completions, without start-up and tail.
    let (p10, p90) = (
        finishes[finishes.len() / 10],
        finishes[finishes.len() * 9 / 10],
    );
    let steady =
        (finishes.len() as f64 * 0.8) / ((p90.saturating_sub(p10)) as f64 / 1000.0).max(0.001);
    println!(
        "throughput: {n} echo tasks in {secs:.2}s = {throughput:.0} tasks/s overall, {steady:.0} tasks/s steady (middle 80 %) (2 workers x concurrency {concurrency}); enqueue {enqueue_rate:.0}/s"
    );

    // 4. Memory per finished record.
    let mut conn = redis_direct::connection(&config.redis_url).await;
    let names = taskfleet_common::Names::new(config.namespace.clone());
    let mut bytes = Vec::new();
    for id in ids.iter().step_by((n / 200).max(1)) {
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
    println!(
        "redis memory per finished task: {avg} bytes (MEMORY USAGE, mean of {} records)",
        bytes.len()
    );

    // 2. Start latency at about half load: paced enqueues for a few seconds.
    let rate = (throughput / 2.0).clamp(100.0, 20_000.0);
    let count = (rate * 5.0) as usize;
    let gap = Duration::from_secs_f64(1.0 / rate);
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
            (s.completed as usize >= n + count).then_some(())
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
    println!(
        "start latency at {rate:.0} tasks/s: p50 {} ms, p99 {} ms ({} tasks)",
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        lat.len()
    );

    // 3. Cancel latency of running sleep tasks.
    let sleeps = enqueue_many(&producer, 100, "sleep", r#"{"ms":60000}"#).await;
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
        let req: u64 = r
            .get("cancel_requested_at")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let fin: u64 = r
            .get("finished_at")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        cancel.push(fin.saturating_sub(req));
    }
    println!(
        "cancel latency: p50 {} ms, p99 {} ms ({} running sleep tasks)",
        percentile(&mut cancel, 0.5),
        percentile(&mut cancel, 0.99),
        cancel.len()
    );

    for w in &workers {
        w.signal(nix::sys::signal::Signal::SIGTERM);
    }
    drop(workers);
    let _: Result<(), _> = conn.del::<_, ()>(names.types_key()).await;
    producer.close().await;
    cleanup(&config).await;

    probes().await;
}

/// 5. What the suite asserts only as behaviour, with generous bounds.
async fn probes() {
    taskfleet_tests::bench::resubscribe(10).await;
    taskfleet_tests::bench::retry_gaps(10).await;
    taskfleet_tests::bench::registry_exit(5).await;
}
