//! A directory of its own for one test's (or one chaos run's) scripts, files and
//! logs, removed on drop.

use std::path::{Path, PathBuf};

pub struct Scratch(PathBuf);

impl Scratch {
    /// `$TMPDIR/tf-handlers-UUID`.
    pub fn new() -> Self {
        Self::named("handlers")
    }

    /// `$TMPDIR/tf-PURPOSE-UUID`.
    pub fn named(purpose: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tf-{purpose}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub async fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        crate::files::write(&path, text).await;
        path
    }

    pub async fn text(&self, name: &str) -> Option<String> {
        crate::files::read_text(self.path(name)).await
    }

    /// Keeps the directory (for a post-mortem) instead of removing it on drop.
    pub fn keep(self) -> PathBuf {
        let dir = self.0.clone();
        std::mem::forget(self);
        dir
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
