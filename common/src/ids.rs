//! Typed identifiers: a task id, a task type and a worker id never travel as bare strings.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A task id: a UUID v7, so ids sort by creation time in `redis-cli --scan` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| {
            InvalidName::new(
                "task id",
                s,
                "a UUID such as 01934f9e-7a3b-7c00-8000-000000000000",
            )
        })
    }
}

/// A task type: `[a-z0-9][a-z0-9._-]{0,63}`. It is the AMQP routing key and part of
/// queue and Redis key names, so it is validated once, where it enters the system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TaskType(String);

impl TaskType {
    pub const MAX_LEN: usize = 64;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_valid(s: &str) -> bool {
        let bytes = s.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    }
}

impl FromStr for TaskType {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if Self::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName::new(
                "task type",
                s,
                "1-64 characters of [a-z0-9._-], starting with a letter or digit",
            ))
        }
    }
}

impl<'de> Deserialize<'de> for TaskType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A worker's identity in the registry: `host-pid-random`, unique across restarts
/// so a restarted worker never inherits a dead one's leases.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkerId(String);

impl WorkerId {
    pub fn generate(host: &str, pid: u32) -> Self {
        let random = Uuid::new_v4().simple().to_string();
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        Self(format!("{host}-{pid}-{}", &random[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for WorkerId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace: the prefix of every AMQP name and Redis key of one fleet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Namespace(String);

impl Namespace {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("taskfleet".to_owned())
    }
}

impl FromStr for Namespace {
    type Err = InvalidName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Same alphabet as task types: it appears in queue names and Redis keys,
        // where ':' or spaces would break the key layout people read with redis-cli.
        if TaskType::is_valid(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName::new(
                "namespace",
                s,
                "1-64 characters of [a-z0-9._-], starting with a letter or digit",
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A name that did not pass validation, with what was expected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid {what} {value:?}: expected {expected}")]
pub struct InvalidName {
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl InvalidName {
    fn new(what: &'static str, value: &str, expected: &'static str) -> Self {
        let value: String = value.chars().take(80).collect();
        Self {
            what,
            value,
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_type_accepts_the_documented_alphabet() {
        for ok in ["echo", "a", "0", "img.resize_v2-x", &"a".repeat(64)] {
            assert!(ok.parse::<TaskType>().is_ok(), "{ok}");
        }
        for bad in ["", "Echo", "-x", ".x", "a b", "a:b", &"a".repeat(65), "é"] {
            assert!(bad.parse::<TaskType>().is_err(), "{bad}");
        }
    }

    #[test]
    fn task_ids_are_time_ordered_v7() {
        let a = TaskId::new();
        let b = TaskId::new();
        assert_eq!(a.as_uuid().get_version_num(), 7);
        assert!(a < b);
        assert_eq!(a.to_string().parse::<TaskId>().ok(), Some(a));
    }
}
