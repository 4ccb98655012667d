//! The routes of the HTTP API and their OpenAPI description.

use super::AppState;
use super::auth::require_token;
use super::error::{ApiError, ErrorBody};
use crate::producer;
use crate::request::EnqueueRequest;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::time::Duration;
use taskfleet_common::TaskId;
use utoipa::{OpenApi, ToSchema};

/// Most tasks accepted by one batch request.
const MAX_BATCH: usize = 10_000;
/// Enqueues in flight at once for a batch (confirms pipelined).
const BATCH_WINDOW: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskRequest {
    /// Task type (routing key), `[a-z0-9][a-z0-9._-]{0,63}`
    #[serde(rename = "type")]
    task_type: String,
    /// Any JSON value (default `{}`)
    #[schema(value_type = Object)]
    payload: Option<Box<RawValue>>,
    priority: Option<u8>,
    max_attempts: Option<u32>,
    timeout_ms: Option<u64>,
    /// A second request with the same key within the retention period returns the first task
    idempotency_key: Option<String>,
}

impl TaskRequest {
    fn into_request(self) -> Result<EnqueueRequest, ApiError> {
        let payload = self.payload.as_ref().map_or("{}", |p| p.get());
        let mut req = EnqueueRequest::new(&self.task_type, payload)?;
        req.priority = self.priority;
        req.max_attempts = self.max_attempts;
        req.timeout = self.timeout_ms.map(Duration::from_millis);
        req.idempotency_key = self.idempotency_key;
        Ok(req)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BatchRequest {
    tasks: Vec<TaskRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResult {
    /// Per task, in request order: its id, or the error that refused it
    results: Vec<BatchItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Set when no live worker serves the task's type (the task is kept and waits)
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CancelResponse {
    id: String,
    state: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskfleet",
        description = "Enqueue, inspect and cancel taskfleet tasks"
    ),
    paths(
        create_task,
        create_batch,
        get_task,
        cancel_task,
        stats,
        types,
        workers,
        healthz
    ),
    components(schemas(
        TaskRequest,
        BatchRequest,
        BatchResult,
        BatchItem,
        CancelResponse,
        ErrorBody
    ))
)]
struct ApiDoc;

pub(crate) fn routes(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/tasks", post(create_task))
        .route("/v1/tasks/batch", post(create_batch))
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
        .route("/v1/stats", get(stats))
        .route("/v1/types", get(types))
        .route("/v1/workers", get(workers))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(t)| t)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))
}

fn parse_id(id: &str) -> Result<TaskId, ApiError> {
    id.parse::<TaskId>()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.to_string()))
}

/// Enqueue a task; answers once RabbitMQ confirmed it (with a `warning` field when no
/// live worker serves its type)
#[utoipa::path(post, path = "/v1/tasks", request_body = TaskRequest,
    responses((status = 202, description = "The task record", body = Object),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn create_task(
    State(s): State<AppState>,
    json: Result<Json<TaskRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(json)?.into_request()?;
    let done = s.producer.enqueue(&req).await?;
    let record = producer::status(s.producer.store(), &done.id).await?;
    let mut body = record.to_json();
    if let Some(w) = done.warning {
        // No live worker serves the type: accepted all the same, and said so.
        body["warning"] = w.into();
    }
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// Enqueue many tasks; confirms are pipelined
#[utoipa::path(post, path = "/v1/tasks/batch", request_body = BatchRequest,
    responses((status = 202, body = BatchResult), (status = 400, body = ErrorBody)))]
async fn create_batch(
    State(s): State<AppState>,
    json: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let batch = body(json)?;
    if batch.tasks.len() > MAX_BATCH {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("at most {MAX_BATCH} tasks per batch"),
        ));
    }
    let producer = &s.producer;
    let results: Vec<BatchItem> = futures_util::stream::iter(batch.tasks)
        .map(|t| async move {
            let outcome = match t.into_request() {
                Ok(req) => producer.enqueue(&req).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.message().to_owned()),
            };
            match outcome {
                Ok(done) => BatchItem {
                    id: Some(done.id.to_string()),
                    error: None,
                    warning: done.warning,
                },
                Err(error) => BatchItem {
                    id: None,
                    error: Some(error),
                    warning: None,
                },
            }
        })
        .buffered(BATCH_WINDOW)
        .collect()
        .await;
    Ok((StatusCode::ACCEPTED, Json(BatchResult { results })))
}

/// A task's record
#[utoipa::path(get, path = "/v1/tasks/{id}", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
async fn get_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(
        producer::status(s.producer.store(), &id).await?.to_json(),
    ))
}

/// Cancel a task; idempotent
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", params(("id" = String, Path)),
    responses((status = 200, body = CancelResponse), (status = 404, body = ErrorBody)))]
async fn cancel_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    let id = parse_id(&id)?;
    let state = producer::cancel(s.producer.store(), &id).await?;
    Ok(Json(CancelResponse {
        id: id.to_string(),
        state: state.to_string(),
    }))
}

/// Counters per task type
#[utoipa::path(get, path = "/v1/stats", responses((status = 200, body = Object)))]
async fn stats(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(producer::stats_json(s.producer.store()).await?))
}

/// Each task type's declared settings, serving workers, paused flag and queue depth
#[utoipa::path(get, path = "/v1/types", responses((status = 200, body = Object),
    (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn types(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(crate::fleet_types::types_json(&s.producer).await?))
}

/// Live workers
#[utoipa::path(get, path = "/v1/workers", responses((status = 200, body = Object)))]
async fn workers(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(producer::workers_json(s.producer.store()).await?))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    s.metrics.as_ref().map(|m| m.render()).unwrap_or_default()
}

/// Liveness and readiness: Redis answers
#[utoipa::path(get, path = "/healthz", responses((status = 200), (status = 503, body = ErrorBody)))]
async fn healthz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.producer
        .store()
        .ping()
        .await
        .map_err(crate::ProducerError::from)?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
