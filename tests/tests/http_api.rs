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

/// An RFC 3339 time `ahead_ms` from now (this machine's clock).
fn rfc3339_in(ahead_ms: u64) -> String {
    let at = std::time::SystemTime::now() + Duration::from_millis(ahead_ms);
    humantime::format_rfc3339_millis(at).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_ms_run_at_and_expires_at_schedule_a_task_over_http() {
    let mut fleet = Fleet::new().await;
    let (addr, stop) = serve(&fleet).await;
    let now = taskfleet_producer::request::now_ms();
    let (status, v) = call(
        addr,
        "POST",
        "/v1/tasks",
        None,
        Some(r#"{"type":"echo","payload":"later","delay_ms":2000}"#),
    )
    .await;
    assert_eq!(
        (status, v["state"].as_str()),
        (202, Some("scheduled")),
        "{v}"
    );
    let delayed = v["id"].as_str().expect("id").to_owned();
    let run_at = v["run_at"].as_u64().expect("run_at in the record");
    assert!(
        (now + 2000..now + 12_000).contains(&run_at),
        "{run_at} vs {now}"
    );

    let at = rfc3339_in(2000);
    let body = format!(
        r#"{{"type":"echo","run_at":"{at}","expires_at":"{}"}}"#,
        rfc3339_in(600_000)
    );
    let (status, v) = call(addr, "POST", "/v1/tasks", None, Some(&body)).await;
    assert_eq!(
        (status, v["state"].as_str()),
        (202, Some("scheduled")),
        "{v}"
    );
    let at_ms = v["run_at"].as_u64().expect("run_at");
    assert!(at_ms >= now + 1000, "run_at is the given time: {v}");
    assert!(v["expires_at"].as_u64().is_some_and(|e| e > at_ms), "{v}");

    let (status, v) = call(
        addr,
        "POST",
        "/v1/tasks/batch",
        None,
        Some(r#"{"tasks":[{"type":"echo","delay_ms":2000},{"type":"echo"}]}"#),
    )
    .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(
        fleet.stats("echo").await.scheduled,
        3,
        "the batch's delayed one too"
    );
    let batch_id = v["results"][0]["id"].as_str().expect("id").to_owned();

    fleet.start_worker().await;
    for id in [&delayed, &batch_id] {
        let rec = fleet
            .wait_for_state(
                &id.parse().expect("id"),
                TaskState::Completed,
                Duration::from_secs(20),
            )
            .await;
        let started = taskfleet_tests::record::ms(&rec, "started_at");
        assert!(
            started + 5 >= taskfleet_tests::record::ms(&rec, "run_at"),
            "not early: {id}"
        );
    }
    stop.cancel();
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_negative_far_or_unparsable_times_are_400_naming_the_field() {
    let fleet = Fleet::new().await;
    let (addr, stop) = serve(&fleet).await;
    let far = 46 * 86_400_000_u64;
    let both = format!(
        r#"{{"type":"echo","delay_ms":10,"run_at":"{}"}}"#,
        rfc3339_in(10)
    );
    let far_delay = format!(r#"{{"type":"echo","delay_ms":{far}}}"#);
    let far_at = format!(r#"{{"type":"echo","run_at":"{}"}}"#, rfc3339_in(far));
    for (body, needles) in [
        (both.as_str(), &["delay_ms", "run_at"][..]),
        (r#"{"type":"echo","delay_ms":-5}"#, &["delay_ms"][..]),
        (far_delay.as_str(), &["delay_ms", "days"][..]),
        (far_at.as_str(), &["run_at", "days"][..]),
        (
            r#"{"type":"echo","run_at":"tomorrow"}"#,
            &["run_at", "RFC 3339"][..],
        ),
        (
            r#"{"type":"echo","expires_at":"12:00"}"#,
            &["expires_at"][..],
        ),
    ] {
        let (status, v) = call(addr, "POST", "/v1/tasks", None, Some(body)).await;
        assert_eq!(status, 400, "{body}: {v}");
        let message = v["error"]["message"].as_str().unwrap_or_default();
        for needle in needles {
            assert!(message.contains(needle), "{body}: {message}");
        }
    }
    let batch = format!(r#"{{"tasks":[{{"type":"echo"}},{both}]}}"#);
    let (status, v) = call(addr, "POST", "/v1/tasks/batch", None, Some(&batch)).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("tasks[1]")),
        "{v}"
    );
    assert_eq!(fleet.stats("echo").await.enqueued, 0, "nothing enqueued");
    stop.cancel();
    fleet.teardown().await;
}
