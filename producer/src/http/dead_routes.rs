//! `GET /v1/dead` and `POST /v1/dead/replay`: the dead-letter queue over HTTP, as
//! `taskfleet dead list --json` and `taskfleet dead replay` show and do it.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::dead::{self, ReplayTarget};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// `{"id": ...}` or `{"all": true}`: one of the two, never both (400).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum ReplayRequest {
    One(ReplayOne),
    All(ReplayAll),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayOne {
    /// Replay this task's dead message(s)
    id: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayAll {
    /// `true`: replay every replayable message; `false` asks for nothing
    all: bool,
}

/// The dead-letter queue, oldest first, without consuming it
#[utoipa::path(get, path = "/v1/dead", security(("bearer" = ["tasks:read"])),
    responses((status = 200, description = "`{messages, not_shown}`", body = Object),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:read", body = ErrorBody),
        (status = 503, description = "RabbitMQ unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let listing = dead::list(&s.producer).await?;
    Ok(Json(json!({
        "messages": serde_json::to_value(&listing.messages).unwrap_or_default(),
        "not_shown": listing.not_shown,
    })))
}

/// Replay one dead task (`{"id": ...}`) or all of them (`{"all": true}`)
#[utoipa::path(post, path = "/v1/dead/replay", request_body = ReplayRequest,
    security(("bearer" = ["admin"])),
    responses((status = 200, description = "`{replayed: [id], skipped: [{id, reason}]}`", body = Object),
        (status = 400, description = "Neither or both of id and all", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks admin", body = ErrorBody),
        (status = 404, description = "No message of that task in the queue", body = ErrorBody),
        (status = 409, description = "That task cannot be replayed", body = ErrorBody),
        (status = 503, description = "RabbitMQ or Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn replay(
    State(s): State<AppState>,
    json: Result<Json<ReplayRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid", m);
    let Json(req) = json.map_err(|e| invalid(e.body_text()))?;
    let target = match req {
        ReplayRequest::One(ReplayOne { id }) => ReplayTarget::Id(id),
        ReplayRequest::All(ReplayAll { all: true }) => ReplayTarget::All,
        ReplayRequest::All(ReplayAll { all: false }) => {
            return Ok(Json(json!({ "replayed": [], "skipped": [] })));
        }
    };
    let report = dead::replay(&s.producer, &target).await?;
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|(id, why)| json!({ "id": id, "reason": why }))
        .collect();
    Ok(Json(json!({
        "replayed": report.replayed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "skipped": skipped,
    })))
}
