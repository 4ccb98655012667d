//! compose/docker-compose.yml is valid. No Docker engine runs on the build machines,
//! so the file is checked (parsed and resolved, nothing started) by whichever compose
//! tool exists: the `docker compose` v2 plugin, else `docker-compose` (the Debian
//! package that `scripts/test` installs when it is missing). Without either the test
//! says so on stderr, visibly, and skips.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// The first compose tool that runs here: its program and leading arguments.
fn compose_tool() -> Option<&'static [&'static str]> {
    const TOOLS: [&[&str]; 2] = [&["docker", "compose"], &["docker-compose"]];
    TOOLS.into_iter().find(|tool| {
        Command::new(tool[0])
            .args(&tool[1..])
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn compose(tool: &[&str], file: &Path, args: &[&str]) -> Output {
    Command::new(tool[0])
        .args(&tool[1..])
        .arg("-f")
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", tool.join(" ")))
}

#[test]
fn compose_file_is_valid() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compose/docker-compose.yml");
    assert!(file.exists(), "{} is missing", file.display());
    let Some(tool) = compose_tool() else {
        // Straight to stderr, not through the captured `eprintln!`, so that the skip
        // shows in the test output without --nocapture.
        let _ = writeln!(
            std::io::stderr(),
            "compose_file_is_valid: SKIPPED, neither `docker compose` nor `docker-compose` \
             runs here (scripts/test installs the Debian package docker-compose)"
        );
        return;
    };
    let name = tool.join(" ");
    let quiet = compose(tool, &file, &["config", "-q"]);
    assert!(
        quiet.status.success(),
        "{name} config -q: {}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let resolved = compose(tool, &file, &["config"]);
    assert!(resolved.status.success(), "{name} config failed");
    let text = String::from_utf8_lossy(&resolved.stdout);
    for service in ["rabbitmq:", "redis:", "worker:"] {
        assert!(text.contains(service), "service {service} missing:\n{text}");
    }
    assert!(
        !text.contains("container_name"),
        "a fixed container name would break --scale worker=N"
    );
}
