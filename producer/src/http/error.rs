//! API errors: `{"error":{"code":"...","message":"..."}}` with the matching status.

use crate::error::{ErrorKind, ProducerError};
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

/// The status and error code of each kind of error (docs/http-api.md).
fn status(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Refused => (StatusCode::CONFLICT, "refused"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        // No route returns it today (only binding and serving fail this way); should
        // one ever, it is the server's own failure, not the client's.
        ErrorKind::Io => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<ProducerError> for ApiError {
    fn from(e: ProducerError) -> Self {
        let (status, code) = status(e.kind());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_status_of_the_contract() {
        for kind in ErrorKind::ALL {
            let expected = match kind {
                ErrorKind::Invalid => (400, "invalid"),
                ErrorKind::NotFound => (404, "not_found"),
                ErrorKind::Refused => (409, "refused"),
                ErrorKind::Unavailable => (503, "unavailable"),
                ErrorKind::Io => (500, "internal"),
            };
            let (status, code) = status(kind);
            assert_eq!((status.as_u16(), code), expected, "{kind:?}");
        }
    }

    #[test]
    fn an_error_answers_with_the_status_of_its_kind() {
        let e = ApiError::from(ProducerError::NotFound("task x not found".into()));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.code, "not_found");
        assert_eq!(e.message(), "task x not found");
    }
}
