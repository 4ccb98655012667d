//! Helpers of the calls' unit tests: replies as Redis sends them, and the check that
//! a call fills exactly what its script's header lists.

use super::{Call, Context, Invocation};
use crate::names::Names;
use crate::store::StoreError;
use redis::Value;

pub(crate) fn s(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

pub(crate) fn arr(items: Vec<Value>) -> Value {
    Value::Array(items)
}

pub(crate) fn names() -> Names {
    Names::new("unit".parse().expect("namespace"))
}

pub(crate) fn assert_protocol<T: std::fmt::Debug>(script: &str, r: crate::store::Result<T>) {
    match r {
        Err(StoreError::Protocol { script: s, .. }) => assert_eq!(s, script),
        other => panic!("expected a protocol error from {script}.lua, got {other:?}"),
    }
}

/// The names a header line lists: `-- KEYS: a, b (why), c` continued on lines that
/// start with `--` and three spaces; each item's first word; up to a `...`.
fn header(lua: &str, label: &str) -> Vec<String> {
    let mut lines = lua
        .lines()
        .skip_while(|l| !l.starts_with(&format!("-- {label}:")));
    let mut text = lines
        .next()
        .map(|l| l[format!("-- {label}:").len()..].to_owned())
        .unwrap_or_else(|| panic!("no `-- {label}:` header"));
    for l in lines.take_while(|l| l.starts_with("--   ")) {
        text.push(' ');
        text.push_str(&l[2..]);
    }
    let fixed = text.split("...").next().unwrap_or_default();
    let mut plain = String::new();
    let mut depth = 0;
    for c in fixed.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    plain
        .split(',')
        .filter_map(|item| item.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The script's header lists `C::KEYS` and `C::ARGV`, and `call` fills that many.
pub(crate) fn assert_fills_its_header<C: Call>(call: &C) {
    let path = format!("{}/lua/{}.lua", env!("CARGO_MANIFEST_DIR"), C::SCRIPT);
    let lua = std::fs::read_to_string(&path).expect("script readable");
    assert_eq!(header(&lua, "KEYS"), C::KEYS, "{path}: KEYS header");
    assert_eq!(header(&lua, "ARGV"), C::ARGV, "{path}: ARGV header");
    let names = names();
    let mut inv = Invocation::default();
    call.fill(
        Context {
            names: &names,
            retention_ms: 1000,
        },
        &mut inv,
    );
    assert_eq!(inv.keys.len(), C::KEYS.len(), "{}: keys filled", C::SCRIPT);
    if C::VARIADIC {
        assert!(inv.args.len() >= C::ARGV.len(), "{}: argv", C::SCRIPT);
        assert_eq!(
            (inv.args.len() - C::ARGV.len()) % 2,
            0,
            "{}: pairs",
            C::SCRIPT
        );
    } else {
        assert_eq!(inv.args.len(), C::ARGV.len(), "{}: argv filled", C::SCRIPT);
    }
}
