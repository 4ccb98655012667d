//! `taskfleet serve`: the HTTP API over a `Producer` (docs/http-api.md).
//!
//! - `routes`: the handlers, grouped by the scope each needs
//! - `doc`: the OpenAPI document: every status of every route, the real schemas
//! - `auth`: bearer tokens and scopes (`jwt`: JWT verification); without tokens or
//!   a JWT key the API only listens on loopback
//! - `dashboard`: the web dashboard at `/` (embedded assets, strict CSP)
//! - `live`: `GET /v1/events`, transitions as server-sent events
//! - `dead_routes`: `GET /v1/dead`, `POST /v1/dead/replay`
//! - `fleet_metrics`: queue depths and live counters as gauges, refreshed per scrape
//! - `error`: `{"error":{"code","message"}}` bodies with the right status
//! - `timing`: `delay_ms`, `run_at`, `expires_at` of a task request
//! - `whole`: integers as JSON Schema reads them (`8.0` as well as `8`)
//!
//! Every request runs under a timeout (503), a concurrency limit (requests wait for
//! a turn) and a body limit (413), and is traced by method, path and status only —
//! never its headers, so no token reaches a log line.

mod auth;
mod dashboard;
mod dead_routes;
mod doc;
mod error;
mod fleet_metrics;
mod jwt;
mod live;
mod pause;
mod routes;
mod timing;
mod whole;
mod workflows;

use crate::Producer;
use crate::error::{ProducerError, Result};
use auth::Auth;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

#[derive(Clone)]
pub(crate) struct AppState {
    pub producer: Producer,
    pub metrics: Option<PrometheusHandle>,
    pub auth: Arc<Auth>,
    pub max_batch: usize,
    // Rendered once: it only changes with the configuration.
    pub openapi: Arc<serde_json::Value>,
    /// Open `GET /v1/events` streams (each holds a Redis pub/sub connection).
    pub streams: Arc<tokio::sync::Semaphore>,
}

/// Builds the router (also used by tests on `127.0.0.1:0`). Fails when the JWT
/// public key cannot be read.
pub async fn router(producer: Producer, metrics: Option<PrometheusHandle>) -> Result<Router> {
    let config = producer.config().clone();
    let http = &config.http;
    let auth = Arc::new(Auth::from_config(http).await?);
    let mut openapi = serde_json::to_value(doc::openapi(http.max_batch))
        .map_err(|e| ProducerError::Invalid(format!("the OpenAPI document: {e}")))?;
    timing::describe(&mut openapi);
    let state = AppState {
        producer,
        metrics,
        auth,
        max_batch: http.max_batch,
        openapi: Arc::new(openapi),
        streams: Arc::new(tokio::sync::Semaphore::new(live::MAX_STREAMS)),
    };
    Ok(routes::routes(state)
        // Room for the envelope fields around a payload at the limit.
        .layer(DefaultBodyLimit::max(
            config
                .payload_limit
                .saturating_mul(2)
                .saturating_add(64 * 1024),
        ))
        .layer(GlobalConcurrencyLimitLayer::new(
            http.max_concurrent_requests,
        ))
        // Outside the limit, so the time spent waiting for a turn counts.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            http.request_timeout,
        ))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        ))
}

/// Method and path only: no query, no headers (tokens live in `Authorization`).
fn request_span<B>(req: &Request<B>) -> Span {
    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
}

fn log_response<B>(res: &Response<B>, latency: Duration, _span: &Span) {
    tracing::debug!(status = res.status().as_u16(), ?latency, "answered");
}

/// Serves until `shutdown`. Refuses to listen beyond loopback without auth.
pub async fn serve(producer: Producer, listen: &str, shutdown: CancellationToken) -> Result<()> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        ProducerError::Invalid(format!(
            "--listen {listen:?}: expected an address such as 127.0.0.1:8080"
        ))
    })?;
    let auth = producer.config().http.auth_enabled();
    if !addr.ip().is_loopback() && !auth {
        return Err(ProducerError::Invalid(format!(
            "refusing to serve on {addr} without auth: set http.tokens (TASKFLEET_HTTP__TOKENS) or a JWT key (http.jwt_secret, http.jwt_public_key_file), or listen on 127.0.0.1"
        )));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ProducerError::Listen { addr, source })?;
    tracing::info!(%addr, auth, "HTTP API listening");
    serve_on(producer, listener, shutdown).await
}

/// Serves on an already bound listener (tests bind `127.0.0.1:0`).
pub async fn serve_on(
    producer: Producer,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<()> {
    // Only the first recorder installed in a process wins; later servers share it.
    let metrics = PrometheusBuilder::new().install_recorder().ok();
    let app = router(producer, metrics).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ProducerError::Serve)
}
