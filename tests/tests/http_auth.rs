//! Bearer auth of the HTTP API: JWTs with scopes beside static tokens (full access);
//! 401 for a missing, forged or expired token, 403 for a missing scope; no token in
//! any log line.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::sync::{Arc, Mutex};
use taskfleet_tests::http::{request, serve};
use taskfleet_tests::scratch::Scratch;
use taskfleet_tests::{Fleet, test_config};
use tokio::process::Command;

const SECRET: &str = "jwt-secret-for-the-auth-test-0123";
const STATIC: &str = "static-token-of-the-auth-test";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn hs256(scope: &str, exp: u64, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "test", "exp": exp, "scope": scope}),
        &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
    )
    .expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_grants_exactly_its_scopes_and_static_tokens_everything() {
    let mut config = test_config();
    config.http.jwt_secret = Some(SECRET.into());
    config.http.tokens = vec![STATIC.into()];
    let fleet = Fleet::with_config(config).await;
    let (addr, stop) = serve(&fleet).await;
    let id = fleet.enqueue("echo", "{}").await;
    let task = format!("/v1/tasks/{id}");
    let cancel = format!("/v1/tasks/{id}/cancel");
    let exp = now() + 600;
    let (read, write, cancel_tok, admin) = (
        hs256("tasks:read", exp, SECRET),
        hs256("tasks:write", exp, SECRET),
        hs256("tasks:cancel", exp, SECRET),
        hs256("admin", exp, SECRET),
    );
    let body = Some(r#"{"type":"echo"}"#);
    for (token, method, path, want) in [
        (&read, "GET", task.as_str(), 200),
        (&read, "GET", "/v1/stats", 200),
        (&read, "POST", "/v1/tasks", 403),
        (&read, "POST", cancel.as_str(), 403),
        (&write, "POST", "/v1/tasks", 202),
        (&write, "GET", task.as_str(), 403),
        (&cancel_tok, "POST", cancel.as_str(), 200),
        (&admin, "POST", "/v1/tasks", 202),
        (&admin, "GET", "/metrics", 200),
    ] {
        let a = request(addr, method, path, Some(token), body).await;
        assert_eq!(a.status, want, "{method} {path}: {}", a.body);
        if want == 403 {
            assert_eq!(a.json()["error"]["code"], "forbidden", "{}", a.body);
            let challenge = a.header("www-authenticate").unwrap_or_default();
            assert!(challenge.contains("insufficient_scope"), "{}", a.headers);
        }
    }
    for (method, path) in [
        ("GET", task.as_str()),
        ("POST", "/v1/tasks"),
        ("POST", cancel.as_str()),
    ] {
        let a = request(addr, method, path, Some(STATIC), body).await;
        assert!(
            a.status < 300,
            "a static token may {method} {path}: {}",
            a.body
        );
    }
    stop.cancel();
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_expired_and_exp_less_tokens_get_401() {
    let mut config = test_config();
    config.http.jwt_secret = Some(SECRET.into());
    let fleet = Fleet::with_config(config).await;
    let (addr, stop) = serve(&fleet).await;
    let no_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"scope": "admin"}),
        &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
    )
    .expect("encodes");
    for (what, token) in [
        ("no token", None),
        ("expired", Some(hs256("admin", now() - 3600, SECRET))),
        (
            "forged",
            Some(hs256(
                "admin",
                now() + 600,
                "another-secret-0123456789abcdef",
            )),
        ),
        ("without exp", Some(no_exp)),
        ("not a JWT", Some("a.b.c".to_owned())),
    ] {
        let a = request(addr, "GET", "/v1/stats", token.as_deref(), None).await;
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        assert_eq!(a.json()["error"]["code"], "unauthorized", "{what}");
        assert!(
            a.header("www-authenticate").is_some(),
            "{what}: {}",
            a.headers
        );
        if let Some(t) = &token {
            assert!(!a.body.contains(t.as_str()), "{what}: the token is echoed");
        }
    }
    stop.cancel();
    fleet.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_and_rs256_tokens_verify_with_the_public_key_file() {
    let dir = Scratch::named("jwt-keys");
    for (alg, genpkey) in [
        (
            Algorithm::ES256,
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
        (
            Algorithm::RS256,
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
        ),
    ] {
        let private = dir.path(&format!("{alg:?}.key"));
        let public = dir.path(&format!("{alg:?}.pub"));
        openssl(&[
            &["genpkey"][..],
            genpkey,
            &["-out", &private.display().to_string()],
        ])
        .await;
        openssl(&[
            &["pkey", "-in", &private.display().to_string(), "-pubout"][..],
            &["-out", &public.display().to_string()],
        ])
        .await;
        let pem = tokio::fs::read(&private).await.expect("private key");
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_rsa_pem(&pem),
        }
        .expect("private key parses");
        let mut config = test_config();
        config.http.jwt_public_key_file = Some(public);
        let fleet = Fleet::with_config(config).await;
        let (addr, stop) = serve(&fleet).await;
        let task = format!("/v1/tasks/{}", fleet.enqueue("echo", "{}").await);
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &json!({"exp": now() + 600, "scope": "tasks:read"}),
            &key,
        )
        .expect("encodes");
        let a = request(addr, "GET", &task, Some(&token), None).await;
        assert_eq!(a.status, 200, "{alg:?}: {}", a.body);
        // An HS256 token is refused: no secret is configured, and the public key is
        // never used as one.
        let hs = hs256("tasks:read", now() + 600, SECRET);
        let a = request(addr, "GET", &task, Some(&hs), None).await;
        assert_eq!(a.status, 401, "{alg:?}: {}", a.body);
        stop.cancel();
        fleet.teardown().await;
    }
}

/// Every request is traced, and no trace line holds the bearer token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_a_log_line() {
    let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = lines.clone();
    let subscriber = tracing_subscriber_for(move || Writer(sink.clone()));
    let _ = tracing::subscriber::set_global_default(subscriber);
    let mut config = test_config();
    config.http.tokens = vec![STATIC.into()];
    let fleet = Fleet::with_config(config).await;
    let (addr, stop) = serve(&fleet).await;
    for token in [Some(STATIC), Some("wrong-token-value"), None] {
        request(addr, "GET", "/v1/stats?token=x", token, None).await;
    }
    stop.cancel();
    fleet.teardown().await;
    let logged = String::from_utf8_lossy(&lines.lock().expect("log buffer")).into_owned();
    assert!(
        logged.contains("/v1/stats"),
        "requests are traced: {logged}"
    );
    assert!(
        !logged.contains(STATIC) && !logged.contains("wrong-token-value"),
        "{logged}"
    );
    assert!(!logged.contains("Bearer"), "{logged}");
}

fn tracing_subscriber_for<F>(make: F) -> impl tracing::Subscriber + Send + Sync
where
    F: Fn() -> Writer + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(make)
        .finish()
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn openssl(parts: &[&[&str]]) {
    let args = parts.concat();
    let out = Command::new("openssl")
        .args(&args)
        .output()
        .await
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
