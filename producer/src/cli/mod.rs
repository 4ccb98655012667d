//! The `taskfleet` command line: parse flags, load the configuration, run one command,
//! and turn its error into one line on stderr and the contract's exit code (`exit`).

mod dead;
mod enqueue;
pub mod exit;
mod inspect;
mod lines;
mod pause;
mod schedules;
mod status;
mod types;
mod waiting;

use crate::error::ProducerError;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use taskfleet_common::Config;
use taskfleet_common::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "taskfleet",
    version,
    about = "Enqueue and inspect taskfleet tasks"
)]
pub struct Args {
    /// TOML configuration file
    #[arg(long, global = true, env = "TASKFLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Namespace: prefix of every queue and Redis key [env: TASKFLEET_NAMESPACE]
    #[arg(long, global = true)]
    pub namespace: Option<String>,
    /// RabbitMQ URL [env: TASKFLEET_AMQP_URL]
    #[arg(long, global = true)]
    pub amqp_url: Option<String>,
    /// Redis URL [env: TASKFLEET_REDIS_URL]
    #[arg(long, global = true)]
    pub redis_url: Option<String>,
    /// Log format on stderr
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<CliLogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CliLogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enqueue a task; prints its id once RabbitMQ confirmed it
    Enqueue(enqueue::EnqueueArgs),
    /// Show a task's record
    Status {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// A task's log lines (exec stderr, `ctx.log`), oldest first
    Logs {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a task; prints the state it is in afterwards
    Cancel {
        id: String,
        /// Also cancel every task waiting for it, transitively, whatever its state
        #[arg(long)]
        with_dependents: bool,
    },
    /// Wait until a task is terminal; prints its record (exit 1 failed or cancelled, 4 timed out)
    Wait(waiting::WaitArgs),
    /// Whole DAGs of tasks
    Workflow {
        #[command(subcommand)]
        command: waiting::WorkflowCommand,
    },
    /// Counters per task type and state
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Live workers, their heartbeats and in-flight tasks
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// Each task type's settings, serving workers, paused flag and queue depth
    Types {
        #[arg(long)]
        json: bool,
    },
    /// Fleet-wide: no new task of TYPE starts until `resume` (running ones finish)
    Pause {
        #[arg(value_name = "TYPE")]
        task_type: String,
    },
    /// Lets tasks of a paused TYPE start again
    Resume {
        #[arg(value_name = "TYPE")]
        task_type: String,
    },
    /// Print state transitions as they happen (until Ctrl-C)
    Watch,
    /// Cron and interval schedules: next and last fire, leader
    Schedules {
        #[arg(long)]
        json: bool,
    },
    /// Serve the HTTP API
    Serve {
        /// Address to listen on [default: http.listen, 127.0.0.1:8080]
        #[arg(long)]
        listen: Option<String>,
    },
    /// The dead-letter queue: list it, replay tasks from it
    Dead {
        #[command(subcommand)]
        command: dead::DeadCommand,
    },
}

/// Loads the configuration (defaults → file → env → flags).
pub fn load_config(args: &Args) -> Result<Config, ProducerError> {
    let mut config =
        Config::load(args.config.as_deref()).map_err(|e| ProducerError::Invalid(e.to_string()))?;
    if let Some(ns) = &args.namespace {
        config.namespace = ns.parse()?;
    }
    if let Some(url) = &args.amqp_url {
        config.amqp_url = url.clone();
    }
    if let Some(url) = &args.redis_url {
        config.redis_url = url.clone();
    }
    if let Some(f) = args.log_format {
        config.log_format = match f {
            CliLogFormat::Human => LogFormat::Human,
            CliLogFormat::Json => LogFormat::Json,
        };
    }
    Ok(config)
}

pub async fn run(args: Args) -> ExitCode {
    let result = async {
        let config = load_config(&args)?;
        taskfleet_common::logging::init(config.log_format);
        match args.command {
            Command::Enqueue(a) => enqueue::run(config, a).await,
            Command::Status { id, json } => inspect::status(config, &id, json).await,
            Command::Logs { id, json } => inspect::logs(config, &id, json).await,
            Command::Cancel {
                id,
                with_dependents,
            } => inspect::cancel(config, &id, with_dependents).await,
            Command::Wait(a) => waiting::wait(config, a).await,
            Command::Workflow { command } => waiting::workflow(config, command).await,
            Command::Stats { json } => inspect::stats(config, json).await,
            Command::Workers { json } => inspect::workers(config, json).await,
            Command::Types { json } => types::run(config, json).await,
            Command::Pause { task_type } => pause::run(config, &task_type, true).await,
            Command::Resume { task_type } => pause::run(config, &task_type, false).await,
            Command::Watch => inspect::watch(config).await,
            Command::Schedules { json } => schedules::run(config, json).await,
            Command::Serve { listen } => serve(config, listen).await,
            Command::Dead { command } => dead::run(config, command).await,
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskfleet: {}", one_line(&e.to_string()));
            ExitCode::from(exit::exit_code(e.kind()))
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn serve(config: Config, listen: Option<String>) -> Result<(), ProducerError> {
    let listen = listen.unwrap_or_else(|| config.http.listen.clone());
    let producer = crate::Producer::connect(config).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    let result = crate::http::serve(producer.clone(), &listen, shutdown).await;
    producer.close().await;
    result
}
