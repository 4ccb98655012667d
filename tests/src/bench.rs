//! The speed figures of `scripts/bench` that the test suite asserts only as behaviour
//! with generous bounds (the suite runs on loaded CI machines; these are measured on
//! a quiet one). Each probe uses a fresh namespace, prints one line with its target,
//! and removes what it declared.
//!
//! - `resubscribe`: the cancellation listener's pause after losing its connection
//!   (target < 1 s each, the shortest backoff step after every loss)
//! - `retry_gaps`: retry waits against the backoff policy (target within ±10 %)
//! - `registry_exit`: a `kill -9`ed worker's registry entry gone (target ≤ three
//!   heartbeats + 500 ms)

use crate::logs::log_path;
use crate::private_redis::PrivateRedis;
use crate::process::WorkerProcess;
use crate::{Fleet, eventually, test_config};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use taskfleet_common::TaskId;
use taskfleet_producer::EnqueueRequest;

/// `p` (0.0–1.0) of `v`, sorted in place; 0 when empty.
pub fn percentile(v: &mut [u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Kills the only pub/sub client of `conn`'s server `losses` times; each time, how
/// long until `channel` has its subscriber again (ms).
pub async fn resubscribe(losses: usize) {
    let redis = PrivateRedis::start().await;
    let mut config = test_config();
    config.redis_url = redis.url();
    let fleet = Fleet::with_config(config).await;
    let c = fleet.config.clone();
    let log = log_path(&c, "bench-resubscribe");
    let mut worker = WorkerProcess::start(&c, &["--types", "sleep"], &log).await;
    let channel = fleet.names().cancellations_channel();
    let mut conn = redis.connection().await;
    let mut gaps = Vec::new();
    for _ in 0..losses {
        let client = eventually(Duration::from_secs(10), "the listener", || {
            let mut conn = conn.clone();
            let channel = channel.clone();
            async move { listener(&mut conn, &channel).await }
        })
        .await;
        let _: redis::RedisResult<redis::Value> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(client)
            .query_async(&mut conn)
            .await;
        let lost = Instant::now();
        eventually(Duration::from_secs(30), "resubscribed", || {
            let mut conn = conn.clone();
            let channel = channel.clone();
            async move {
                listener(&mut conn, &channel)
                    .await
                    .filter(|&id| id != client)
            }
        })
        .await;
        gaps.push(lost.elapsed().as_millis() as u64);
    }
    let max = gaps.iter().copied().max().unwrap_or(0);
    println!(
        "cancellation listener resubscribed after losing its connection: p50 {} ms, max {max} ms over {losses} losses (target < 1000 ms each)",
        percentile(&mut gaps, 0.5)
    );
    worker.kill().await;
    fleet.teardown().await;
}

/// The id of the one pub/sub client, once `channel` has a subscriber.
async fn listener(conn: &mut redis::aio::MultiplexedConnection, channel: &str) -> Option<u64> {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await
        .ok()?;
    if n != 1 {
        return None;
    }
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(conn)
        .await
        .ok()?;
    let ids: Vec<u64> = list
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("id="))?
                .parse()
                .ok()
        })
        .collect();
    (ids.len() == 1).then(|| ids[0])
}

/// `tasks` flaky tasks (two failures each) under a jitter-free policy of 500 ms × 2:
/// each retry's wait (the `retrying` commit to the next start, Redis clock) against
/// the policy's.
pub async fn retry_gaps(tasks: usize) {
    let mut config = test_config();
    config.defaults.backoff.initial = Duration::from_millis(500);
    config.defaults.backoff.multiplier = 2.0;
    config.defaults.backoff.jitter = 0.0;
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    let mut pubsub = fleet.store.pubsub().await.expect("pub/sub");
    pubsub
        .subscribe(fleet.names().events_channel())
        .await
        .expect("subscribe");
    let mut events = Box::pin(pubsub.on_message());
    let mut ids: Vec<TaskId> = Vec::new();
    for _ in 0..tasks {
        let mut req = EnqueueRequest::new("flaky", r#"{"fail_times":2}"#).expect("request");
        req.max_attempts = Some(5);
        ids.push(fleet.producer.enqueue(&req).await.expect("enqueue").id);
    }
    // (id, to, at) of every transition until each task completed.
    let mut seen: Vec<(String, String, u64)> = Vec::new();
    let mut done = 0;
    let collect = async {
        while let Some(msg) = events.next().await {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(msg.get_payload_bytes()) else {
                continue;
            };
            let (Some(id), Some(to), Some(at)) =
                (v["id"].as_str(), v["to"].as_str(), v["at"].as_u64())
            else {
                continue;
            };
            seen.push((id.to_owned(), to.to_owned(), at));
            if to == "completed" {
                done += 1;
                if done == tasks {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(120), collect).await;
    let mut errors = Vec::new();
    let mut worst = 0.0f64;
    for id in &ids {
        let id = id.to_string();
        let mine: Vec<&(String, String, u64)> = seen.iter().filter(|t| t.0 == id).collect();
        let gaps = mine
            .windows(2)
            .filter(|w| w[0].1 == "retrying")
            .map(|w| w[1].2.saturating_sub(w[0].2));
        for (n, gap) in gaps.enumerate() {
            let nominal = 500.0 * 2f64.powi(n as i32);
            let off = (gap as f64 - nominal) / nominal * 100.0;
            worst = worst.max(off.abs());
            errors.push(gap.abs_diff(nominal as u64));
        }
    }
    println!(
        "retry gaps against the policy (500 ms x 2, no jitter): off by p50 {} ms, max {} ms, worst {worst:.1} % over {} waits (target within 10 %)",
        percentile(&mut errors, 0.5),
        percentile(&mut errors, 1.0),
        errors.len()
    );
    drop(events);
    fleet.teardown().await;
}

/// `rounds` times: a worker process (300 ms heartbeats) killed with SIGKILL, and how
/// long until the registry no longer lists it.
pub async fn registry_exit(rounds: usize) {
    let fleet = Fleet::new().await;
    let c = fleet.config.clone();
    let heartbeat = c.worker.heartbeat_interval;
    let mut gone = Vec::new();
    for i in 0..rounds {
        let log = log_path(&c, &format!("bench-registry-{i}"));
        let mut w = WorkerProcess::start(&c, &["--types", "sleep"], &log).await;
        let pid = w.pid().to_string();
        let listed = |want: bool| {
            let store = fleet.store.clone();
            let pid = pid.clone();
            async move {
                let workers = store.workers().await.ok()?;
                let there = workers.iter().any(|w| w.fields.get("pid") == Some(&pid));
                (there == want).then_some(())
            }
        };
        eventually(Duration::from_secs(15), "the worker listed", || {
            listed(true)
        })
        .await;
        w.kill().await;
        let killed = Instant::now();
        eventually(Duration::from_secs(30), "the worker gone", || listed(false)).await;
        gone.push(killed.elapsed().as_millis() as u64);
    }
    let max = gone.iter().copied().max().unwrap_or(0);
    println!(
        "kill -9ed worker left the registry after: p50 {} ms, max {max} ms over {rounds} workers (heartbeat {} ms; target <= {} ms)",
        percentile(&mut gone, 0.5),
        heartbeat.as_millis(),
        (heartbeat * 3 + Duration::from_millis(500)).as_millis()
    );
    fleet.teardown().await;
}
