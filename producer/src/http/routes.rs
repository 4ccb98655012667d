//! The routes of the HTTP API, grouped by the scope they need (`auth`), and their
//! OpenAPI annotations (assembled in `doc`).

use super::AppState;
use super::auth::{Gate, Scope, require};
use super::error::{ApiError, ErrorBody};
use crate::producer;
use crate::request::EnqueueRequest;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
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
use utoipa::ToSchema;

/// Enqueues in flight at once for a batch (confirms pipelined).
const BATCH_WINDOW: usize = 256;
/// Largest `timeout_ms`: the largest integer every JSON reader holds exactly.
const MAX_TIMEOUT_MS: u64 = (1 << 53) - 1;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskRequest {
    /// Task type (routing key)
    #[serde(rename = "type")]
    #[schema(
        pattern = "^[a-z0-9][a-z0-9._-]{0,63}$",
        min_length = 1,
        max_length = 64
    )]
    task_type: String,
    /// Any JSON value (default `{}`); at most `payload_limit` bytes, else 413
    #[schema(value_type = Option<Value>)]
    payload: Option<Box<RawValue>>,
    #[serde(default, deserialize_with = "super::whole::whole")]
    #[schema(minimum = 0, maximum = 9)]
    priority: Option<u8>,
    #[serde(default, deserialize_with = "super::whole::whole")]
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "super::whole::whole")]
    #[schema(minimum = 1, maximum = 9007199254740991_u64)]
    timeout_ms: Option<u64>,
    /// A second request with the same key within the retention period returns the first task
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    idempotency_key: Option<String>,
    /// Start no earlier than this many milliseconds from now (`scheduled` until then);
    /// not together with `run_at`
    #[serde(default, deserialize_with = "super::whole::whole")]
    #[schema(minimum = 0)]
    delay_ms: Option<u64>,
    /// Start no earlier than this time (RFC 3339, e.g. 2026-12-01T12:00:00Z; a time in
    /// the past runs now, more than the longest delay ahead is 400); not together with
    /// `delay_ms`
    #[schema(format = DateTime)]
    run_at: Option<String>,
    /// Never start after this time (RFC 3339): the task ends `cancelled`, reason `expired`
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Group key (tenant, customer, API key) that the type's `group_max_running` caps
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    group: Option<String>,
    /// Ids of tasks that must complete first: `waiting` until then (docs/workflows.md)
    #[schema(value_type = Option<Vec<uuid::Uuid>>, max_items = 1000)]
    after: Option<Vec<String>>,
}

impl TaskRequest {
    /// The request, validated as `Producer::enqueue` will (400, or 413 for a payload
    /// over the limit).
    fn into_request(self, payload_limit: usize) -> Result<EnqueueRequest, ApiError> {
        let payload = self.payload.as_ref().map_or("{}", |p| p.get());
        let mut req = EnqueueRequest::new(&self.task_type, payload)?;
        if self.timeout_ms.is_some_and(|t| t > MAX_TIMEOUT_MS) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("timeout_ms must be at most {MAX_TIMEOUT_MS}"),
            ));
        }
        req.priority = self.priority;
        req.max_attempts = self.max_attempts;
        req.timeout = self.timeout_ms.map(Duration::from_millis);
        req.idempotency_key = self.idempotency_key;
        let times = super::timing::resolve(
            self.delay_ms,
            self.run_at.as_deref(),
            self.expires_at.as_deref(),
            crate::request::now_ms(),
        )?;
        (req.run_at, req.expires_at) = (times.run_at, times.expires_at);
        req.group = self.group;
        for id in self.after.unwrap_or_default() {
            req.after.push(id.parse().map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("after: {id:?} is not a task id: {e}"),
                )
            })?);
        }
        req.validate(payload_limit)?;
        Ok(req)
    }
}

