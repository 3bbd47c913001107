//! Authentication without code: the `token` of the `authenticate` payload is either a demo user
//! name (insecure, for trying things out) or a JWT verified with the `jsonwebtoken` crate
//! (HS256 with a shared secret, RS256 or ES256 with a public key). The verified claims give the
//! user id, the client's metadata and its room grant.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::config::{AuthMode, ConfigError, JwtAlgorithm, JwtConfig};
use crate::Identity;

/// Longest token accepted, in bytes; longer ones are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest user id accepted from a token, in bytes.
pub const MAX_USER_ID_BYTES: usize = 256;

/// Who a token says the client is.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The identity handed to the server (user id and metadata).
    pub identity: Identity,
    /// The verified claims (JWT only), for the room policy.
    pub claims: Option<Map<String, Value>>,
}

/// Why a token was refused. Logged at debug level; the client only sees
/// `Authentication failed`.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The payload has no `token` string.
    #[error("no token in the authenticate payload")]
    Missing,
    /// The token is longer than [`MAX_TOKEN_BYTES`].
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    /// Demo mode: not 1–32 of `[A-Za-z0-9_-]`.
    #[error("not a demo user name (1-32 of A-Z a-z 0-9 _ -)")]
    BadName,
    /// Signature, algorithm, expiry, not-before, issuer or audience check failed.
    #[error("invalid JWT: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The user claim is missing, not a string, empty or too long.
    #[error("claim {0:?} must be a non-empty string of at most {MAX_USER_ID_BYTES} bytes")]
    User(String),
}

/// Verifies `authenticate` tokens.
pub enum Authenticator {
    /// INSECURE: the token is the user name.
    Demo,
    /// JWT verification.
    Jwt(Box<JwtVerifier>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Demo => f.write_str("Authenticator::Demo"),
            Self::Jwt(v) => f
                .debug_struct("Authenticator::Jwt")
                .field("algorithm", &v.validation.algorithms)
                .finish_non_exhaustive(),
        }
    }
}

impl Authenticator {
    /// The authenticator for a validated configuration; reads the public key file.
    pub fn new(mode: AuthMode, jwt: &JwtConfig) -> Result<Self, ConfigError> {
        match mode {
            AuthMode::Demo => Ok(Self::Demo),
            AuthMode::Jwt => JwtVerifier::new(jwt).map(|v| Self::Jwt(Box::new(v))),
        }
    }

    /// Checks a token.
    pub fn verify(&self, token: Option<&str>) -> Result<Verified, Rejected> {
        let token = token.ok_or(Rejected::Missing)?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejected::TooLong);
        }
        match self {
            Self::Demo if crate::demo::valid_name(token) => Ok(Verified {
                identity: Identity::user(token),
                claims: None,
            }),
            Self::Demo => Err(Rejected::BadName),
            Self::Jwt(verifier) => verifier.verify(token),
        }
    }
}

/// JWT verification settings and key.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    user_claim: String,
    metadata_claims: Vec<String>,
}

