//! Loading and validating the configuration: layering, env filtering, key names in errors.

use super::*;
use std::io::Write;

fn load_toml(text: &str) -> Result<Config, ConfigError> {
    let dir = std::env::temp_dir().join(format!("tf-cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("taskfleet.toml");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write config");
    let r = Config::load_from(Some(&path), std::iter::empty());
    let _ = std::fs::remove_dir_all(&dir);
    r
}

#[test]
fn defaults_are_valid() {
    Config::default().validate().expect("defaults validate");
}

#[test]
fn file_overrides_defaults_and_types_inherit() {
    let cfg = load_toml(
        r#"
namespace = "shop"
[defaults]
max_attempts = 3
[types.resize]
exec = ["python3", "resize.py"]
timeout = "30s"
[types.resize.backoff]
initial = "200ms"
multiplier = 3.0
max = "10s"
jitter = 0.0
"#,
    )
    .expect("valid config");
    assert_eq!(cfg.namespace.as_str(), "shop");
    let s = cfg.type_settings(&"resize".parse().expect("type"));
    assert_eq!(s.max_attempts, 3);
    assert_eq!(s.timeout, Duration::from_secs(30));
    assert_eq!(s.backoff.initial, Duration::from_millis(200));
}

#[test]
fn environment_overrides_the_file_and_ignores_other_variables() {
    let env = [
        ("TASKFLEET_NAMESPACE", "fromenv"),
        ("TASKFLEET_WORKER__CONCURRENCY", "32"),
        ("TASKFLEET_WORKER__TYPES", "echo,sleep"),
        ("TASKFLEET_CONFIG", "/etc/taskfleet.toml"),
        ("TASKFLEET_LINT", "1"),
        ("OTHER", "x"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let cfg = Config::load_from(None, env).expect("valid");
    assert_eq!(cfg.namespace.as_str(), "fromenv");
    assert_eq!(cfg.worker.concurrency, 32);
    assert_eq!(cfg.worker.types, vec!["echo", "sleep"]);
    let typo = [("TASKFLEET_WORKER__CONCURENCY".to_owned(), "3".to_owned())];
    let e = Config::load_from(None, typo)
        .expect_err("refused")
        .to_string();
    assert!(e.contains("concurency"), "{e}");
}

#[test]
fn debug_output_hides_secrets() {
    let mut c = Config {
        amqp_url: "amqp://user:hunter2@mq:5672/%2f".into(),
        redis_url: "redis://:hunter2@cache:6379".into(),
        ..Default::default()
    };
    c.http.tokens = vec!["hunter2".into()];
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("mq:5672"), "{shown}");
}

#[test]
fn bad_values_name_their_key() {
    let e = load_toml("[worker]\nconcurrency = 0\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("worker.concurrency"), "{e}");
    let e = load_toml("[types.Bad]\n").expect_err("refused").to_string();
    assert!(e.contains("types.Bad"), "{e}");
    let e = load_toml("[worker]\nlease = \"soon\"\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("lease"), "{e}");
    let e = load_toml("nmespace = \"x\"\n")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("nmespace"), "{e}");
}
