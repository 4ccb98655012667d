//! `taskfleet dead list [--json]` and `taskfleet dead replay ID|--all`.

use crate::Producer;
use crate::dead::{self, DeadMessage, ReplayTarget};
use crate::error::Result;
use clap::Subcommand;
use std::time::{Duration, UNIX_EPOCH};
use taskfleet_common::Config;

#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List the dead-letter queue (nothing is removed): id, type, reason, attempts, when, error
    List {
        #[arg(long)]
        json: bool,
    },
    /// Put dead tasks back as pending with fresh attempts and remove them from the queue
    Replay {
        /// The task to replay
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Replay every replayable message (malformed ones stay, and are reported)
        #[arg(long)]
        all: bool,
    },
}

pub async fn run(config: Config, command: DeadCommand) -> Result<()> {
    let producer = Producer::connect(config).await?;
    let result = match command {
        DeadCommand::List { json } => list(&producer, json).await,
        DeadCommand::Replay { id, all: _ } => {
            let target = id.map_or(ReplayTarget::All, ReplayTarget::Id);
            replay(&producer, &target).await
        }
    };
    producer.close().await;
    result
}

async fn list(producer: &Producer, json: bool) -> Result<()> {
    let listing = dead::list(producer).await?;
    if json {
        println!(
            "{}",
            serde_json::to_value(&listing.messages).unwrap_or_default()
        );
    } else if listing.messages.is_empty() {
        println!(
            "the dead-letter queue {} is empty",
            producer.store().names().dead()
        );
    } else {
        print_table(&listing.messages);
    }
    if listing.not_shown > 0 {
        eprintln!(
            "taskfleet: {} more dead messages not shown (a listing reads at most {})",
            listing.not_shown,
            dead::SCAN_LIMIT
        );
    }
    Ok(())
}

fn print_table(messages: &[DeadMessage]) {
    println!(
        "{:<36}  {:<20}  {:<12}  {:>8}  {:<24}  ERROR",
        "ID", "TYPE", "REASON", "ATTEMPTS", "WHEN"
    );
    for m in messages {
        let error = match (&m.error, &m.unreplayable) {
            (Some(e), None) => e.clone(),
            (e, Some(why)) => format!(
                "{}[not replayable: {why}]",
                e.as_ref().map(|e| format!("{e} ")).unwrap_or_default()
            ),
            (None, None) => "-".into(),
        };
        println!(
            "{:<36}  {:<20}  {:<12}  {:>8}  {:<24}  {}",
            m.id.as_deref().unwrap_or("-"),
            m.task_type.as_deref().unwrap_or("-"),
            m.reason,
            m.attempts.map_or("-".into(), |n| n.to_string()),
            m.dead_at.map_or("-".into(), |ms| {
                humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
            }),
            error.split_whitespace().collect::<Vec<_>>().join(" ")
        );
    }
}

async fn replay(producer: &Producer, target: &ReplayTarget) -> Result<()> {
    let report = dead::replay(producer, target).await?;
    for id in &report.replayed {
        println!("{id} pending");
    }
    for (_, why) in &report.skipped {
        eprintln!("taskfleet: skipped: {why}");
    }
    if *target == ReplayTarget::All && report.replayed.is_empty() && report.skipped.is_empty() {
        eprintln!(
            "taskfleet: the dead-letter queue {} is empty",
            producer.store().names().dead()
        );
    }
    Ok(())
}
