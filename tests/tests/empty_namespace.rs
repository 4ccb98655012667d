//! Issue 10: empty is not an error. Every read command and endpoint answers in a
//! namespace that has nothing yet (no task, no worker, no dead message).

use serde_json::Value;
use taskfleet_tests::Fleet;
use taskfleet_tests::process::cli;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_exit_0_in_an_empty_namespace() {
    let fleet = Fleet::new().await;
    for args in [
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["workers"],
        vec!["workers", "--json"],
        vec!["types"],
        vec!["types", "--json"],
        vec!["dead", "list"],
        vec!["dead", "list", "--json"],
    ] {
        let (code, out, err) = cli(&fleet.config, &args, None).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        if args.contains(&"--json") {
            let v: Value = serde_json::from_str(&out)
                .unwrap_or_else(|e| panic!("{args:?} prints JSON: {e}: {out}"));
            assert!(v.is_object() || v.is_array(), "{args:?}: {v}");
        }
    }
    fleet.teardown().await;
}

/// `GET path` on a loopback server without a token: (status, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    (status, body.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_endpoints_answer_200_in_an_empty_namespace() {
    let fleet = Fleet::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(taskfleet_producer::http::serve_on(
        fleet.producer.clone(),
        listener,
        stop.clone(),
    ));
    for path in ["/v1/stats", "/v1/workers", "/v1/types"] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    stop.cancel();
    fleet.teardown().await;
}
