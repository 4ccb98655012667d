//! Logging setup for the binaries (libraries only emit `tracing` events).

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Human-readable lines by default, one JSON object per line with `json`.
/// `RUST_LOG` overrides the default `info` level.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,lapin=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
