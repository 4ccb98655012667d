//! `POST /v1/workflows`: a whole DAG, accepted whole or refused whole
//! (docs/workflows.md).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::Workflow;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// Enqueue a workflow: `{"tasks":[{"key","type","payload","after":[keys]}]}`; answers
/// each key with its task's id, in the file's order
#[utoipa::path(post, path = "/v1/workflows", request_body = crate::Workflow,
    security(("bearer" = ["tasks:write"])),
    responses((status = 202, description = "Enqueued: `{\"tasks\":[{\"key\",\"id\"}]}`", body = Value),
        (status = 400, description = "Invalid workflow: unknown key, cycle, invalid task (nothing enqueued)", body = ErrorBody),
        (status = 401, description = "Missing, wrong or expired token", body = ErrorBody),
        (status = 403, description = "The token lacks tasks:write", body = ErrorBody),
        (status = 409, description = "Refused by RabbitMQ or Redis part-way", body = ErrorBody),
        (status = 413, description = "Body, a payload or the number of tasks over the limit", body = ErrorBody),
        (status = 503, description = "RabbitMQ or Redis unreachable, or timed out", body = ErrorBody)))]
pub(crate) async fn submit(
    State(s): State<AppState>,
    json: Result<Json<Value>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    // Parsed by the workflow's own reader, so HTTP and the file refuse alike.
    let value = super::routes::body(json)?;
    let workflow = Workflow::parse(&value.to_string())?;
    let ids = s.producer.submit_workflow(&workflow).await?;
    let tasks: Vec<Value> = ids
        .into_iter()
        .map(|(key, id)| json!({"key": key, "id": id.to_string()}))
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "tasks": tasks }))))
}
