use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use taskfleet_common::Config;
use taskfleet_common::config::LogFormat;
use taskfleet_worker::{Worker, WorkerError};
use tokio_util::sync::CancellationToken;

/// Consume and run taskfleet tasks until SIGTERM/SIGINT (a second one exits at once).
#[derive(Debug, Parser)]
#[command(name = "taskfleet-worker", version)]
struct Args {
    /// Task types to consume, comma-separated (default: every built-in and configured type)
    #[arg(long, value_delimiter = ',')]
    types: Option<Vec<String>>,
    /// Tasks run at once
    #[arg(long)]
    concurrency: Option<usize>,
    /// TOML configuration file
    #[arg(long, env = "TASKFLEET_CONFIG")]
    config: Option<PathBuf>,
    /// Namespace [env: TASKFLEET_NAMESPACE]
    #[arg(long)]
    namespace: Option<String>,
    /// RabbitMQ URL [env: TASKFLEET_AMQP_URL]
    #[arg(long)]
    amqp_url: Option<String>,
    /// Redis URL [env: TASKFLEET_REDIS_URL]
    #[arg(long)]
    redis_url: Option<String>,
    /// Log format: human or json
    #[arg(long)]
    log_format: Option<String>,
}

fn load(args: &Args) -> Result<Config, String> {
    let mut c = Config::load(args.config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(t) = &args.types {
        c.worker.types = t
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    if let Some(n) = args.concurrency {
        c.worker.concurrency = n;
    }
    if let Some(ns) = &args.namespace {
        c.namespace = ns.parse().map_err(|e| format!("--namespace: {e}"))?;
    }
    if let Some(u) = &args.amqp_url {
        c.amqp_url = u.clone();
    }
    if let Some(u) = &args.redis_url {
        c.redis_url = u.clone();
    }
    match args.log_format.as_deref() {
        None => {}
        Some("human") => c.log_format = LogFormat::Human,
        Some("json") => c.log_format = LogFormat::Json,
        Some(other) => {
            return Err(format!(
                "--log-format: expected human or json, got {other:?}"
            ));
        }
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

#[tokio::main]
async fn main() -> ExitCode {
    // A crash-test hook (tests/tests/workflows.rs), never set in production.
    taskfleet_worker::abort_after_release_commit(
        std::env::var_os("TASKFLEET_TEST_ABORT_AFTER_COMMIT").is_some_and(|v| v == "1"),
    );
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            eprintln!(
                "{}",
                taskfleet_common::usage_error_line("taskfleet-worker", &e.to_string())
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("taskfleet-worker: {e}");
            return ExitCode::from(2);
        }
    };
    taskfleet_common::logging::init(config.log_format);
    if let Some(addr) = config
        .worker
        .metrics_listen
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    {
        // Task counts, durations and cancel latency, scraped by Prometheus.
        if let Err(e) = metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
        {
            eprintln!("taskfleet-worker: worker.metrics_listen {addr}: {e}");
            return ExitCode::from(2);
        }
    }
    let worker = match Worker::new(config) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("taskfleet-worker: {e}");
            return ExitCode::from(exit_code(&e));
        }
    };
    let shutdown = CancellationToken::new();
    let abort = CancellationToken::new();
    tokio::spawn(signals(shutdown.clone(), abort.clone()));
    match worker.run(shutdown, abort).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskfleet-worker: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The contract's exit code for an error of the worker: 2 bad configuration,
/// 3 Redis unreachable, 1 otherwise.
fn exit_code(e: &WorkerError) -> u8 {
    match e {
        WorkerError::Config(_) => 2,
        WorkerError::Store(s) if s.is_connection_error() => 3,
        WorkerError::Store(_) => 1,
    }
}

/// First SIGTERM/SIGINT: drain. Second: stop waiting and exit.
async fn signals(shutdown: CancellationToken, abort: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("taskfleet-worker: cannot install signal handlers");
        return;
    };
    for token in [shutdown, abort] {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received");
        token.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskfleet_common::store::StoreError;

    #[test]
    fn every_worker_error_has_the_exit_code_of_the_contract() {
        let unreachable = StoreError::Unreachable {
            url: "redis://h".into(),
            reason: "refused".into(),
        };
        let bad_reply = StoreError::Protocol {
            script: "claim",
            reply: "?".into(),
        };
        assert_eq!(exit_code(&WorkerError::Config("x".into())), 2);
        assert_eq!(exit_code(&WorkerError::Store(unreachable)), 3);
        assert_eq!(exit_code(&WorkerError::Store(bad_reply)), 1);
    }
}
