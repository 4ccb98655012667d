//! `taskfleet wait ID`, `enqueue --wait` and `taskfleet workflow submit`
//! (docs/workflows.md).

use crate::error::{ProducerError, Result};
use crate::{Producer, Workflow};
use std::time::Duration;
use taskfleet_common::store::TaskRecord;
use taskfleet_common::{Config, TaskId, TaskState};

/// How long `wait` and `enqueue --wait` wait without `--timeout`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    pub id: String,
    /// How long to wait, e.g. 30s, 5m (at most 1h)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub timeout: Duration,
    /// Print the record as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCommand {
    /// Enqueue a whole DAG from FILE (`-`: stdin); prints `KEY ID` per task
    Submit { file: String },
}

pub async fn wait(config: Config, args: WaitArgs) -> Result<()> {
    let id: TaskId = args.id.parse()?;
    let store = Producer::connect_store(&config).await?;
    let record = crate::wait::wait(&store, &id, args.timeout).await?;
    if args.json {
        println!("{}", record.to_json());
    } else {
        print!(
            "{}",
            super::status::render(&record, store.server_time_ms().await?)
        );
    }
    ended(&id, &record)
}

/// `enqueue --wait`: the result once completed (exit 1 if it failed or was cancelled).
pub async fn print_result(producer: &Producer, id: &TaskId, timeout: Duration) -> Result<()> {
    let record = producer.wait(id, timeout).await?;
    if let Some(result) = record.to_json().get("result") {
        println!("{result}");
    }
    ended(id, &record)
}

/// Ok for `completed`; the error that exits 1 for `failed` and `cancelled`.
fn ended(id: &TaskId, record: &TaskRecord) -> Result<()> {
    match record.state() {
        Some(TaskState::Completed) => Ok(()),
        state => {
            let state = state.map(|s| s.to_string()).unwrap_or_default();
            let why = record
                .get("error")
                .or(record.get("reason"))
                .map_or(String::new(), |e| format!(": {e}"));
            Err(ProducerError::Refused(format!(
                "task {id} ended {state}{why}"
            )))
        }
    }
}

pub async fn workflow(config: Config, command: WorkflowCommand) -> Result<()> {
    let WorkflowCommand::Submit { file } = command;
    let text = read(&file, config.payload_limit).await?;
    let workflow = Workflow::parse(&text)?;
    // Refused before connecting: a bad file exits 2 even when the servers are down.
    workflow.plan(config.payload_limit)?;
    let producer = Producer::connect(config).await?;
    let result = producer.submit_workflow(&workflow).await;
    producer.close().await;
    for (key, id) in result? {
        println!("{key} {id}");
    }
    Ok(())
}

/// The file (or stdin), refusing one larger than a workflow of the biggest payloads.
async fn read(file: &str, payload_limit: usize) -> Result<String> {
    use tokio::io::AsyncReadExt;
    let limit = (payload_limit as u64 + 1024) * 16;
    let mut buf = Vec::new();
    let read = if file == "-" {
        tokio::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .await
    } else {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| ProducerError::Invalid(format!("cannot read {file}: {e}")))?;
        f.take(limit + 1).read_to_end(&mut buf).await
    };
    read.map_err(|e| ProducerError::Invalid(format!("cannot read {file}: {e}")))?;
    if buf.len() as u64 > limit {
        return Err(ProducerError::TooLarge(format!(
            "workflow file is over {limit} bytes: split it"
        )));
    }
    String::from_utf8(buf).map_err(|_| ProducerError::Invalid(format!("{file} is not UTF-8")))
}
