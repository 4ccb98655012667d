//! The HTTP API (`taskfleet serve`) on 127.0.0.1:0, over a real producer.

use serde_json::json;
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_tests::http::{call, serve};
use taskfleet_tests::{Fleet, test_config};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_enqueued_read_and_cancelled_over_http_with_a_token() {
    let mut config = test_config();
    config.http.tokens = vec!["s3cret".into()];
    let mut fleet = Fleet::with_config(config).await;
    let (addr, stop) = serve(&fleet).await;
    let tok = Some("s3cret");

    let (status, v) = call(
        addr,
        "POST",
        "/v1/tasks",
        None,
        Some(r#"{"type":"echo","payload":1}"#),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "unauthorized");
    let (status, _) = call(
        addr,
        "POST",
        "/v1/tasks",
        Some("wrong"),
        Some(r#"{"type":"echo"}"#),
    )
    .await;
    assert_eq!(status, 401);

    let (status, v) = call(
        addr,
        "POST",
        "/v1/tasks",
        tok,
        Some(r#"{"type":"echo","payload":{"a":1}}"#),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["state"], "pending");
    let id = v["id"].as_str().expect("id").to_owned();

    fleet.start_worker().await;
    fleet
        .wait_for_state(
            &id.parse().expect("id"),
            TaskState::Completed,
            Duration::from_secs(10),
        )
        .await;
    let (status, v) = call(addr, "GET", &format!("/v1/tasks/{id}"), tok, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["result"], json!({"a": 1}));

    let (status, v) = call(addr, "POST", &format!("/v1/tasks/{id}/cancel"), tok, None).await;
    assert_eq!(
        (status, v["state"].as_str()),
        (200, Some("completed")),
        "cancelling a finished task changes nothing"
    );

    let (status, v) = call(
        addr,
        "POST",
        "/v1/tasks/batch",
        tok,
        Some(r#"{"tasks":[{"type":"echo","payload":1},{"type":"echo","payload":3}]}"#),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r["id"].is_string()), "{v}");

    let (status, v) = call(
        addr,
        "POST",
        "/v1/tasks/batch",
        tok,
        Some(r#"{"tasks":[{"type":"echo","payload":1},{"type":"Bad!"}]}"#),
    )
    .await;
    assert_eq!(status, 400, "one invalid task refuses the whole batch: {v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("tasks[1]")),
        "{v}"
    );

    let (status, v) = call(addr, "GET", "/v1/stats", tok, None).await;
    assert_eq!(status, 200);
    assert_eq!(v["types"]["echo"]["enqueued"], 3);
    let (status, v) = call(addr, "GET", "/v1/workers", tok, None).await;
    assert_eq!((status, v.as_array().map(Vec::len)), (200, Some(1)));
    let (status, _) = call(addr, "GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
    let (status, v) = call(addr, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(v["paths"]["/v1/tasks"].is_object(), "{v}");
    stop.cancel();
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_with_the_right_status() {
    let mut config = test_config();
    config.payload_limit = 1000;
    let fleet = Fleet::with_config(config).await;
    let (addr, stop) = serve(&fleet).await;
    for (method, path, body, want) in [
        ("POST", "/v1/tasks", "{not json", 400),
        ("POST", "/v1/tasks", r#"{"type":"Bad Type"}"#, 400),
        ("POST", "/v1/tasks", r#"{"type":"echo","priority":12}"#, 400),
        ("GET", "/v1/tasks/not-an-id", "", 400),
        (
            "GET",
            "/v1/tasks/01934f9e-7a3b-7c00-8000-000000000000",
            "",
            404,
        ),
        (
            "POST",
            "/v1/tasks/01934f9e-7a3b-7c00-8000-000000000000/cancel",
            "",
            404,
        ),
    ] {
        let (status, v) = call(addr, method, path, None, Some(body)).await;
        assert_eq!(status, want, "{method} {path} {body}: {v}");
        assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{v}"
        );
    }
    let big = format!(r#"{{"type":"echo","payload":"{}"}}"#, "x".repeat(1500));
    let (status, v) = call(addr, "POST", "/v1/tasks", None, Some(&big)).await;
    assert_eq!(status, 413, "a payload over payload_limit: {v}");
    assert_eq!(v["error"]["code"], "too_large", "{v}");
    assert_eq!(fleet.stats("echo").await.enqueued, 0);
    stop.cancel();
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_beyond_loopback_without_tokens_is_refused() {
    let fleet = Fleet::new().await;
    let r = taskfleet_producer::http::serve(
        fleet.producer.clone(),
        "0.0.0.0:0",
        CancellationToken::new(),
    )
    .await;
    let e = r.expect_err("refused");
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("http.tokens"), "{e}");
    fleet.teardown().await;
}
