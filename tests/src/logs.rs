//! Where a test's worker processes (and files of its own) write: one place per
//! namespace in the temporary directory, `{ns}-{name}.log`. `Fleet::teardown` removes
//! them when the test passed; a failed test leaves them for the post-mortem.

use std::path::PathBuf;
use taskfleet_common::Config;

pub fn log_path(config: &Config, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}.log", config.namespace))
}

/// The log so far (empty if there is none yet).
pub async fn log_text(config: &Config, name: &str) -> String {
    crate::files::read_text(log_path(config, name))
        .await
        .unwrap_or_default()
}

/// `Some` once the log holds `needle` (for `eventually`).
pub async fn log_contains(config: &Config, name: &str, needle: &str) -> Option<()> {
    log_text(config, name).await.contains(needle).then_some(())
}

/// Removes every `{ns}-*` file of the temporary directory.
pub async fn remove_logs(config: &Config) {
    let prefix = format!("{}-", config.namespace);
    let _ = tokio::task::spawn_blocking(move || {
        let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for f in dir.flatten() {
            if f.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    })
    .await;
}
