//! Guarantee 5 for parsing (docs/guarantees.md): whatever bytes arrive as a message
//! body, and whatever a configuration file or the environment says, the parser
//! answers with a value or a typed error (`EnvelopeError`, `ConfigError`), never a
//! panic. Property tests, no servers.

use proptest::prelude::*;
use serde_json::{Value, json};
use taskfleet_common::Config;
use taskfleet_common::envelope::Envelope;

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field names an envelope knows, and some it does not.
fn envelope_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_owned()),
        Just("type".to_owned()),
        Just("payload".to_owned()),
        Just("attempt".to_owned()),
        Just("max_attempts".to_owned()),
        Just("priority".to_owned()),
        Just("timeout_ms".to_owned()),
        Just("created_at".to_owned()),
        Just("trace_id".to_owned()),
        "[a-z_]{1,12}",
    ]
}

fn valid_envelope() -> Value {
    json!({"id": "01934f9e-7a3b-7c00-8000-000000000000", "type": "echo", "payload": {"a": 1}})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_the_envelope_parser(body in prop::collection::vec(any::<u8>(), 0..512),
                                                       limit in 0usize..2048) {
        let _ = Envelope::parse(&body, limit);
    }

    #[test]
    fn arbitrary_json_never_panics_the_envelope_parser(v in any_json(), limit in 0usize..4096) {
        let body = serde_json::to_vec(&v).unwrap_or_default();
        let _ = Envelope::parse(&body, limit);
    }

    /// A valid envelope with some fields replaced by anything: accepted, or refused
    /// with a reason; an accepted one resolves and round-trips.
    #[test]
    fn a_valid_envelope_with_arbitrary_fields_parses_or_says_why(
        changes in prop::collection::vec((envelope_field(), any_json()), 0..6),
    ) {
        let mut v = valid_envelope();
        for (field, value) in changes {
            v[field] = value;
        }
        let body = serde_json::to_vec(&v).unwrap_or_default();
        match Envelope::parse(&body, 1 << 20) {
            Ok(env) => {
                let resolved = env.resolve(&Config::default());
                prop_assert!(resolved.max_attempts >= 1);
                prop_assert!(resolved.priority <= 9);
                let again = Envelope::parse(&env.to_bytes(), 1 << 20);
                prop_assert!(again.is_ok(), "{:?}", again.err());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

/// Keys a configuration file may set (and a few it may not).
fn config_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "namespace",
        "amqp_url",
        "payload_limit",
        "result_limit",
        "retention",
        "network_timeout",
        "queue_type",
        "max_redeliveries",
        "log_format",
        "defaults.max_attempts",
        "defaults.timeout",
        "defaults.priority",
        "defaults.backoff.initial",
        "defaults.backoff.multiplier",
        "defaults.backoff.max",
        "defaults.backoff.jitter",
        "types.slow.timeout",
        "types.slow.max_attempts",
        "types.slow.exec",
        "types.Bad.priority",
        "worker.concurrency",
        "worker.types",
        "worker.heartbeat_interval",
        "worker.lease",
        "worker.park_after",
        "worker.metrics_listen",
        "http.listen",
        "http.tokens",
        "nonsense",
        "worker.nonsense",
    ])
}

/// A TOML value of any kind, durations and numbers near their edges included.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        "[0-9]{1,25}(ns|ms|s|m|h|d|y|)".prop_map(|d| format!("{d:?}")),
        ".{0,20}".prop_map(|s| format!("{s:?}")),
        prop::collection::vec(".{0,8}", 0..4).prop_map(|v| format!("{v:?}")),
        Just("{ a = 1 }".to_owned()),
    ]
}

fn write_config(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "taskfleet-prop-{}-{}.toml",
        std::process::id(),
        uuid_like()
    ));
    std::fs::write(&path, text).expect("temp file writable");
    path
}

fn uuid_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_text_as_a_config_file_never_panics(text in ".{0,200}") {
        let path = write_config(&text);
        let result = Config::load_from(Some(&path), Vec::new());
        let _ = std::fs::remove_file(&path);
        if let Err(e) = result {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn arbitrary_values_in_a_config_file_load_or_name_the_problem(
        entries in prop::collection::vec((config_key(), toml_value()), 0..6),
    ) {
        // Dotted keys at the top level are plain TOML.
        let text: String = entries.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let path = write_config(&text);
        let result = Config::load_from(Some(&path), Vec::new());
        let _ = std::fs::remove_file(&path);
        match result {
            Ok(c) => {
                prop_assert!(c.validate().is_ok());
                // What a loaded configuration promises the code that uses it.
                let _ = c.worker.park_check_back();
                let _ = c.type_settings(&"slow".parse().expect("a valid type"));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn arbitrary_environment_values_load_or_name_the_problem(
        entries in prop::collection::vec((config_key(), ".{0,24}"), 0..5),
    ) {
        let env: Vec<(String, String)> = entries
            .into_iter()
            .map(|(k, v)| (format!("TASKFLEET_{}", k.replace('.', "__").to_uppercase()), v))
            .collect();
        if let Err(e) = Config::load_from(None, env) {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// Durations so long that a multiple of them would overflow are refused by name.
#[test]
fn absurd_durations_are_refused_by_key() {
    for (key, value) in [
        ("worker.lease", "\"18446744073709551615s\""),
        ("network_timeout", "\"500000d\""),
        ("types.slow.timeout", "\"9000000000s\""),
    ] {
        let path = write_config(&format!("{key} = {value}\n"));
        let result = Config::load_from(Some(&path), Vec::new());
        let _ = std::fs::remove_file(&path);
        let err = result.expect_err(key).to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}
