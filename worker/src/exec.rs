//! The `exec` handler: a task type backed by a program in any language
//! (docs/exec-protocol.md). One process per attempt, no shell; payload on stdin;
//! control lines on stdout; exit 0 success, 65 permanent failure, anything else a failed
//! attempt. Output is bounded; on stop the whole process group gets SIGTERM, then
//! SIGKILL after the grace period, and nothing outlives the attempt.

use crate::handler::{Handler, TaskContext, TaskError, TaskResult};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Exit code meaning "permanent failure, do not retry" (EX_DATAERR).
pub const EXIT_PERMANENT: i32 = 65;

/// Longest `TASKFLEET_PARENT_RESULTS` (bytes): Linux refuses one environment string
/// of 128 KiB or more.
const MAX_PARENT_RESULTS: usize = 128 * 1024 - 64;
/// Bytes of stderr's tail kept in the error of a failed attempt.
const STDERR_TAIL: usize = 2048;

pub struct Exec {
    argv: Vec<String>,
    output_limit: usize,
    grace: Duration,
}

impl Exec {
    pub fn new(argv: Vec<String>, output_limit: usize, grace: Duration) -> Self {
        Self {
            argv,
            output_limit,
            grace,
        }
    }
}

/// Kills the process group if the attempt is dropped (aborted) while it runs.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Handler for Exec {
    async fn run(&self, ctx: TaskContext, payload: Value) -> TaskResult {
        let (program, args) = self
            .argv
            .split_first()
            .ok_or_else(|| TaskError::permanent("exec: empty command"))?;
        let mut cmd = Command::new(program);
        // The worker's own TASKFLEET_* settings (server URLs with passwords, tokens)
        // are none of the program's business.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TASKFLEET_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(args)
            .env("TASKFLEET_TASK_ID", ctx.id().to_string())
            .env("TASKFLEET_TASK_TYPE", ctx.task_type().as_str())
            .env("TASKFLEET_ATTEMPT", ctx.attempt().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if ctx.parent_results().is_empty() {
            cmd.env_remove("TASKFLEET_PARENT_RESULTS");
        } else {
            let results = serde_json::Value::Object(ctx.parent_results().clone()).to_string();
            // Linux refuses one environment string over 128 KiB (MAX_ARG_STRLEN).
            if results.len() >= MAX_PARENT_RESULTS {
                return Err(TaskError::permanent(format!(
                    "the parents' results are {} bytes, over the {MAX_PARENT_RESULTS} bytes TASKFLEET_PARENT_RESULTS may hold: make the parents return less (store large data elsewhere and return its location)",
                    results.len()
                )));
            }
            cmd.env("TASKFLEET_PARENT_RESULTS", results);
        }
        match ctx.last_checkpoint() {
            Some(c) => cmd.env("TASKFLEET_CHECKPOINT", c.to_string()),
            None => cmd.env_remove("TASKFLEET_CHECKPOINT"),
        };
        let mut child = cmd
            .spawn()
            .map_err(|e| TaskError::permanent(format!("exec: cannot start {program:?}: {e}")))?;
        let mut guard = GroupGuard(child.id().map(|p| Pid::from_raw(p as i32)));

        let stdin = child.stdin.take();
        let body = payload.to_string();
        let feed = async move {
            if let Some(mut stdin) = stdin {
                // A program that does not read its stdin is not an error.
                let _ = stdin.write_all(body.as_bytes()).await;
            }
        };
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = self.output_limit;
        let token = ctx.token().clone();
        let mut ctx_for_out = ctx.clone();
        let read_out = async move {
            match stdout {
                Some(out) => read_stdout(out, &mut ctx_for_out, limit).await,
                None => String::new(),
            }
        };
        let ctx_for_err = ctx.clone();
        let read_err = async move {
            match stderr {
                Some(err) => read_stderr(err, &ctx_for_err, limit).await,
                None => String::new(),
            }
        };
        let run = async {
            let (_, out, err, status) = tokio::join!(feed, read_out, read_err, child.wait());
            (out, err, status)
        };
        tokio::pin!(run);
        let (out, err, status) = tokio::select! {
            r = &mut run => r,
            _ = token.cancelled() => {
                stop_group(&mut guard, self.grace, &mut run).await;
                return Err(TaskError::Stopped);
            }
        };
        guard.0 = None;
        let status =
            status.map_err(|e| TaskError::retry(format!("exec: waiting for the program: {e}")))?;
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(parse_result(&out)),
            (Some(EXIT_PERMANENT), _) => Err(TaskError::permanent(describe(
                "exit 65 (permanent failure)",
                &err,
            ))),
            (Some(code), _) => Err(TaskError::retry(describe(&format!("exit {code}"), &err))),
            (None, Some(sig)) => Err(TaskError::retry(describe(
                &format!("killed by signal {sig}"),
                &err,
            ))),
            (None, None) => Err(TaskError::retry(describe("ended without a status", &err))),
        }
    }
}

