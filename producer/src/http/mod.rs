//! `taskfleet serve`: the HTTP API over a `Producer` (docs/http-api.md).
//!
//! - `routes`: the handlers and the OpenAPI document (utoipa)
//! - `auth`: bearer tokens; without tokens the API only listens on loopback
//! - `error`: `{"error":{"code","message"}}` bodies with the right status

mod auth;
mod error;
mod routes;

use crate::Producer;
use crate::error::{ProducerError, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub(crate) struct AppState {
    pub producer: Producer,
    pub metrics: Option<PrometheusHandle>,
    pub tokens: Arc<Vec<String>>,
}

/// Builds the router (also used by tests on `127.0.0.1:0`).
pub fn router(producer: Producer, metrics: Option<PrometheusHandle>) -> Router {
    let limit = producer.config().payload_limit;
    let tokens = Arc::new(producer.config().http.tokens.clone());
    let state = AppState {
        producer,
        metrics,
        tokens,
    };
    routes::routes(state.clone())
        // Room for the envelope fields around a payload at the limit.
        .layer(DefaultBodyLimit::max(
            limit.saturating_mul(2).saturating_add(64 * 1024),
        ))
}

/// Serves until `shutdown`. Refuses to listen beyond loopback without tokens.
pub async fn serve(producer: Producer, listen: &str, shutdown: CancellationToken) -> Result<()> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        ProducerError::Invalid(format!(
            "--listen {listen:?}: expected an address such as 127.0.0.1:8080"
        ))
    })?;
    if !addr.ip().is_loopback() && producer.config().http.tokens.is_empty() {
        return Err(ProducerError::Invalid(format!(
            "refusing to serve on {addr} without auth: set http.tokens (TASKFLEET_HTTP__TOKENS) or listen on 127.0.0.1"
        )));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ProducerError::Listen { addr, source })?;
    tracing::info!(%addr, auth = !producer.config().http.tokens.is_empty(), "HTTP API listening");
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
    axum::serve(listener, router(producer, metrics))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ProducerError::Serve)
}
