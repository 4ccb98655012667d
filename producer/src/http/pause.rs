//! `POST /v1/types/{type}/pause` and `/resume` (scope `tasks:write`): the HTTP side
//! of `taskfleet pause`/`resume` (docs/flow-control.md).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::Value;
use taskfleet_common::TaskType;

/// Pause a task type fleet-wide: no new task of it starts; running ones finish
#[utoipa::path(post, path = "/v1/types/{type}/pause", security(("bearer" = ["tasks:write"])),
    params(("type" = String, Path, description = "Task type", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$", min_length = 1, max_length = 64)),
    responses((status = 200, description = "`{\"type\":..., \"paused\": true}`", body = Object),
        (status = 400, description = "Not a valid task type name", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:write", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn pause_type(
    State(s): State<AppState>,
    task_type: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    set(&s, task_type, true).await
}

/// Resume a paused task type: its tasks start again
#[utoipa::path(post, path = "/v1/types/{type}/resume", security(("bearer" = ["tasks:write"])),
    params(("type" = String, Path, description = "Task type", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$", min_length = 1, max_length = 64)),
    responses((status = 200, description = "`{\"type\":..., \"paused\": false}`", body = Object),
        (status = 400, description = "Not a valid task type name", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:write", body = ErrorBody),
        (status = 409, description = "Refused by Redis", body = ErrorBody),
        (status = 503, description = "Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn resume_type(
    State(s): State<AppState>,
    task_type: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    set(&s, task_type, false).await
}

async fn set(
    s: &AppState,
    task_type: Result<Path<String>, PathRejection>,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m);
    let Path(name) = task_type.map_err(|e| invalid(e.body_text()))?;
    let task_type: TaskType = name.parse().map_err(|e| invalid(format!("{e}")))?;
    s.producer
        .store()
        .set_paused(&task_type, paused)
        .await
        .map_err(crate::ProducerError::from)?;
    Ok(Json(
        serde_json::json!({ "type": task_type.as_str(), "paused": paused }),
    ))
}