/// SIGTERM to the group, then SIGKILL if it has not exited within the grace period.
async fn stop_group<F: std::future::Future + Unpin>(
    guard: &mut GroupGuard,
    grace: Duration,
    run: &mut F,
) {
    if let Some(pgid) = guard.0 {
        let _ = killpg(pgid, Signal::SIGTERM);
    }
    if tokio::time::timeout(grace, run).await.is_err()
        && let Some(pgid) = guard.0
    {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
    // The leader has exited; children that kept the group alive get SIGKILL too.
    if let Some(pgid) = guard.0.take() {
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// Reads stdout line by line: control lines go to the context, the rest (up to
/// `limit` bytes) is the result.
async fn read_stdout<R: tokio::io::AsyncRead + Unpin>(
    out: R,
    ctx: &mut TaskContext,
    limit: usize,
) -> String {
    let mut reader = BufReader::new(out);
    let mut result = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bound one line as well: a program printing no newline cannot exhaust memory.
        match (&mut reader)
            .take(limit as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        if let Some(rest) = text.strip_prefix("::progress::") {
            let mut parts = rest.trim().splitn(2, ' ');
            if let Some(p) = parts.next().and_then(|p| p.parse::<f64>().ok()) {
                let message = parts.next().map(str::trim).filter(|m| !m.is_empty());
                ctx.progress(p.clamp(0.0, 100.0) as u8, message).await;
            }
        } else if let Some(rest) = text.strip_prefix("::checkpoint::") {
            if let Ok(v) = serde_json::from_str::<Value>(rest.trim()) {
                ctx.checkpoint(v).await;
            }
        } else if result.len() < limit {
            let room = limit - result.len();
            let mut cut = text.len().min(room);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            result.push_str(&text[..cut]);
        }
    }
    result
}

/// Reads everything, keeping only the last `STDERR_TAIL` bytes (and never more than
/// `limit`) for the error, and handing each line to the task's log (`ctx.log`).
async fn read_stderr<R: tokio::io::AsyncRead + Unpin>(
    mut err: R,
    ctx: &TaskContext,
    limit: usize,
) -> String {
    let keep = STDERR_TAIL.min(limit);
    let mut tail: Vec<u8> = Vec::with_capacity(keep * 2);
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match err.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > keep * 2 {
                    tail.drain(..tail.len() - keep);
                }
                log_lines(ctx, &mut line, &buf[..n]);
            }
        }
    }
    if !line.is_empty() {
        ctx.log(String::from_utf8_lossy(&line));
    }
    if tail.len() > keep {
        tail.drain(..tail.len() - keep);
    }
    String::from_utf8_lossy(&tail).trim().to_owned()
}

/// Logs every complete line of `chunk` (after what `line` holds from earlier chunks);
/// a line growing past the log's line limit is logged in pieces, so `line` stays bounded.
fn log_lines(ctx: &TaskContext, line: &mut Vec<u8>, chunk: &[u8]) {
    for part in chunk.split_inclusive(|b| *b == b'\n') {
        line.extend_from_slice(part);
        if part.ends_with(b"\n") || line.len() >= taskfleet_common::store::MAX_LOG_LINE {
            ctx.log(String::from_utf8_lossy(line));
            line.clear();
        }
    }
}

fn parse_result(out: &str) -> Value {
    let trimmed = out.trim_end_matches(['\n', '\r']);
    serde_json::from_str(trimmed).unwrap_or_else(|_| Value::String(trimmed.to_owned()))
}

fn describe(what: &str, stderr: &str) -> String {
    if stderr.is_empty() {
        format!("exec: {what}")
    } else {
        format!("exec: {what}: {stderr}")
    }
}
