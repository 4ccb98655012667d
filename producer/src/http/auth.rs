//! Who may call which route: `Authorization: Bearer <token>`, where the token is one
//! of `http.tokens` (full access) or a JWT whose `scope` claim grants the route's
//! scope (`jwt`). Missing, wrong, forged or expired tokens get 401; a valid token
//! without the scope gets 403. Tokens are compared in constant time and never
//! logged, echoed in an error, or shown by `Debug`.
//!
//! | scope | routes |
//! |---|---|
//! | `tasks:read` | `GET /v1/tasks/{id}`, `GET /v1/stats`, `GET /v1/workers`, `GET /metrics` |
//! | `tasks:write` | `POST /v1/tasks`, `POST /v1/tasks/batch` |
//! | `tasks:cancel` | `POST /v1/tasks/{id}/cancel` |
//! | `admin` | every route |

use super::error::ApiError;
use super::jwt::JwtKeys;
use crate::error::Result;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use taskfleet_common::config::HttpConfig;

/// One permission a JWT may carry in its space-separated `scope` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    TasksRead,
    TasksWrite,
    TasksCancel,
    /// Every route, present and future (pausing types, replaying dead tasks).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::TasksRead,
        Scope::TasksWrite,
        Scope::TasksCancel,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::TasksCancel => "tasks:cancel",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// What a caller may do: a set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Grant(u8);

impl Grant {
    /// A static token, or no auth configured at all.
    pub const FULL: Grant = Grant(u8::MAX);

    /// The scopes of a space-separated `scope` claim; names it does not know are ignored.
    pub fn from_claim(claim: &str) -> Grant {
        Grant(
            claim
                .split_whitespace()
                .filter_map(Scope::parse)
                .fold(0, |bits, s| bits | s.bit()),
        )
    }

    pub fn allows(self, scope: Scope) -> bool {
        self.0 & (scope.bit() | Scope::Admin.bit()) != 0
    }
}

/// The credentials the API accepts, built once when the server starts.
pub(crate) struct Auth {
    tokens: Vec<String>,
    jwt: Option<JwtKeys>,
}

impl Auth {
    /// Reads the JWT key file, if any: a bad key stops the server from starting.
    pub async fn from_config(http: &HttpConfig) -> Result<Self> {
        Ok(Self {
            tokens: http.tokens.clone(),
            jwt: JwtKeys::from_config(http).await?,
        })
    }

    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some()
    }

    /// What the `Authorization` header grants, or 401.
    pub fn grant(&self, header: Option<&HeaderValue>) -> std::result::Result<Grant, ApiError> {
        let Some(token) = header.and_then(bearer) else {
            return Err(ApiError::unauthorized(
                "missing bearer token (Authorization: Bearer <token>)",
            ));
        };
        if self
            .tokens
            .iter()
            .any(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
        {
            return Ok(Grant::FULL);
        }
        match &self.jwt {
            Some(keys) if token.split('.').count() == 3 => keys
                .verify(token)
                .map_err(|why| ApiError::unauthorized(format!("bearer token refused: {why}"))),
            _ => Err(ApiError::unauthorized("wrong bearer token")),
        }
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235).
fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The guard of a group of routes that need one scope.
#[derive(Clone)]
pub(crate) struct Gate {
    pub auth: Arc<Auth>,
    pub scope: Scope,
}

pub(crate) async fn require(
    State(gate): State<Gate>,
    req: Request,
    next: Next,
) -> std::result::Result<Response, ApiError> {
    if gate.auth.enabled() {
        let grant = gate.auth.grant(req.headers().get(AUTHORIZATION))?;
        if !grant.allows(gate.scope) {
            return Err(ApiError::forbidden(gate.scope.as_str()));
        }
    }
    Ok(next.run(req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn a_scope_claim_grants_its_scopes_and_admin_grants_all() {
        let read = Grant::from_claim("tasks:read unknown:thing");
        assert!(read.allows(Scope::TasksRead));
        assert!(!read.allows(Scope::TasksWrite));
        assert!(!read.allows(Scope::TasksCancel));
        let admin = Grant::from_claim("admin");
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        assert!(!Grant::from_claim("").allows(Scope::TasksRead));
        assert!(Scope::ALL.iter().all(|s| Grant::FULL.allows(*s)));
    }

    #[test]
    fn scope_names_round_trip() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer(&v("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("bearer abc")), Some("abc"));
        assert_eq!(bearer(&v("Basic abc")), None);
        assert_eq!(bearer(&v("Bearer ")), None);
    }
}
