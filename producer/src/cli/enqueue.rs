//! `taskfleet enqueue`: one task, or `--batch` (one payload per stdin line, one id per
//! stdout line, in order, with a window of confirms in flight).

use super::lines::{LineError, bounded_lines};
use crate::error::{ProducerError, Result};
use crate::{EnqueueRequest, Producer};
use futures_util::StreamExt;
use std::io::IsTerminal;
use std::time::Duration;
use taskfleet_common::Config;
use tokio::io::AsyncWriteExt;

/// Publishes in flight at once during `--batch`.
const BATCH_WINDOW: usize = 256;

#[derive(Debug, clap::Args)]
pub struct EnqueueArgs {
    /// Task type (the routing key)
    pub task_type: String,
    /// JSON payload (default `{}`); `-` reads it from stdin
    pub payload: Option<String>,
    /// Priority 0-9 (higher runs first)
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub priority: Option<u8>,
    /// Attempts before the task fails for good
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Time limit of one attempt, e.g. 30s, 5m
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Idempotency key: a second enqueue with the same key returns the first id
    #[arg(long)]
    pub key: Option<String>,
    /// Run no earlier than this long from now, e.g. 90s, 2h (state `scheduled` until then)
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Run no earlier than this time, RFC 3339 UTC, e.g. 2026-12-01T12:00:00Z (a time in the past runs now)
    #[arg(long, value_parser = humantime::parse_rfc3339)]
    pub at: Option<std::time::SystemTime>,
    /// Never start it after this long from now (it ends `cancelled`, reason `expired`)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub expires: Option<Duration>,
    /// Group key (tenant, customer, API key): the type's `group_max_running` caps
    /// how many tasks of one group run at once
    #[arg(long)]
    pub group: Option<String>,
    /// Wait for these tasks (comma-separated ids) to complete first (state `waiting`)
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["delay", "at"])]
    pub after: Vec<String>,
    /// Block until the task is terminal and print its result (exit as `wait` does)
    #[arg(long, conflicts_with = "batch")]
    pub wait: bool,
    /// With --wait: how long to wait, e.g. 30s
    #[arg(long, value_parser = humantime::parse_duration, requires = "wait")]
    pub wait_timeout: Option<Duration>,
    /// Read one JSON payload per stdin line; print one id per line
    #[arg(long, conflicts_with_all = ["payload", "key"])]
    pub batch: bool,
}

impl EnqueueArgs {
    fn request(&self, payload: &str) -> Result<EnqueueRequest> {
        let mut req = EnqueueRequest::new(&self.task_type, payload)?;
        req.priority = self.priority;
        req.max_attempts = self.max_attempts;
        req.timeout = self.timeout;
        req.idempotency_key = self.key.clone();
        req.group = self.group.clone();
        let now = crate::request::now_ms();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        req.run_at = match (self.delay, self.at) {
            (Some(d), _) => Some(now.saturating_add(ms(d))),
            (None, Some(at)) => Some(
                at.duration_since(std::time::UNIX_EPOCH)
                    .map(ms)
                    .unwrap_or(0),
            ),
            (None, None) => None,
        };
        req.expires_at = self.expires.map(|d| now.saturating_add(ms(d)));
        req.after = self
            .after
            .iter()
            .map(|id| {
                id.trim().parse().map_err(|e| {
                    ProducerError::Invalid(format!("--after: {id:?} is not a task id: {e}"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(req)
    }
}

pub async fn run(config: Config, args: EnqueueArgs) -> Result<()> {
    // Validate before connecting: bad input exits 2 even when servers are down.
    let single = if args.batch {
        args.request("{}")?;
        None
    } else {
        let payload = match args.payload.as_deref() {
            Some("-") => read_stdin(config.payload_limit).await?,
            Some(p) => p.to_owned(),
            None => "{}".to_owned(),
        };
        let req = args.request(&payload)?;
        req.validate(config.payload_limit)?;
        Some(req)
    };
    let producer = Producer::connect(config).await?;
    let result = match single {
        Some(req) => {
            let done = producer.enqueue(&req).await?;
            if let Some(w) = &done.warning {
                eprintln!("taskfleet: warning: {w}");
            }
            if args.wait {
                let timeout = args.wait_timeout.unwrap_or(super::waiting::DEFAULT_WAIT);
                super::waiting::print_result(&producer, &done.id, timeout).await
            } else {
                println!("{}", done.id);
                Ok(())
            }
        }
        None => batch(&producer, &args).await,
    };
    producer.close().await;
    result
}

async fn batch(producer: &Producer, args: &EnqueueArgs) -> Result<()> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos} enqueued ({per_sec}) {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    // Lines are bounded: one longer than a payload may be is refused, not buffered.
    let max_line = producer.config().payload_limit;
    let lines = bounded_lines(tokio::io::stdin(), max_line);
    let results = lines
        .enumerate()
        .filter(|(_, line)| {
            std::future::ready(line.as_ref().map_or(true, |l| !l.trim().is_empty()))
        })
        .map(|(n, line)| async move {
            let line = line.map_err(|e| match e {
                LineError::TooLong => ProducerError::Invalid(format!(
                    "line {}: payload exceeds the limit of {max_line} bytes (payload_limit)",
                    n + 1
                )),
                LineError::NotUtf8 => ProducerError::Invalid(format!("line {}: not UTF-8", n + 1)),
                LineError::Io(e) => ProducerError::Invalid(format!("reading stdin: {e}")),
            })?;
            let req = args
                .request(&line)
                .map_err(|e| ProducerError::Invalid(format!("line {}: {e}", n + 1)))?;
            producer.enqueue(&req).await
        })
        .buffered(BATCH_WINDOW);
    let mut results = std::pin::pin!(results);
    let mut out = tokio::io::BufWriter::new(tokio::io::stdout());
    // Every line is its own task: a bad line is reported and the rest go on, so no
    // enqueue is ever abandoned half-way (between its record and its publish).
    let mut refused = 0usize;
    let mut worst = None;
    let mut warned = false;
    while let Some(r) = results.next().await {
        match r {
            Ok(done) => {
                // One type per batch: one warning is enough.
                if let Some(w) = done.warning.as_ref().filter(|_| !warned) {
                    eprintln!("taskfleet: warning: {w}");
                    warned = true;
                }
                let _ = out.write_all(format!("{}\n", done.id).as_bytes()).await;
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
            Err(e) => {
                eprintln!("taskfleet: {e}");
                refused += 1;
                worst = Some(super::exit::worse(worst, e.kind()));
            }
        }
    }
    let _ = out.flush().await;
    if let Some(b) = bar {
        b.finish();
    }
    match worst {
        None => Ok(()),
        Some(worst) => Err(ProducerError::BatchRefused { refused, worst }),
    }
}

/// The whole of stdin, refusing more than the payload limit without reading it all.
async fn read_stdin(limit: usize) -> Result<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::io::stdin()
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| ProducerError::Invalid(format!("reading the payload from stdin: {e}")))?;
    if buf.len() > limit {
        return Err(ProducerError::Invalid(format!(
            "payload exceeds the limit of {limit} bytes (payload_limit)"
        )));
    }
    String::from_utf8(buf)
        .map_err(|_| ProducerError::Invalid("payload on stdin is not UTF-8".into()))
}
