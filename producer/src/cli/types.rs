//! `taskfleet types [--json]`: each type's declared settings, the live workers
//! serving it, its paused flag and its queue depth.

use crate::Producer;
use crate::error::Result;
use crate::fleet_types;
use taskfleet_common::Config;

pub async fn run(config: Config, json: bool) -> Result<()> {
    let producer = Producer::connect(config).await?;
    let result = print(&producer, json).await;
    producer.close().await;
    result
}

async fn print(producer: &Producer, json: bool) -> Result<()> {
    if json {
        println!("{}", fleet_types::types_json(producer).await?);
        return Ok(());
    }
    let types = fleet_types::types(producer).await?;
    println!(
        "{:<24} {:>12} {:>10} {:>8} {:>6} {:>7} {:>8} {:>12} {:>11} {:>9} {:>17}  WORKERS",
        "TYPE",
        "MAX_ATTEMPTS",
        "TIMEOUT",
        "PRIORITY",
        "PAUSED",
        "SERVING",
        "QUEUED",
        "RATE_LIMIT",
        "MAX_RUNNING",
        "GROUP_MAX",
        "WAITS(P/RATE/CAP)"
    );
    for (t, v) in &types {
        let (attempts, timeout, priority) = match &v.settings {
            Some(s) => (
                s.max_attempts.to_string(),
                super::status::span(s.timeout_ms),
                s.priority.to_string(),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let cap = |c: Option<u32>| c.map_or("-".to_owned(), |n| n.to_string());
        let w = &v.waits;
        println!(
            "{:<24} {:>12} {:>10} {:>8} {:>6} {:>7} {:>8} {:>12} {:>11} {:>9} {:>17}  {}",
            t.as_str(),
            attempts,
            timeout,
            priority,
            if v.paused { "yes" } else { "no" },
            v.workers.len(),
            v.queue_depth.map_or("-".into(), |d| d.to_string()),
            v.limits.rate_limit.as_deref().unwrap_or("-"),
            cap(v.limits.max_running),
            cap(v.limits.group_max_running),
            format!("{}/{}/{}", w.paused, w.rate_limit, w.cap),
            if v.workers.is_empty() {
                "-".to_owned()
            } else {
                v.workers.join(",")
            }
        );
    }
    Ok(())
}
