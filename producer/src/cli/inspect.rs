//! Read-side commands: `status`, `cancel`, `stats`, `workers`, `watch`.

use crate::Producer;
use crate::error::Result;
use crate::producer;
use futures_util::StreamExt;
use taskfleet_common::store::StoreError;
use taskfleet_common::{Config, TaskId};

fn parse_id(id: &str) -> Result<TaskId> {
    Ok(id.parse()?)
}

pub async fn status(config: Config, id: &str, json: bool) -> Result<()> {
    let id = parse_id(id)?;
    let store = Producer::connect_store(&config).await?;
    let mut record = producer::status(&store, &id).await?;
    // Not a field of the hash: the size of `{ns}:dependents:{id}` (docs/workflows.md).
    let dependents = store.dependents_count(&id).await?;
    if json {
        let mut v = record.to_json();
        if dependents > 0 {
            v["dependents"] = dependents.into();
        }
        println!("{v}");
    } else {
        if dependents > 0 {
            record
                .fields
                .insert("dependents".into(), dependents.to_string());
        }
        let now = store.server_time_ms().await?;
        print!("{}", super::status::render(&record, now));
    }
    Ok(())
}

pub async fn logs(config: Config, id: &str, json: bool) -> Result<()> {
    let id = parse_id(id)?;
    let store = Producer::connect_store(&config).await?;
    if json {
        println!("{}", crate::task_logs::task_logs_json(&store, &id).await?);
    } else {
        for line in crate::task_logs::task_logs(&store, &id).await? {
            println!("{line}");
        }
    }
    Ok(())
}

pub async fn cancel(config: Config, id: &str, with_dependents: bool) -> Result<()> {
    let id = parse_id(id)?;
    let store = Producer::connect_store(&config).await?;
    let state = producer::cancel_with(&store, &id, with_dependents).await?;
    println!("{state}");
    Ok(())
}

pub async fn stats(config: Config, json: bool) -> Result<()> {
    let store = Producer::connect_store(&config).await?;
    if json {
        println!("{}", producer::stats_json(&store).await?);
        return Ok(());
    }
    let stats = store.stats().await?;
    println!(
        "{:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "TYPE",
        "SCHEDULED",
        "WAITING",
        "PENDING",
        "RUNNING",
        "RETRYING",
        "CANCELLING",
        "ENQUEUED",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "RETRIED"
    );
    for (t, s) in &stats {
        println!(
            "{:<24} {:>9} {:>8} {:>8} {:>8} {:>8} {:>10} {:>9} {:>9} {:>8} {:>9} {:>8}",
            t.as_str(),
            s.scheduled,
            s.waiting,
            s.pending,
            s.running,
            s.retrying,
            s.cancelling,
            s.enqueued,
            s.completed,
            s.failed,
            s.cancelled,
            s.retried
        );
    }
    Ok(())
}

pub async fn workers(config: Config, json: bool) -> Result<()> {
    let store = Producer::connect_store(&config).await?;
    if json {
        println!("{}", producer::workers_json(&store).await?);
        return Ok(());
    }
    let now = store.server_time_ms().await?;
    let workers = store.workers().await?;
    println!(
        "{:<40} {:<9} {:>8} {:>8} {:>11}  TYPES",
        "WORKER", "STATUS", "INFLIGHT", "CONC", "LAST BEAT"
    );
    for w in &workers {
        let f = |k: &str| {
            w.fields
                .get(k)
                .map(String::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "{:<40} {:<9} {:>8} {:>8} {:>9}ms  {}",
            w.id,
            f("status"),
            f("inflight"),
            f("concurrency"),
            now.saturating_sub(w.heartbeat_at),
            f("types")
        );
    }
    Ok(())
}

pub async fn watch(config: Config) -> Result<()> {
    let store = Producer::connect_store(&config).await?;
    let mut pubsub = store.subscribe(&store.names().events_channel()).await?;
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            msg = messages.next() => match msg {
                Some(m) => println!("{}", String::from_utf8_lossy(m.get_payload_bytes())),
                None => {
                    return Err(StoreError::Unreachable {
                        url: taskfleet_common::redact_url(&config.redis_url),
                        reason: "the event stream closed".into(),
                    }
                    .into())
                }
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
