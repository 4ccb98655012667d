//! The Rust↔Lua contract without a server: the prelude's tables equal their Rust
//! sources and no script types them by hand, and every task-hash field a script
//! names is a `TaskField`.

use super::fields::TaskField;
use super::read::TypeStats;
use super::scripts::{PRELUDE, PRELUDE_CONSTANTS, prelude};
use crate::state::TaskState;
use std::collections::{BTreeMap, BTreeSet};

/// A token of Lua source, as much of Lua as these tests need.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Punct(char),
}

fn tokens(lua: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = lua.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' | '"' => {
                let mut s = String::new();
                while let Some(next) = chars.next() {
                    match next {
                        '\\' => s.extend(chars.next()),
                        q if q == c => break,
                        other => s.push(other),
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut w = c.to_string();
                while let Some(&c) = chars.peek() {
                    if !(c.is_alphanumeric() || c == '_') {
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Tok::Word(w));
            }
            c if c.is_whitespace() => {}
            c => out.push(Tok::Punct(c)),
        }
    }
    out
}

fn word(t: Option<&Tok>, w: &str) -> bool {
    matches!(t, Some(Tok::Word(x)) if x == w)
}

fn punct(t: Option<&Tok>, p: char) -> bool {
    t == Some(&Tok::Punct(p))
}

/// The elements of the bracketed list opening at `toks[open]`, split at its top-level
/// commas, and the index of its closing bracket.
fn elements(toks: &[Tok], open: usize) -> (Vec<Vec<Tok>>, usize) {
    let (mut depth, mut items, mut current) = (0, Vec::new(), Vec::new());
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('(' | '{' | '[') => {
                depth += 1;
                if depth == 1 {
                    continue;
                }
            }
            Tok::Punct(')' | '}' | ']') => {
                depth -= 1;
                if depth == 0 {
                    if !current.is_empty() {
                        items.push(current);
                    }
                    return (items, i);
                }
            }
            Tok::Punct(',') if depth == 1 => {
                items.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(t.clone());
    }
    panic!("unbalanced brackets from token {open}");
}

fn literal(element: &[Tok]) -> Option<&str> {
    match element {
        [Tok::Str(s)] => Some(s),
        _ => None,
    }
}

/// A flat `{'field', value, 'field', value}` list: its string literals in field position.
fn pair_list_fields(items: &[Vec<Tok>]) -> Vec<String> {
    items
        .iter()
        .step_by(2)
        .filter_map(|e| literal(e).map(str::to_owned))
        .collect()
}

/// The field names a script uses on the task hash. Conventions the scripts follow (and
/// this scan relies on): the task hash's key is in a variable named `task`, and a list
/// of fields to set is a table literal assigned to `fields`, appended to `fields`, or
/// passed to `move` / `finish_fields`.
fn task_fields_used(lua: &str) -> BTreeSet<String> {
    let toks = tokens(lua);
    let mut used = BTreeSet::new();
    for i in 0..toks.len() {
        let at = |k: usize| toks.get(i + k);
        // redis.call('HGET', task, 'a') / ('HSET', task, 'a', v, 'b', v)
        if word(at(0), "redis") && punct(at(1), '.') && word(at(2), "call") && punct(at(3), '(') {
            let (args, _) = elements(&toks, i + 3);
            let (Some(cmd), Some(key)) = (args.first().and_then(|a| literal(a)), args.get(1))
            else {
                continue;
            };
            if key.as_slice() != [Tok::Word("task".into())] {
                continue;
            }
            let rest = &args[2..];
            match cmd {
                "HGET" | "HMGET" | "HDEL" | "HEXISTS" => {
                    used.extend(rest.iter().filter_map(|e| literal(e).map(str::to_owned)))
                }
                "HSET" | "HSETNX" | "HINCRBY" => used.extend(pair_list_fields(rest)),
                _ => {}
            }
        }
        // fields = {...}
        if word(at(0), "fields") && punct(at(1), '=') && punct(at(2), '{') {
            used.extend(pair_list_fields(&elements(&toks, i + 2).0));
        }
        // fields[#fields + 1] = 'name'
        if word(at(0), "fields") && punct(at(1), '[') {
            let (_, close) = elements(&toks, i + 1);
            if let (Some(Tok::Punct('=')), Some(Tok::Str(s))) =
                (toks.get(close + 1), toks.get(close + 2))
            {
                used.insert(s.clone());
            }
        }
        // move(..., {...}) / finish_fields(now, {...})
        if (word(at(0), "move") || word(at(0), "finish_fields")) && punct(at(1), '(') {
            for arg in elements(&toks, i + 1).0 {
                if arg.first() == Some(&Tok::Punct('{')) {
                    used.extend(pair_list_fields(&elements(&arg, 0).0));
                }
            }
        }
    }
    used
}

