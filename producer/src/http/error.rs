//! API errors: `{"error":{"code":"...","message":"..."}}` with the matching status.

use crate::error::ProducerError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    code: String,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
    }
}

impl From<ProducerError> for ApiError {
    fn from(e: ProducerError) -> Self {
        let (status, code) = match e.exit_code() {
            2 => (StatusCode::BAD_REQUEST, "invalid"),
            3 => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ if matches!(e, ProducerError::NotFound(_)) => (StatusCode::NOT_FOUND, "not_found"),
            _ => (StatusCode::CONFLICT, "refused"),
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