impl JwtVerifier {
    /// Builds the verifier: the key (secret or PEM public key) and the checks.
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        let (algorithm, key) = match (config.algorithm, &config.secret, &config.public_key_file) {
            (Some(JwtAlgorithm::HS256) | None, Some(secret), _) => (
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose().as_bytes()),
            ),
            (Some(alg @ (JwtAlgorithm::RS256 | JwtAlgorithm::ES256)), _, Some(path)) => {
                let key_name = "auth.jwt.public_key_file";
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::new(key_name, format!("cannot read {}: {e}", path.display()))
                })?;
                let parsed = match alg {
                    JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    _ => DecodingKey::from_ec_pem(&pem),
                };
                let key = parsed.map_err(|e| {
                    ConfigError::new(
                        key_name,
                        format!(
                            "{} is not a PEM {} public key: {e}",
                            path.display(),
                            if alg == JwtAlgorithm::RS256 {
                                "RSA"
                            } else {
                                "P-256 EC"
                            }
                        ),
                    )
                })?;
                let algorithm = match alg {
                    JwtAlgorithm::RS256 => Algorithm::RS256,
                    _ => Algorithm::ES256,
                };
                (algorithm, key)
            }
            _ => {
                return Err(ConfigError::new(
                    "auth.jwt",
                    "set auth.jwt.secret (HS256) or auth.jwt.algorithm and auth.jwt.public_key_file (RS256/ES256)",
                ));
            }
        };
        // SECURITY: exactly one algorithm is accepted, so an RS256/ES256 public key can never
        // be used as an HMAC secret ("alg confusion"), and `none` is never accepted.
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway.0.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        if config.require_exp {
            validation.set_required_spec_claims(&["exp"]);
        } else {
            validation.required_spec_claims.clear();
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self {
            key,
            validation,
            user_claim: config.user_claim.clone(),
            metadata_claims: config.metadata_claims.clone(),
        })
    }

    /// The clock skew allowed on `exp` and `nbf`.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.validation.leeway)
    }

    /// Verifies signature, algorithm, `exp`, `nbf` (with leeway), `iss` and `aud`; returns the
    /// identity (user claim → user id, configured claims → metadata) and the claims.
    pub fn verify(&self, token: &str) -> Result<Verified, Rejected> {
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)?;
        let claims = data.claims;
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_USER_ID_BYTES => s.clone(),
            _ => return Err(Rejected::User(self.user_claim.clone())),
        };
        let mut identity = Identity::user(user);
        let metadata: Map<String, Value> = self
            .metadata_claims
            .iter()
            .filter_map(|name| claims.get(name).map(|v| (name.clone(), v.clone())))
            .collect();
        if !metadata.is_empty() {
            identity = identity.with_metadata(Value::Object(metadata));
        }
        Ok(Verified {
            identity,
            claims: Some(claims),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::gateway::config::{Dur, Secret};
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "an HS256 secret of at least 32 bytes!";

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
    }

    fn verifier(adjust: impl FnOnce(&mut JwtConfig)) -> Authenticator {
        let mut config = JwtConfig {
            secret: Some(Secret::new(SECRET)),
            metadata_claims: vec!["name".into()],
            leeway: Dur(Duration::from_secs(2)),
            ..JwtConfig::default()
        };
        adjust(&mut config);
        Authenticator::new(AuthMode::Jwt, &config).unwrap()
    }

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn demo_names() {
        let a = Authenticator::Demo;
        assert_eq!(
            a.verify(Some("alice_1-x"))
                .unwrap()
                .identity
                .user_id
                .as_deref(),
            Some("alice_1-x")
        );
        for bad in ["", "a b", "é", &"x".repeat(33), "a.b"] {
            assert!(a.verify(Some(bad)).is_err(), "{bad:?}");
        }
        assert!(matches!(a.verify(None), Err(Rejected::Missing)));
    }

    #[test]
    fn hs256_claims_expiry_and_not_before() {
        let a = verifier(|_| {});
        let ok = token(
            json!({"sub": "alice", "name": "Alice", "role": "x", "exp": now() + 60}),
            SECRET,
        );
        let v = a.verify(Some(&ok)).unwrap();
        assert_eq!(v.identity.user_id.as_deref(), Some("alice"));
        assert_eq!(v.identity.metadata, Some(json!({"name": "Alice"})));

        let forged = token(json!({"sub": "alice", "exp": now() + 60}), "another secret");
        assert!(a.verify(Some(&forged)).is_err());
        let expired = token(json!({"sub": "alice", "exp": now() - 30}), SECRET);
        assert!(a.verify(Some(&expired)).is_err());
        let within_leeway = token(json!({"sub": "alice", "exp": now() - 1}), SECRET);
        assert!(a.verify(Some(&within_leeway)).is_ok());
        let early = token(
            json!({"sub": "a", "exp": now() + 60, "nbf": now() + 30}),
            SECRET,
        );
        assert!(a.verify(Some(&early)).is_err());
        let no_exp = token(json!({"sub": "alice"}), SECRET);
        assert!(a.verify(Some(&no_exp)).is_err());
        let no_sub = token(json!({"exp": now() + 60}), SECRET);
        assert!(matches!(a.verify(Some(&no_sub)), Err(Rejected::User(_))));
        assert!(a.verify(Some("not.a.jwt")).is_err());

        let lax = verifier(|c| c.require_exp = false);
        assert!(lax.verify(Some(&no_exp)).is_ok());
    }

    #[test]
    fn issuer_and_audience() {
        let a = verifier(|c| {
            c.issuer = Some("https://issuer".into());
            c.audience = Some("sealcast".into());
        });
        let exp = now() + 60;
        let good = token(
            json!({"sub": "a", "exp": exp, "iss": "https://issuer", "aud": "sealcast"}),
            SECRET,
        );
        assert!(a.verify(Some(&good)).is_ok());
        let other = token(
            json!({"sub": "a", "exp": exp, "iss": "https://other", "aud": "sealcast"}),
            SECRET,
        );
        assert!(a.verify(Some(&other)).is_err());
        let missing = token(json!({"sub": "a", "exp": exp}), SECRET);
        assert!(a.verify(Some(&missing)).is_err());
    }
}
