//! The web dashboard at `/` (docs/dashboard.md): a page, a script and a style sheet
//! embedded in the binary (no Node, no build step). The assets hold no data, so they
//! are served without a token; the page asks for one and every API call it makes
//! carries it in the `Authorization` header, so the API's own auth and scopes decide
//! what it may see and do (a `tasks:read` token sees, actions need their scopes).
//!
//! Every asset is sent with a strict Content-Security-Policy: scripts and styles
//! only from this origin (no inline script, no `eval`), no frames, no forms posting
//! elsewhere, connections only back to this API.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderName};
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// The policy of every dashboard response.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| asset(INDEX, "text/html; charset=utf-8")))
        .route(
            "/dashboard/app.js",
            get(|| asset(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/dashboard/app.css",
            get(|| asset(STYLE, "text/css; charset=utf-8")),
        )
}

async fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (HeaderName::from_static("content-security-policy"), CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
            (HeaderName::from_static("x-frame-options"), "DENY"),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
