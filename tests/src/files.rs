//! File access for async code, off the runtime's threads (`spawn_blocking`): the
//! workspace's tokio has no `fs` feature, and a test must not block its runtime.

use std::path::{Path, PathBuf};

/// The file's text, `None` if it cannot be read (yet).
pub async fn read_text(path: impl AsRef<Path>) -> Option<String> {
    let path = path.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::read_to_string(path).ok())
        .await
        .ok()
        .flatten()
}

/// Writes (replaces) the file; panics naming it if it cannot.
pub async fn write(path: impl AsRef<Path>, text: impl Into<String>) {
    let (path, text) = (path.as_ref().to_path_buf(), text.into());
    tokio::task::spawn_blocking(move || {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()))
    })
    .await
    .expect("file writer");
}

/// Removes the file; panics naming it if it cannot.
pub async fn remove(path: impl AsRef<Path>) {
    let path = path.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()))
    })
    .await
    .expect("file remover");
}

/// A new (truncated) file to hand to a child process as its output.
pub async fn create(path: impl AsRef<Path>) -> std::fs::File {
    let path: PathBuf = path.as_ref().to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::fs::File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
    })
    .await
    .expect("file creator")
}
