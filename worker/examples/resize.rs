//! A Rust handler to copy: `resize` makes thumbnails of a batch of images.
//!
//! Payload: `{"images": [{"src": "a.pgm", "dst": "a-small.pgm"}, ...], "width": 64, "height": 64}`.
//! Images are plain PGM (text grayscale), so the example needs no image crate.
//!
//! It shows the whole handler API:
//! - `TaskError::permanent` for what no retry can fix (a bad payload, a file that is
//!   not an image): the task fails at once;
//! - `TaskError::retry` for what a later attempt may not meet (a source not uploaded
//!   yet, a full disk): the task is retried per the type's backoff;
//! - `ctx.checkpoint` after each image and `ctx.last_checkpoint` at the start, so an
//!   attempt that failed, timed out or crashed half-way is resumed, not redone;
//! - `ctx.progress` for whoever watches `taskfleet status ID`;
//! - the cancellation token: stop between images when the task is cancelled, times
//!   out or the worker drains.
//!
//! Run a worker for it (configured like `taskfleet-worker`, e.g. `TASKFLEET_NAMESPACE`):
//! ```text
//! cargo run -p taskfleet-worker --example resize
//! taskfleet enqueue resize '{"images":[{"src":"/tmp/in.pgm","dst":"/tmp/out.pgm"}],"width":32,"height":32}'
//! ```

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use taskfleet_common::Config;
use taskfleet_worker::{Handler, TaskContext, TaskError, TaskResult, Worker};
use tokio_util::sync::CancellationToken;

/// Largest accepted width or height, source or thumbnail (bounds the memory a task takes).
const MAX_SIDE: usize = 16_384;

pub struct Resize;

impl Handler for Resize {
    async fn run(&self, mut ctx: TaskContext, payload: Value) -> TaskResult {
        let job = Job::parse(&payload)?;
        // Images an earlier attempt of this task already finished.
        let resumed_from = ctx
            .last_checkpoint()
            .and_then(|c| c.get("done"))
            .and_then(Value::as_u64)
            .map_or(0, |n| n as usize)
            .min(job.images.len());
        let total = job.images.len();
        for (i, image) in job.images.iter().enumerate().skip(resumed_from) {
            if ctx.is_stopping() {
                return Err(TaskError::Stopped);
            }
            // Decoding and scaling are CPU work: keep them off the async threads.
            let (src, dst, size) = (image.src.clone(), image.dst.clone(), job.size);
            tokio::task::spawn_blocking(move || thumbnail(&src, &dst, size))
                .await
                .map_err(|e| TaskError::retry(format!("resize: {e}")))??;
            let done = i + 1;
            // Stored before the next image starts; `false` would mean this attempt was
            // taken over (or Redis is unreachable): the next attempt redoes one image at most.
            ctx.checkpoint(json!({ "done": done })).await;
            let message = format!("{done} of {total} images");
            ctx.progress((done * 100 / total) as u8, Some(&message))
                .await;
        }
        Ok(json!({ "resized": total, "resumed_from": resumed_from }))
    }
}

struct Job {
    images: Vec<Image>,
    size: (usize, usize),
}

struct Image {
    src: PathBuf,
    dst: PathBuf,
}

impl Job {
    fn parse(payload: &Value) -> Result<Self, TaskError> {
        let side = |key: &str| {
            payload
                .get(key)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .filter(|n| (1..=MAX_SIDE).contains(n))
                .ok_or_else(|| {
                    TaskError::permanent(format!(
                        "resize: \"{key}\" must be an integer from 1 to {MAX_SIDE}"
                    ))
                })
        };
        let size = (side("width")?, side("height")?);
        let path = |image: &Value, key: &str| {
            image
                .get(key)
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        let images = payload
            .get("images")
            .and_then(Value::as_array)
            .filter(|list| !list.is_empty())
            .and_then(|list| {
                list.iter()
                    .map(|i| {
                        Some(Image {
                            src: path(i, "src")?,
                            dst: path(i, "dst")?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| {
                TaskError::permanent(
                    "resize: \"images\" must be a non-empty list of {\"src\": path, \"dst\": path}",
                )
            })?;
        Ok(Self { images, size })
    }
}

/// Reads `src`, scales it to `size` and writes `dst` (through a temporary file, so a
/// crash never leaves half a thumbnail behind).
fn thumbnail(src: &Path, dst: &Path, (width, height): (usize, usize)) -> Result<(), TaskError> {
    let text = std::fs::read_to_string(src)
        .map_err(|e| TaskError::retry(format!("resize: cannot read {}: {e}", src.display())))?;
    let image = Pgm::parse(&text).ok_or_else(|| {
        TaskError::permanent(format!(
            "resize: {} is not a plain PGM (P2) image",
            src.display()
        ))
    })?;
    let tmp = dst.with_extension("part");
    std::fs::write(&tmp, image.scaled(width, height).to_text())
        .and_then(|()| std::fs::rename(&tmp, dst))
        .map_err(|e| TaskError::retry(format!("resize: cannot write {}: {e}", dst.display())))
}

/// A grayscale image in the plain PGM format.
struct Pgm {
    width: usize,
    height: usize,
    max: u16,
    pixels: Vec<u16>,
}

impl Pgm {
    fn parse(text: &str) -> Option<Self> {
        let mut tokens = text
            .lines()
            .flat_map(|line| line.split('#').next().unwrap_or("").split_whitespace());
        if tokens.next()? != "P2" {
            return None;
        }
        let mut number = || tokens.next()?.parse::<usize>().ok();
        let (width, height, max) = (number()?, number()?, number()?);
        if !(1..=MAX_SIDE).contains(&width)
            || !(1..=MAX_SIDE).contains(&height)
            || !(1..=65_535).contains(&max)
        {
            return None;
        }
        let pixels = (0..width * height)
            .map(|_| number().filter(|&v| v <= max).map(|v| v as u16))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            width,
            height,
            max: max as u16,
            pixels,
        })
    }

    /// Nearest-neighbour scaling.
    fn scaled(&self, width: usize, height: usize) -> Self {
        let pixels = (0..height)
            .flat_map(|y| {
                let row = y * self.height / height * self.width;
                (0..width).map(move |x| self.pixels[row + x * self.width / width])
            })
            .collect();
        Self {
            width,
            height,
            max: self.max,
            pixels,
        }
    }

    fn to_text(&self) -> String {
        let mut out = format!("P2\n{} {}\n{}\n", self.width, self.height, self.max);
        for row in self.pixels.chunks(self.width) {
            let row: Vec<String> = row.iter().map(u16::to_string).collect();
            out.push_str(&row.join(" "));
            out.push('\n');
        }
        out
    }
}

/// A worker for `resize` until Ctrl-C (a second Ctrl-C stops waiting for the drain).
/// Configuration as for `taskfleet-worker`: `TASKFLEET_*` environment variables.
#[allow(dead_code)] // the tests include this file as a module and use only `Resize`
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::load(None)?;
    if config.worker.types.is_empty() {
        // Leave the built-in types to other workers.
        config.worker.types = vec!["resize".to_owned()];
    }
    taskfleet_common::logging::init(config.log_format);
    let worker = Worker::new(config)?.handler("resize", Resize)?;

    let (shutdown, abort) = (CancellationToken::new(), CancellationToken::new());
    let signals = (shutdown.clone(), abort.clone());
    tokio::spawn(async move {
        for token in [signals.0, signals.1] {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            token.cancel();
        }
    });
    worker.run(shutdown, abort).await?;
    Ok(())
}