/// Accepted whole or refused whole: one invalid task refuses the batch (400, or 413
/// for a payload over the limit) and nothing is enqueued.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// At most `http.max_batch` tasks (more: 400)
    tasks: Vec<TaskRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchResult {
    /// Per task, in request order: its id, or why it could not be enqueued
    results: Vec<BatchItem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BatchItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Set when no live worker serves the task's type (the task is kept and waits)
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // describes the answer of `cancel_task`; never constructed
pub(crate) struct CancelResponse {
    #[schema(format = Uuid)]
    id: String,
    state: super::doc::StateName,
}

pub(crate) fn routes(state: AppState) -> Router {
    let gate = |scope| {
        middleware::from_fn_with_state(
            Gate {
                auth: state.auth.clone(),
                scope,
            },
            require,
        )
    };
    let read = Router::new()
        .route("/v1/tasks/{id}", get(get_task))
        .route("/v1/tasks/{id}/logs", get(task_logs))
        .route("/v1/stats", get(stats))
        .route("/v1/types", get(types))
        .route("/v1/schedules", get(schedules))
        .route("/v1/workers", get(workers))
        .route("/metrics", get(metrics))
        .route("/v1/events", get(super::live::events))
        .route("/v1/dead", get(super::dead_routes::list))
        .route_layer(gate(Scope::TasksRead));
    let admin = Router::new()
        .route("/v1/dead/replay", post(super::dead_routes::replay))
        .route_layer(gate(Scope::Admin));
    let write = Router::new()
        .route("/v1/tasks", post(create_task))
        .route("/v1/tasks/batch", post(create_batch))
        .route("/v1/types/{type}/pause", post(super::pause::pause_type))
        .route("/v1/types/{type}/resume", post(super::pause::resume_type))
        .route("/v1/workflows", post(super::workflows::submit))
        .route_layer(gate(Scope::TasksWrite));
    let cancel = Router::new()
        .route("/v1/tasks/{id}/cancel", post(cancel_task))
        .route_layer(gate(Scope::TasksCancel));
    Router::new()
        .merge(read)
        .merge(write)
        .merge(cancel)
        .merge(admin)
        .merge(super::dashboard::routes())
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

pub(crate) fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    json.map(|Json(t)| t).map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(e.body_text())
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text())
        }
    })
}

fn parse_id(id: Result<Path<String>, PathRejection>) -> Result<TaskId, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m);
    let Path(id) = id.map_err(|e| invalid(e.body_text()))?;
    id.parse::<TaskId>().map_err(|e| invalid(e.to_string()))
}

