//! Issue 14: the web dashboard in headless Chromium. The overview shows the counters
//! of the tasks the test enqueued; a task enqueued after the page loaded appears
//! without a reload (GET /v1/events); a payload holding `<img onerror>` is shown as
//! text and never runs; cancel from a task's page stops a running sleep task; a
//! read-only token sees but cannot act. Screenshots go to target/dashboard/.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;
use taskfleet_common::TaskState;
use taskfleet_tests::browser::Browser;
use taskfleet_tests::http::{request, serve};
use taskfleet_tests::{Fleet, test_config};

const ADMIN: &str = "dashboard-test-admin-token";
const JWT_SECRET: &str = "dashboard-test-jwt-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

fn read_only_token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "viewer", "exp": exp, "scope": "tasks:read"}),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()).expect("key"),
    )
    .expect("encodes")
}

fn shot(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/dashboard")).join(name)
}

async fn sign_in(b: &mut Browser, token: &str) {
    let js = format!(
        "document.getElementById('token').value = {}; document.getElementById('login-form').requestSubmit(); true",
        json!(token)
    );
    b.eval(&js).await;
}

async fn open_task(b: &mut Browser, id: &str) {
    let js = format!(
        "document.getElementById('task-id').value = {}; document.getElementById('lookup').requestSubmit(); true",
        json!(id)
    );
    b.eval(&js).await;
    b.wait_for(
        &format!(
            "document.querySelector('#record [data-key=id]')?.textContent.includes({})",
            json!(id)
        ),
        WAIT,
        "the task's record",
    )
    .await;
}

fn counter(task_type: &str, name: &str) -> String {
    format!(
        "document.querySelector('#stats tr[data-type=\"{task_type}\"] [data-counter={name}]')?.textContent"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_live_escaped_and_respects_scopes() {
    let mut config = test_config();
    config.http.tokens = vec![ADMIN.into()];
    config.http.jwt_secret = Some(JWT_SECRET.into());
    let mut fleet = Fleet::with_config(config).await;
    fleet.start_worker().await;
    for _ in 0..3 {
        let id = fleet.enqueue("echo", r#"{"n":1}"#).await;
        fleet.wait_for_state(&id, TaskState::Completed, WAIT).await;
    }
    let (addr, stop) = serve(&fleet).await;

    // The page itself: strict CSP, no inline script.
    let page = request(addr, "GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    let csp = page
        .header("content-security-policy")
        .expect("a CSP header");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!page.body.contains("<script>"), "no inline script");

    let mut b = Browser::launch().await;
    b.navigate(&format!("http://{addr}/")).await;
    b.wait_for(
        "document.getElementById('login-form') && !document.getElementById('login').hidden",
        WAIT,
        "the sign-in form",
    )
    .await;
    sign_in(&mut b, ADMIN).await;

    // Overview: the counters of what the test enqueued.
    b.wait_for(
        &format!("{} === '3'", counter("echo", "completed")),
        WAIT,
        "3 completed echo tasks",
    )
    .await;
    assert_eq!(b.eval(&counter("echo", "enqueued")).await, json!("3"));
    b.wait_for(
        "document.getElementById('live').textContent === 'live'",
        WAIT,
        "the event stream",
    )
    .await;
    b.screenshot(&shot("overview.png")).await;

    // Live: a task enqueued now shows up without a reload.
    let late = fleet.enqueue("echo", r#"{"late":true}"#).await;
    b.wait_for(
        &format!("document.querySelector('#events [data-id=\"{late}\"]') !== null"),
        WAIT,
        "the late task in the live list",
    )
    .await;
    b.wait_for(
        &format!("{} === '4'", counter("echo", "completed")),
        WAIT,
        "the counter updated live",
    )
    .await;

    // Escaping: markup in a payload is text, and its handler never runs.
    let evil =
        r#"{"x":"<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>"}"#;
    let xss = fleet.enqueue("echo", evil).await;
    fleet.wait_for_state(&xss, TaskState::Completed, WAIT).await;
    open_task(&mut b, &xss.to_string()).await;
    let payload = b
        .wait_for(
            "document.querySelector('#record [data-key=payload]')?.textContent",
            WAIT,
            "the payload",
        )
        .await;
    assert!(
        payload
            .as_str()
            .unwrap_or_default()
            .contains("<img src=x onerror="),
        "{payload}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#task img, #task script').length")
            .await,
        json!(0)
    );
    assert_eq!(b.eval("window.__pwned === undefined").await, json!(true));
    b.screenshot(&shot("task.png")).await;

    // Cancel from the task's page stops a running sleep task.
    let sleeper = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&sleeper, TaskState::Running, WAIT)
        .await;
    open_task(&mut b, &sleeper.to_string()).await;
    b.eval("window.confirm = () => true; document.getElementById('cancel').click(); true")
        .await;
    fleet
        .wait_for_state(&sleeper, TaskState::Cancelled, WAIT)
        .await;
    b.wait_for(
        "document.querySelector('#record [data-key=state]')?.textContent.includes('cancelled')",
        WAIT,
        "the page showing cancelled",
    )
    .await;

    // Dead letters and schedules render (screenshots of each page).
    b.eval("document.querySelector('nav [data-page=dead]').click(); true")
        .await;
    b.wait_for(
        "!document.getElementById('dead').hidden",
        WAIT,
        "the dead letters page",
    )
    .await;
    b.screenshot(&shot("dead.png")).await;
    b.eval("document.querySelector('nav [data-page=schedules]').click(); true")
        .await;
    b.screenshot(&shot("schedules.png")).await;

    // A read-only token sees everything and cannot act.
    b.eval("document.getElementById('logout').click(); true")
        .await;
    sign_in(&mut b, &read_only_token()).await;
    // 3 + the late one + the one with markup.
    b.wait_for(
        &format!("{} === '5'", counter("echo", "completed")),
        WAIT,
        "counters with a read-only token",
    )
    .await;
    let second = fleet.enqueue("sleep", r#"{"ms":60000}"#).await;
    fleet
        .wait_for_state(&second, TaskState::Running, WAIT)
        .await;
    open_task(&mut b, &second.to_string()).await;
    b.eval("window.confirm = () => true; document.getElementById('cancel').click(); true")
        .await;
    b.wait_for(
        "document.getElementById('message').textContent.includes('403')",
        WAIT,
        "the refusal shown",
    )
    .await;
    b.screenshot(&shot("read-only.png")).await;
    let r = fleet.record(&second).await.expect("record");
    assert_eq!(
        r.state(),
        Some(TaskState::Running),
        "a read-only token cancelled a task"
    );
    assert!(r.get("cancel_requested_at").is_none());

    fleet.producer.cancel(&second).await.expect("cancel");
    stop.cancel();
    fleet.teardown().await;
}
