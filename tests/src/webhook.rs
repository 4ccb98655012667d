//! A webhook receiver on `127.0.0.1:0` (a tiny axum server) that keeps every POST it
//! gets, and the check of an alert's `X-Taskfleet-Signature`.

use axum::extract::State;
use axum::http::HeaderMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub signature: Option<String>,
    pub delivery: Option<String>,
    pub body: String,
    pub at: std::time::Instant,
}

pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    stop: CancellationToken,
}

impl Receiver {
    pub async fn start() -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(keep))
            .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Self { addr, got, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn keep(State(got): State<Arc<Mutex<Vec<Received>>>>, headers: HeaderMap, body: String) {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    got.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Received {
            signature: header("x-taskfleet-signature"),
            delivery: header("x-taskfleet-delivery"),
            body,
            at: std::time::Instant::now(),
        });
}

/// Whether `header` (`t=<ms>,sha256=<hex>`) is the HMAC-SHA256 of `<ms>.<body>` with
/// `secret`, as a receiver checks it (constant-time, via ring).
pub fn signature_is_valid(secret: &str, header: &str, body: &str) -> bool {
    let Some((t, mac)) = header.split_once(",sha256=") else {
        return false;
    };
    let Some(t) = t.strip_prefix("t=") else {
        return false;
    };
    let Some(tag) = (0..mac.len())
        .step_by(2)
        .map(|i| {
            mac.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::verify(&key, format!("{t}.{body}").as_bytes(), &tag).is_ok()
}