/// Enqueue a task; answers once RabbitMQ confirmed it (with a `warning` field when no
/// live worker serves its type)
#[utoipa::path(post, path = "/v1/tasks", request_body = TaskRequest,
    security(("bearer" = ["tasks:write"])),
    responses((status = 202, description = "Enqueued: the task record", body = super::doc::TaskRecord),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:write", body = ErrorBody),
        (status = 404, description = "A task named in `after` does not exist", body = ErrorBody),
        (status = 409, description = "Refused by RabbitMQ or Redis", body = ErrorBody),
        (status = 413, description = "Body or payload over the limit", body = ErrorBody),
        (status = 503, description = "RabbitMQ or Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn create_task(
    State(s): State<AppState>,
    json: Result<Json<TaskRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let req = body(json)?.into_request(s.producer.config().payload_limit)?;
    let done = s.producer.enqueue(&req).await?;
    let record = producer::status(s.producer.store(), &done.id).await?;
    let mut body = record.to_json();
    if let Some(w) = done.warning {
        // No live worker serves the type: accepted all the same, and said so.
        body["warning"] = w.into();
    }
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// Enqueue many tasks, all or none validated first; confirms are pipelined
#[utoipa::path(post, path = "/v1/tasks/batch", request_body = BatchRequest,
    security(("bearer" = ["tasks:write"])),
    responses((status = 202, description = "Per task: its id, or why it was not enqueued", body = BatchResult),
        (status = 400, description = "Invalid request (nothing enqueued)", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:write", body = ErrorBody),
        (status = 413, description = "Body or a payload over the limit (nothing enqueued)", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody)))]
pub(crate) async fn create_batch(
    State(s): State<AppState>,
    json: Result<Json<BatchRequest>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let batch = body(json)?;
    if batch.tasks.len() > s.max_batch {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("at most {} tasks per batch (http.max_batch)", s.max_batch),
        ));
    }
    let limit = s.producer.config().payload_limit;
    let requests = batch
        .tasks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            t.into_request(limit)
                .map_err(|e| e.context(&format!("tasks[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let producer = &s.producer;
    let results: Vec<BatchItem> = futures_util::stream::iter(requests)
        .map(|req| async move {
            match producer.enqueue(&req).await {
                Ok(done) => BatchItem {
                    id: Some(done.id.to_string()),
                    error: None,
                    warning: done.warning,
                },
                Err(e) => BatchItem {
                    id: None,
                    error: Some(e.to_string()),
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
#[utoipa::path(get, path = "/v1/tasks/{id}", params(("id" = uuid::Uuid, Path, description = "Task id"),
        ("wait" = Option<String>, Query, description = "Long-poll until the task is terminal, at most this long (e.g. 30s)")),
    security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "The task record", body = super::doc::TaskRecord),
        (status = 400, description = "Not a task id", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 404, description = "No such task (or its record expired)", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn get_task(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    Query(q): Query<WaitQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(id)?;
    let Some(wait) = q.wait.filter(|w| !w.is_empty()) else {
        return Ok(Json(
            producer::status(s.producer.store(), &id).await?.to_json(),
        ));
    };
    let timeout = humantime::parse_duration(&wait).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("wait={wait:?}: {e} (e.g. wait=30s)"),
        )
    })?;
    // Long poll: the record once terminal, or as it stands when the wait ran out.
    match s.producer.wait(&id, timeout).await {
        Ok(record) => Ok(Json(record.to_json())),
        Err(crate::ProducerError::TimedOut(_)) => Ok(Json(
            producer::status(s.producer.store(), &id).await?.to_json(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/tasks/{id}?wait=30s`: long-poll until the task is terminal (at most 1 h).
#[derive(Debug, Deserialize)]
pub(crate) struct WaitQuery {
    wait: Option<String>,
}

/// A task's log lines (exec stderr, `ctx.log`), oldest first, at most 1000
#[utoipa::path(get, path = "/v1/tasks/{id}/logs", params(("id" = uuid::Uuid, Path, description = "Task id")),
    security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "`{id, lines}`", body = Object),
        (status = 400, description = "Not a task id", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 404, description = "No such task (or its record and logs expired)", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn task_logs(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(id)?;
    Ok(Json(
        crate::task_logs::task_logs_json(s.producer.store(), &id).await?,
    ))
}

/// Cancel a task; idempotent (a finished task stays as it is)
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", params(("id" = uuid::Uuid, Path, description = "Task id")),
    security(("bearer" = ["tasks:cancel"])),
    responses((status = 200, description = "The state the task is in now", body = CancelResponse),
        (status = 400, description = "Not a task id", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:cancel", body = ErrorBody),
        (status = 404, description = "No such task (or its record expired)", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn cancel_task(
    State(s): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(id)?;
    let state = producer::cancel(s.producer.store(), &id).await?;
    Ok(Json(
        serde_json::json!({ "id": id.to_string(), "state": state.as_str() }),
    ))
}

/// Counters per task type
#[utoipa::path(get, path = "/v1/stats", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "Counters per type", body = super::doc::Stats),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn stats(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(producer::stats_json(s.producer.store()).await?))
}

/// Each task type's declared settings, serving workers, paused flag and queue depth
#[utoipa::path(get, path = "/v1/types", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "Task types", body = Object),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis or RabbitMQ unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn types(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(crate::fleet_types::types_json(&s.producer).await?))
}

/// Cron and interval schedules: next and last fire, leader
#[utoipa::path(get, path = "/v1/schedules", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "Schedules", body = Object),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn schedules(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(producer::schedules_json(s.producer.store()).await?))
}

/// Live workers
#[utoipa::path(get, path = "/v1/workers", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "Live workers", body = Vec<super::doc::Worker>),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn workers(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(producer::workers_json(s.producer.store()).await?))
}

/// Prometheus metrics of this server
#[utoipa::path(get, path = "/metrics", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 503, description = "Timed out", body = ErrorBody)))]
pub(crate) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    super::fleet_metrics::refresh(&s.producer).await;
    s.metrics.as_ref().map(|m| m.render()).unwrap_or_default()
}

/// Liveness and readiness: Redis answers (no token needed)
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "Redis answers", body = super::doc::Health),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn healthz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.producer.store().ping().await.map_err(|e| {
        // A Redis that answers with an error is no more ready than one that does not.
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn openapi(State(s): State<AppState>) -> impl IntoResponse {
    Json(s.openapi.as_ref().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<TaskRequest, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integers_may_be_written_as_whole_floats() {
        let t = parse(r#"{"type":"echo","priority":8.0,"max_attempts":3,"timeout_ms":null}"#)
            .expect("valid");
        assert_eq!(
            (t.priority, t.max_attempts, t.timeout_ms),
            (Some(8), Some(3), None)
        );
        assert!(parse(r#"{"type":"echo","priority":8.5}"#).is_err());
        assert!(parse(r#"{"type":"echo","priority":-1}"#).is_err());
        assert!(parse(r#"{"type":"echo","priority":300}"#).is_err());
        assert!(parse(r#"{"type":"echo","priority":"1"}"#).is_err());
        assert!(parse(r#"{"type":"echo","extra":1}"#).is_err());
    }
}
