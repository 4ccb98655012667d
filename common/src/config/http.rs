//! `[http]`: the HTTP API of `taskfleet serve` — where it listens, who may call it
//! (static tokens, JWTs), and the bounds every request lives within.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `Debug` is written by hand: tokens and the JWT secret never reach a log.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Static bearer tokens, each with full access. With neither tokens nor a JWT key
    /// there is no auth, and the API only listens on loopback.
    pub tokens: Vec<String>,
    /// HS256 secret of JWT bearer tokens (env `TASKFLEET_HTTP__JWT_SECRET`).
    pub jwt_secret: Option<String>,
    /// PEM public key of RS256 (RSA key) or ES256 (P-256 key) JWT bearer tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// A request still unanswered after this gets 503 (`timeout`).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Requests handled at once; more wait for a turn (within `request_timeout`).
    pub max_concurrent_requests: usize,
    /// Most tasks in one `POST /v1/tasks/batch`; more get 413.
    pub max_batch: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            tokens: Vec::new(),
            jwt_secret: None,
            jwt_public_key_file: None,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 512,
            max_batch: 1000,
        }
    }
}

impl HttpConfig {
    /// Whether any caller must authenticate: static tokens or a JWT key are set.
    pub fn auth_enabled(&self) -> bool {
        !self.tokens.is_empty() || self.jwt_secret.is_some() || self.jwt_public_key_file.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, problem: &str| {
            Err(ConfigError::Invalid {
                key: format!("http.{key}"),
                problem: problem.to_owned(),
            })
        };
        if self.tokens.iter().any(String::is_empty) {
            return invalid("tokens", "a token must not be empty");
        }
        if self.jwt_secret.as_ref().is_some_and(|s| s.len() < 16) {
            return invalid("jwt_secret", "must be at least 16 bytes");
        }
        if let Some(key) = &self.jwt_public_key_file
            && !key.is_file()
        {
            return invalid(
                "jwt_public_key_file",
                &format!("{} is not a readable file", key.display()),
            );
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout", "must be greater than 0");
        }
        if self.max_concurrent_requests == 0 {
            return invalid("max_concurrent_requests", "must be greater than 0");
        }
        if self.max_batch == 0 || self.max_batch > 100_000 {
            return invalid("max_batch", "must be between 1 and 100000");
        }
        Ok(())
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| format_args!("redacted")),
            )
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("request_timeout", &self.request_timeout)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_reach_debug_output() {
        let c = HttpConfig {
            tokens: vec!["static-token-1".into()],
            jwt_secret: Some("jwt-secret-of-32-bytes-or-so!!".into()),
            ..HttpConfig::default()
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("static-token-1"), "{shown}");
        assert!(!shown.contains("jwt-secret"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn auth_is_on_with_tokens_or_a_jwt_key() {
        assert!(!HttpConfig::default().auth_enabled());
        let jwt = HttpConfig {
            jwt_secret: Some("0123456789abcdef".into()),
            ..HttpConfig::default()
        };
        assert!(jwt.auth_enabled());
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let c = HttpConfig {
            jwt_secret: Some("short".into()),
            ..HttpConfig::default()
        };
        assert!(c.validate().is_err());
    }
}
