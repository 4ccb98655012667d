//! JWT bearer tokens: HS256 with `http.jwt_secret`, RS256 or ES256 with the PEM
//! public key of `http.jwt_public_key_file` (the key's type decides which). A token
//! is accepted when its signature verifies with the key of its `alg`, its `exp`
//! (required) and `nbf` (if any) hold, and then grants the scopes of its `scope`
//! claim (space-separated, or an array of names).

use super::auth::Grant;
use crate::error::{ProducerError, Result};
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use taskfleet_common::config::HttpConfig;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;

/// The keys JWTs are verified with. Holds no secret in a form `Debug` could show
/// (it has no `Debug` at all).
pub(crate) struct JwtKeys {
    secret: Option<DecodingKey>,
    public: Option<(DecodingKey, Algorithm)>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    scope: ScopeClaim,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum ScopeClaim {
    #[default]
    None,
    Spaced(String),
    List(Vec<String>),
}

impl JwtKeys {
    /// `None` when neither key is configured.
    pub async fn from_config(http: &HttpConfig) -> Result<Option<Self>> {
        let secret = match &http.jwt_secret {
            Some(s) => Some(DecodingKey::from_secret(s.as_bytes()).map_err(|_| {
                ProducerError::Invalid("http.jwt_secret is not a usable HS256 key".into())
            })?),
            None => None,
        };
        let public = match &http.jwt_public_key_file {
            Some(path) => Some(public_key(path).await?),
            None => None,
        };
        Ok((secret.is_some() || public.is_some()).then_some(Self { secret, public }))
    }

    /// The scopes the token grants, or why it is refused (never the token itself).
    pub fn verify(&self, token: &str) -> std::result::Result<Grant, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "not a valid JWT")?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.as_ref(),
            alg => self
                .public
                .as_ref()
                .filter(|(_, accepted)| *accepted == alg)
                .map(|(key, _)| key),
        };
        let Some(key) = key else {
            return Err(format!(
                "JWT algorithm {:?} is not accepted by this server",
                header.alg
            ));
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| refusal(e.kind()))?;
        Ok(match data.claims.scope {
            ScopeClaim::None => Grant::default(),
            ScopeClaim::Spaced(s) => Grant::from_claim(&s),
            ScopeClaim::List(names) => Grant::from_claim(&names.join(" ")),
        })
    }
}

fn refusal(kind: &JwtErrorKind) -> String {
    match kind {
        JwtErrorKind::ExpiredSignature => "JWT expired (exp)".into(),
        JwtErrorKind::ImmatureSignature => "JWT not valid yet (nbf)".into(),
        JwtErrorKind::InvalidSignature => "JWT signature does not verify".into(),
        JwtErrorKind::MissingRequiredClaim(claim) => format!("JWT has no {claim} claim"),
        JwtErrorKind::InvalidClaimFormat(claim) => format!("JWT claim {claim} is malformed"),
        JwtErrorKind::InvalidAlgorithm => "JWT algorithm does not match the key".into(),
        _ => "not a valid JWT".into(),
    }
}

/// An RSA public key verifies RS256, an EC (P-256) one ES256.
async fn public_key(path: &std::path::Path) -> Result<(DecodingKey, Algorithm)> {
    let invalid = |problem: String| {
        ProducerError::Invalid(format!(
            "http.jwt_public_key_file {}: {problem}",
            path.display()
        ))
    };
    let pem = tokio::fs::read(path)
        .await
        .map_err(|e| invalid(e.to_string()))?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    DecodingKey::from_ec_pem(&pem)
        .map(|key| (key, Algorithm::ES256))
        .map_err(|_| invalid("neither an RSA nor an EC public key in PEM".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::auth::Scope;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-of-32-bytes-length";

    fn keys() -> JwtKeys {
        JwtKeys {
            secret: Some(DecodingKey::from_secret(SECRET.as_bytes()).expect("key")),
            public: None,
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).expect("key"),
        )
        .expect("encodes")
    }

    #[test]
    fn a_valid_token_grants_its_scopes() {
        let t = token(json!({"exp": now() + 60, "scope": "tasks:read"}), SECRET);
        let grant = keys().verify(&t).expect("accepted");
        assert!(grant.allows(Scope::TasksRead));
        assert!(!grant.allows(Scope::TasksWrite));
        let t = token(
            json!({"exp": now() + 60, "scope": ["tasks:cancel"]}),
            SECRET,
        );
        assert!(
            keys()
                .verify(&t)
                .expect("accepted")
                .allows(Scope::TasksCancel)
        );
    }

    #[test]
    fn expired_forged_and_exp_less_tokens_are_refused() {
        let expired = token(json!({"exp": now() - 3600, "scope": "admin"}), SECRET);
        assert!(
            keys()
                .verify(&expired)
                .expect_err("expired")
                .contains("expired")
        );
        let forged = token(
            json!({"exp": now() + 60, "scope": "admin"}),
            "another-secret-of-32-bytes-long!",
        );
        assert!(
            keys()
                .verify(&forged)
                .expect_err("forged")
                .contains("signature")
        );
        let no_exp = token(json!({"scope": "admin"}), SECRET);
        assert!(keys().verify(&no_exp).expect_err("no exp").contains("exp"));
        assert!(keys().verify("a.b.c").is_err());
    }

    #[test]
    fn an_algorithm_without_a_key_is_refused() {
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &json!({"exp": now() + 60}),
            &EncodingKey::from_secret(SECRET.as_bytes()).expect("key"),
        )
        .expect("encodes");
        assert!(
            keys()
                .verify(&t)
                .expect_err("HS384")
                .contains("not accepted")
        );
    }
}
