//! The HTTP API does what its OpenAPI document says: schemathesis (`--checks all`)
//! fuzzes `taskfleet serve` and must find nothing; bodies over the limit get 413.
//!
//! schemathesis comes from PyPI into a virtualenv under `target/schemathesis/`
//! (made when missing, reused by later runs). Without Python or its venv module the
//! schemathesis test prints a SKIP line and passes; every other failure fails it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use taskfleet_tests::http::{request, serve};
use taskfleet_tests::process::cli_command;
use taskfleet_tests::{Fleet, free_port, poll_until};
use tokio::process::Command;

/// The schemathesis release the check is pinned to (a new release may add checks).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// Examples per operation and phase: enough to find what a new route gets wrong,
/// few enough to finish in well under a minute.
const MAX_EXAMPLES: &str = "25";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_in_the_served_api() {
    let Some(st) = schemathesis().await else {
        return;
    };
    let fleet = Fleet::new().await;
    let port = free_port().await;
    let listen = format!("127.0.0.1:{port}");
    let token = "contract-test-token";
    let mut server = cli_command(&fleet.config, &["serve", "--listen", &listen]).await;
    let server = server
        .env("TASKFLEET_HTTP__TOKENS", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("taskfleet serve starts");
    let addr = listen.parse().expect("an address");
    let up = poll_until(Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(addr).await.ok()?;
        (request(addr, "GET", "/healthz", None, None).await.status == 200).then_some(())
    })
    .await;
    assert!(up.is_some(), "taskfleet serve did not answer on {listen}");

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/schemathesis.toml");
    let out = Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("http://{listen}/openapi.json"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--no-color",
            // The workflow body's schema does not bound its tasks' fields yet (open
            // in the issue notes); the rest of the API is fuzzed.
            "--exclude-path",
            "/v1/workflows",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        // A run_at beyond the longest delay is a bound relative to now, which the
        // schema cannot state: the hook keeps generated ones within it.
        .env("SCHEMATHESIS_HOOKS", "taskfleet_hooks")
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis"),
        )
        // Its caches (.schemathesis/, .hypothesis/) go beside the venv, not into the tree.
        .current_dir(target_dir().join("schemathesis"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("schemathesis runs");
    drop(server);
    fleet.teardown().await;
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_or_payload_over_the_limit_gets_413() {
    let fleet = Fleet::new().await;
    let (addr, stop) = serve(&fleet).await;
    let limit = fleet.config.payload_limit;
    for (what, size) in [
        ("a 3 MB body", 3 * 1024 * 1024),
        ("a payload over payload_limit", limit + 1000),
    ] {
        let body = format!(r#"{{"type":"echo","payload":"{}"}}"#, "x".repeat(size));
        let a = request(addr, "POST", "/v1/tasks", None, Some(&body)).await;
        assert_eq!(a.status, 413, "{what}: {}", a.body);
        assert_eq!(a.json()["error"]["code"], "too_large", "{what}: {}", a.body);
    }
    let a = request(
        addr,
        "POST",
        "/v1/tasks/batch",
        None,
        Some(&"x".repeat(3 << 20)),
    )
    .await;
    assert_eq!(a.status, 413, "a 3 MB batch: {}", a.body);
    assert_eq!(fleet.stats("echo").await.enqueued, 0);
    stop.cancel();
    fleet.teardown().await;
}

/// The schemathesis executable, installed into the cached venv when missing; `None`
/// (after a SKIP line) only when Python cannot make a venv at all.
async fn schemathesis() -> Option<PathBuf> {
    let venv = target_dir().join("schemathesis").join("venv");
    let st = venv.join("bin").join("schemathesis");
    if st.exists() {
        return Some(st);
    }
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .stdin(Stdio::null())
        .output()
        .await;
    match made {
        Ok(o) if o.status.success() => {}
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            eprintln!(
                "SKIP schemathesis: python3 -m venv is not available ({})",
                why.trim()
            );
            return None;
        }
    }
    let pip = Command::new(venv.join("bin").join("pip"))
        .args(["install", "--quiet", SCHEMATHESIS])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("pip runs");
    assert!(
        pip.status.success(),
        "pip install {SCHEMATHESIS} failed: {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    Some(st)
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        })
}
