//! Reading replies. Scripts answer flat arrays of tags, strings, integers and `false`
//! (Lua's "absent", which Redis turns into nil, or `false` under RESP3); the strict
//! readers below return `None` for anything else, which the caller reports as
//! `StoreError::Protocol`. `items` and `strings` read plain commands' replies.

use super::StoreError;
use crate::ids::TaskId;
use crate::state::TaskState;
use redis::Value;

/// A script reply's elements.
pub(crate) fn array(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

/// A string element (a tag, a state, an id); never an integer.
pub(crate) fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

/// Whether `v` is the string `tag`.
pub(crate) fn is(v: &Value, tag: &str) -> bool {
    text(v) == Some(tag)
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// A non-negative integer that fits `T` (counts, attempts, milliseconds).
pub(crate) fn count<T: TryFrom<i64>>(v: &Value) -> Option<T> {
    int(v).filter(|i| *i >= 0).and_then(|i| T::try_from(i).ok())
}

/// Lua `false`: the script says "none".
pub(crate) fn absent(v: &Value) -> bool {
    matches!(v, Value::Nil | Value::Boolean(false))
}

/// `Some(None)` for `false`, `Some(Some(x))` when `read` accepts `v`, `None` otherwise.
pub(crate) fn optional<T>(v: &Value, read: impl FnOnce(&Value) -> Option<T>) -> Option<Option<T>> {
    if absent(v) {
        Some(None)
    } else {
        read(v).map(Some)
    }
}

pub(crate) fn state(v: &Value) -> Option<TaskState> {
    text(v)?.parse().ok()
}

pub(crate) fn task_id(v: &Value) -> Option<TaskId> {
    text(v)?.parse().ok()
}

pub(crate) fn task_ids(v: &Value) -> Option<Vec<TaskId>> {
    array(v)?.iter().map(task_id).collect()
}

pub(crate) fn unexpected(script: &'static str, reply: &Value) -> StoreError {
    StoreError::Protocol {
        script,
        reply: format!("{reply:?}").chars().take(200).collect(),
    }
}

fn lenient_text(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        other => text(other).map(str::to_owned),
    }
}

pub(crate) fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        Value::Nil => Vec::new(),
        other => vec![other],
    }
}

pub(crate) fn strings(v: Value) -> Vec<String> {
    items(v).iter().filter_map(lenient_text).collect()
}

/// An array of texts (the envelopes `finish.lua` and `release.lua` return).
pub(crate) fn envelopes(v: &Value) -> Option<Vec<String>> {
    array(v)?
        .iter()
        .map(|x| text(x).map(str::to_owned))
        .collect()
}
