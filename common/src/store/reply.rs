//! Reading script replies: Lua returns flat arrays of strings and integers.

use super::StoreError;
use redis::Value;

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
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
    items(v).iter().filter_map(text).collect()
}

pub(crate) fn unexpected(script: &'static str, reply: &[Value]) -> StoreError {
    StoreError::Protocol {
        script,
        reply: format!("{reply:?}").chars().take(200).collect(),
    }
}
