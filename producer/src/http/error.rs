//! API errors: `{"error":{"code":"...","message":"..."}}` with the matching status.

use crate::error::{ErrorKind, ProducerError};
use axum::Json;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    // The `WWW-Authenticate` challenge of a 401 or 403 (RFC 6750).
    challenge: Option<String>,
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
            challenge: None,
        }
    }

    /// The same error, its message prefixed by where it happened (`tasks[3]: ...`).
    pub fn context(mut self, place: &str) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }

    /// 401: no token, or one that is wrong, forged or expired. `why` never holds the
    /// token itself.
    pub fn unauthorized(why: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
        e.challenge = Some(r#"Bearer realm="taskfleet""#.to_owned());
        e
    }

    /// 403: a valid token without the scope the route needs.
    pub fn forbidden(scope: &str) -> Self {
        let mut e = Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this route needs the scope {scope} (or admin), which the token lacks"),
        );
        e.challenge = Some(format!(
            r#"Bearer realm="taskfleet", error="insufficient_scope", scope="{scope}""#
        ));
        e
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }
}

/// The status and error code of each kind of error (docs/http-api.md).
fn status(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Refused => (StatusCode::CONFLICT, "refused"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        // No route returns it today (only binding and serving fail this way); should
        // one ever, it is the server's own failure, not the client's.
        ErrorKind::Io => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ErrorKind::TimedOut => (StatusCode::GATEWAY_TIMEOUT, "timed_out"),
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
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Gives the error answers that come from the framework and the layers rather than
/// from a handler (no route, method not allowed, request timeout) the contract's
/// JSON body; their status and headers (`Allow`) stay.
pub(crate) async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(CONTENT_TYPE)
    {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
        StatusCode::SERVICE_UNAVAILABLE => (
            "timeout",
            "the request took longer than http.request_timeout; try again",
        ),
        _ => ("error", status.canonical_reason().unwrap_or("error")),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    let fresh = ApiError::new(status, code, message).into_response();
    parts.headers.extend(fresh.headers().clone());
    Response::from_parts(parts, fresh.into_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_status_of_the_contract() {
        for kind in ErrorKind::ALL {
            let expected = match kind {
                ErrorKind::Invalid => (400, "invalid"),
                ErrorKind::TooLarge => (413, "too_large"),
                ErrorKind::NotFound => (404, "not_found"),
                ErrorKind::Refused => (409, "refused"),
                ErrorKind::Unavailable => (503, "unavailable"),
                ErrorKind::Io => (500, "internal"),
                ErrorKind::TimedOut => (504, "timed_out"),
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
        assert_eq!(e.message, "task x not found");
    }
}
