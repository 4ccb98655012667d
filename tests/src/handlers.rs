//! Helpers shared by the handler tests: a scratch directory per test, and reading
//! JSON and timestamps out of a task's record.

use serde_json::Value;
use std::path::PathBuf;

/// A directory of its own for one test's scripts and files, removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("tf-handlers-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write scratch file");
        path
    }

    pub fn text(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.path(name)).ok()
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

pub fn json_of(text: Option<&str>) -> Value {
    serde_json::from_str(text.expect("field present")).expect("field holds JSON")
}

pub fn ms(r: &taskfleet_common::store::TaskRecord, field: &str) -> u64 {
    r.get(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} is a timestamp in {r:?}"))
}