fn lua_sources() -> Vec<(String, String)> {
    let dir = format!("{}/lua", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("common/lua readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("script readable");
            (p.display().to_string(), text)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 11, "every script found in {dir}");
    files
}

#[test]
fn every_task_field_a_script_uses_is_named_in_rust() {
    let mut seen = BTreeSet::new();
    for (path, lua) in lua_sources() {
        for field in task_fields_used(&lua) {
            assert!(
                TaskField::from_name(&field).is_some(),
                "{path} uses task field {field:?}, which TaskField does not list"
            );
            seen.insert(field);
        }
    }
    // The scan itself works: each way of naming a field is seen at least once.
    for expected in [
        "state",               // HMGET
        "cancel_requested_at", // HGET, and move(...)
        "deliveries",          // HSET with a literal
        "fence",               // fields = {...}
        "trace_id",            // fields[#fields + 1] = ...
        "finished_at",         // finish_fields
        "result",              // finish_fields(now, {...})
    ] {
        assert!(seen.contains(expected), "scan missed {expected}: {seen:?}");
    }
}

#[test]
fn the_field_scan_catches_an_unknown_field() {
    let lua = "local task = KEYS[1]\nredis.call('HSET', task, 'finshed_at', 1)\n\
               move(task, s, e, 'running', 'failed', now, w, {'eror', 'x'})";
    let used = task_fields_used(lua);
    assert!(
        used.contains("finshed_at") && used.contains("eror"),
        "{used:?}"
    );
}

/// The entries `key = value` of the table literal opening at `toks[open]`; a nested
/// table's value is its keys, sorted and joined with commas.
fn entries(toks: &[Tok], open: usize) -> BTreeMap<String, String> {
    elements(toks, open)
        .0
        .iter()
        .map(|e| match e.as_slice() {
            [Tok::Word(k), Tok::Punct('='), Tok::Word(v)] => (k.clone(), v.clone()),
            [Tok::Word(k), Tok::Punct('='), Tok::Str(v)] => (k.clone(), v.clone()),
            [Tok::Word(k), Tok::Punct('='), Tok::Punct('{'), ..] => {
                let inner: Vec<String> = entries(e, 2).into_keys().collect();
                (k.clone(), inner.join(","))
            }
            other => panic!("unexpected table entry {other:?}"),
        })
        .collect()
}

/// `local NAME = <table literal>` in `lua`, read by [`entries`].
fn table(lua: &str, name: &str) -> BTreeMap<String, String> {
    let toks = tokens(lua);
    let at = (0..toks.len())
        .find(|&i| {
            word(toks.get(i), "local") && word(toks.get(i + 1), name) && punct(toks.get(i + 2), '=')
        })
        .unwrap_or_else(|| panic!("no `local {name} =` in the prelude"));
    assert!(punct(toks.get(at + 3), '{'), "{name} is a table literal");
    entries(&toks, at + 3)
}

/// The keys of every `{k = v, ...}` table literal in `lua`.
fn keyed_tables(lua: &str) -> Vec<BTreeSet<String>> {
    let toks = tokens(lua);
    (0..toks.len())
        .filter(|&i| punct(toks.get(i), '{'))
        .map(|i| {
            elements(&toks, i)
                .0
                .iter()
                .filter_map(|e| match e.as_slice() {
                    [Tok::Word(k), Tok::Punct('='), ..] => Some(k.clone()),
                    _ => None,
                })
                .collect::<BTreeSet<String>>()
        })
        .filter(|keys| !keys.is_empty())
        .collect()
}

fn state_set(states: &[TaskState]) -> BTreeMap<String, String> {
    states
        .iter()
        .map(|s| (s.as_str().to_owned(), "true".to_owned()))
        .collect()
}

#[test]
fn prelude_constants_equal_their_rust_sources() {
    let lua = prelude();
    assert_eq!(table(&lua, "LIVE"), state_set(&TaskState::LIVE));
    assert_eq!(table(&lua, "TERMINAL"), state_set(&TaskState::TERMINAL));
    let totals: BTreeMap<String, String> = TaskState::ALL
        .iter()
        .filter_map(|s| Some((s.as_str().to_owned(), s.total_on_entry()?.to_owned())))
        .collect();
    assert_eq!(table(&lua, "TOTAL_ON_ENTRY"), totals);
    let rows: BTreeMap<String, String> = TaskState::ALL
        .iter()
        .map(|from| {
            let mut to: Vec<&str> = TaskState::ALL
                .iter()
                .filter(|to| from.can_transition_to(**to))
                .map(|to| to.as_str())
                .collect();
            to.sort_unstable();
            (from.as_str().to_owned(), to.join(","))
        })
        .collect();
    assert_eq!(table(&lua, "TRANSITIONS"), rows);
}

#[test]
fn prelude_constants_are_rendered_never_typed() {
    for (name, _) in PRELUDE_CONSTANTS {
        let declared = format!("local {name} = __{name}__");
        assert_eq!(
            PRELUDE.matches(&declared).count(),
            1,
            "lib.lua declares `{declared}` once"
        );
    }
    let placeholders: Vec<Tok> = tokens(&prelude())
        .into_iter()
        .filter(|t| matches!(t, Tok::Word(w) if w.starts_with("__") && w.ends_with("__")))
        .collect();
    assert!(placeholders.is_empty(), "left unrendered: {placeholders:?}");
    for (path, lua) in lua_sources() {
        let toks = tokens(&lua);
        for (name, _) in PRELUDE_CONSTANTS {
            let assignments = toks
                .windows(2)
                .filter(|w| word(w.first(), name) && punct(w.get(1), '='))
                .count();
            let expected = usize::from(path.ends_with("/lib.lua"));
            assert_eq!(
                assignments, expected,
                "{path} assigns {name} by hand; it is rendered from Rust"
            );
        }
        // Nor spells one of the sets out under another name.
        for states in [&TaskState::LIVE[..], &TaskState::TERMINAL[..]] {
            let set: BTreeSet<String> = states.iter().map(|s| s.as_str().to_owned()).collect();
            assert!(
                !keyed_tables(&lua).contains(&set),
                "{path} types the set {set:?}; use the prelude's table"
            );
        }
    }
}

#[test]
fn the_counters_the_prelude_names_are_the_counters_rust_reads() {
    let stats = serde_json::to_value(TypeStats::default()).expect("serializable");
    for s in TaskState::LIVE {
        assert!(stats.get(s.as_str()).is_some(), "TypeStats lacks {s}");
    }
    for total in TaskState::ALL.iter().filter_map(|s| s.total_on_entry()) {
        assert!(stats.get(total).is_some(), "TypeStats lacks {total}");
    }
}
