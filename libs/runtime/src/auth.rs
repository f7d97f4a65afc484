//! Caller authentication: every call but health and reflection carries `authorization: Bearer
//! <jwt>`, an access token issued by identity (EdDSA, I5), verified here against identity's JWK Set.
//! The handlers then find a ready [`Caller`] in the request extensions.

use crate::config::AuthConfig;

use futures::future::BoxFuture;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;
use tonic::Status;

/// Who is calling, as proven by their access token or API key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Caller {
    pub user_id: String,
    pub enterprise_id: String,
    pub session_id: String,
    /// Directory user kind, e.g. `ENTERPRISE_ADMIN` (D3).
    pub kind: String,
    /// Unix seconds of the last interactive authentication (step-up freshness, I4).
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// An API key's scopes (I7): the only permissions it may be allowed; empty = no limit
    /// beyond the principal's own.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// Tokens of platform operators carry this kind and no enterprise.
pub const PLATFORM_ADMIN_KIND: &str = "PLATFORM_ADMIN";
pub const ENTERPRISE_ADMIN_KIND: &str = "ENTERPRISE_ADMIN";

impl Caller {
    /// A platform admin, or an enterprise admin of `enterprise_id`: who manages an enterprise's
    /// settings (SSO connections, API keys) and may ask who may do what in it.
    pub fn administers(&self, enterprise_id: &str) -> bool {
        self.kind == PLATFORM_ADMIN_KIND
            || (self.kind == ENTERPRISE_ADMIN_KIND && self.enterprise_id == enterprise_id)
    }
}

/// API keys start with this; anything else after `Bearer ` is an access token.
pub const API_KEY_PREFIX: &str = "prx_";

/// Why an API key was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyRefusal {
    #[error("invalid API key")]
    Invalid,
    #[error("API key rate limit exceeded")]
    RateLimited(Duration),
    #[error("API keys cannot be checked right now: {0}")]
    Unavailable(String),
}

/// Checks an API key with identity (I7) and says who it is.
#[async_trait::async_trait]
pub trait ApiKeyChecker: Send + Sync {
    async fn check(&self, key: &str) -> Result<Caller, ApiKeyRefusal>;
}

/// Identity's `POST /api-keys/verify`, for services in other processes.
pub struct HttpApiKeyChecker {
    url: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct VerifyRequest<'a> {
    key: &'a str,
}

#[derive(Deserialize)]
struct RateLimitAnswer {
    retry_after_ms: u64,
}

impl HttpApiKeyChecker {
    pub fn new(url: &str, http: reqwest::Client) -> Self {
        Self {
            url: url.to_owned(),
            http,
        }
    }
}

#[async_trait::async_trait]
impl ApiKeyChecker for HttpApiKeyChecker {
    async fn check(&self, key: &str) -> Result<Caller, ApiKeyRefusal> {
        let answer = self
            .http
            .post(&self.url)
            .json(&VerifyRequest { key })
            .send()
            .await
            .map_err(|e| ApiKeyRefusal::Unavailable(e.to_string()))?;
        match answer.status().as_u16() {
            200 => answer
                .json::<Caller>()
                .await
                .map_err(|e| ApiKeyRefusal::Unavailable(e.to_string())),
            401 | 403 => Err(ApiKeyRefusal::Invalid),
            429 => {
                let wait = answer
                    .json::<RateLimitAnswer>()
                    .await
                    .map_or(1_000, |a| a.retry_after_ms);
                Err(ApiKeyRefusal::RateLimited(Duration::from_millis(wait)))
            }
            code => Err(ApiKeyRefusal::Unavailable(format!(
                "identity answered {code}"
            ))),
        }
    }
}

/// The claims of a Praxis access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub ent: String,
    pub sid: String,
    pub kind: String,
    pub auth_time: i64,
    #[serde(default)]
    pub amr: Vec<String>,
    pub iat: i64,
    pub exp: i64,
}

impl From<AccessClaims> for Caller {
    fn from(claims: AccessClaims) -> Self {
        Self {
            user_id: claims.sub,
            enterprise_id: claims.ent,
            session_id: claims.sid,
            kind: claims.kind,
            auth_time: claims.auth_time,
            amr: claims.amr,
            scopes: Vec::new(),
        }
    }
}

/// The caller a handler was given by [`AuthLayer`].
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

#[derive(Debug, Clone)]
enum KeySource {
    File(std::path::PathBuf),
    Url(String),
}

struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    loaded_at: Option<Instant>,
}

impl KeyCache {
    fn recently_loaded(&self) -> bool {
        self.loaded_at
            .is_some_and(|at| at.elapsed() < RELOAD_INTERVAL)
    }
}

/// Verifies access tokens against a JWK Set that is reloaded when a token names an unknown key
/// (identity rotated its keys), at most once per `RELOAD_INTERVAL` so garbage tokens cannot make
/// us hammer the key source.
pub struct TokenVerifier {
    source: KeySource,
    validation: Validation,
    cache: RwLock<KeyCache>,
    http: reqwest::Client,
    /// Tokens already verified, by SHA-256, with their expiry: a signature is checked once per
    /// token, not once per call (Ed25519 verification costs tens of microseconds).
    verified: moka::sync::Cache<[u8; 32], (Caller, i64)>,
    /// Service credentials by the SHA-256 of their secret.
    services: HashMap<[u8; 32], String>,
    /// Where API keys are checked (identity); unset: they are refused.
    api_keys: std::sync::OnceLock<Arc<dyn ApiKeyChecker>>,
}

/// The kind of callers that are Praxis services rather than people.
pub const SERVICE_KIND: &str = "SERVICE";

/// Shared secrets shorter than this are refused: they are the only thing between a caller and
/// a service identity.
pub const MIN_SERVICE_SECRET: usize = 32;

const LEEWAY_SECONDS: u64 = 30;

const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("token signed by an unknown key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
    #[error("API key rate limit exceeded")]
    RateLimited(Duration),
}

impl AuthError {
    pub fn into_status(self) -> Status {
        match self {
            AuthError::KeysUnavailable(_) => Status::unavailable("cannot verify tokens right now"),
            AuthError::RateLimited(wait) => {
                use tonic_types::{ErrorDetails, StatusExt};
                Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    format!(
                        "this API key's rate limit is exceeded; retry in {} ms",
                        wait.as_millis()
                    ),
                    ErrorDetails::with_retry_info(Some(wait)),
                )
            }
            other => Status::unauthenticated(other.to_string()),
        }
    }
}

impl TokenVerifier {
    pub fn new(config: &AuthConfig) -> Result<Self, crate::config::ConfigError> {
        Self::with_tls(config, &crate::tls::TlsConfig::default())
    }

    /// Like [`TokenVerifier::new`], trusting `tls.ca_file` for `https://` key and API key URLs.
    pub fn with_tls(
        config: &AuthConfig,
        tls: &crate::tls::TlsConfig,
    ) -> Result<Self, crate::config::ConfigError> {
        config.validate()?;
        let file = config
            .jwks_file
            .clone()
            .filter(|path| !path.as_os_str().is_empty());
        let url = config.jwks_url.clone().filter(|url| !url.is_empty());
        let api_key_url = config.api_key_url.clone().filter(|url| !url.is_empty());
        let source = match (file, url) {
            (Some(path), _) => KeySource::File(path),
            (None, Some(url)) => KeySource::Url(url),
            (None, None) => return Err(crate::config::ConfigError::new("auth: no key source")),
        };
        let mut services = HashMap::new();
        for (name, secret) in &config.service_credentials {
            if secret.0.len() < MIN_SERVICE_SECRET {
                return Err(crate::config::ConfigError::new(format!(
                    "auth.service_credentials.{name}: at least {MIN_SERVICE_SECRET} characters"
                )));
            }
            use sha2::Digest;
            let digest: [u8; 32] = sha2::Sha256::digest(secret.0.as_bytes()).into();
            services.insert(digest, name.clone());
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        let builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
        let http = tls
            .http_client(builder)
            .map_err(|error| crate::config::ConfigError::new(error.to_string()))?
            .build()
            .map_err(|error| {
                crate::config::ConfigError::new(format!("auth: http client: {error}"))
            })?;
        Ok(Self {
            source,
            validation,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                loaded_at: None,
            }),
            verified: moka::sync::Cache::builder()
                .max_capacity(50_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            api_keys: {
                let lock = std::sync::OnceLock::new();
                if let Some(url) = api_key_url {
                    let checker: Arc<dyn ApiKeyChecker> =
                        Arc::new(HttpApiKeyChecker::new(&url, http.clone()));
                    let _ = lock.set(checker);
                }
                lock
            },
            http,
            services,
        })
    }

    /// Checks API keys with `checker` (identity in this process); the first one set stays.
    pub fn set_api_key_checker(&self, checker: Arc<dyn ApiKeyChecker>) {
        let _ = self.api_keys.set(checker);
    }

    /// Verifies an `authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let token = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::Missing)?;
        self.verify(token).await
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        let leeway = i64::try_from(LEEWAY_SECONDS).unwrap_or(0);
        if let Some(name) = self.services.get(&digest) {
            return Ok(Caller {
                user_id: format!("service:{name}"),
                enterprise_id: String::new(),
                session_id: "service".to_owned(),
                kind: SERVICE_KIND.to_owned(),
                auth_time: 0,
                amr: vec!["svc".to_owned()],
                scopes: Vec::new(),
            });
        }
        // API keys are checked with identity on every call, never cached here: a revoked key
        // stops at once, and the rate limit sees every call.
        if token.starts_with(API_KEY_PREFIX) {
            let Some(checker) = self.api_keys.get() else {
                return Err(AuthError::Invalid(
                    "API keys are not accepted here".to_owned(),
                ));
            };
            return checker.check(token).await.map_err(|refusal| match refusal {
                ApiKeyRefusal::Invalid => AuthError::Invalid("invalid API key".to_owned()),
                ApiKeyRefusal::RateLimited(wait) => AuthError::RateLimited(wait),
                ApiKeyRefusal::Unavailable(cause) => AuthError::KeysUnavailable(cause),
            });
        }
        if let Some((caller, exp)) = self.verified.get(&digest) {
            if now <= exp + leeway {
                return Ok(caller);
            }
            self.verified.invalidate(&digest);
            return Err(AuthError::Invalid("ExpiredSignature".to_owned()));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::Invalid("algorithm not allowed".to_owned()));
        }
        let kid = header.kid.ok_or(AuthError::Malformed)?;
        let key = self.key(&kid).await?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
            .map_err(|error| AuthError::Invalid(error.to_string()))?;
        let exp = data.claims.exp;
        let caller: Caller = data.claims.into();
        self.verified.insert(digest, (caller.clone(), exp));
        Ok(caller)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        {
            let cache = self.cache.read().await;
            if let Some(key) = cache.keys.get(kid) {
                return Ok(key.clone());
            }
            if cache.recently_loaded() {
                return Err(AuthError::UnknownKey);
            }
        }
        let mut cache = self.cache.write().await;
        // Another call may have reloaded while this one waited for the lock.
        if !cache.recently_loaded() {
            let set = self.load().await?;
            cache.keys = decoding_keys(&set);
            cache.loaded_at = Some(Instant::now());
        }
        cache.keys.get(kid).cloned().ok_or(AuthError::UnknownKey)
    }

    async fn load(&self) -> Result<JwkSet, AuthError> {
        let unavailable =
            |error: &dyn std::fmt::Display| AuthError::KeysUnavailable(error.to_string());
        match &self.source {
            KeySource::File(path) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| unavailable(&e))?;
                serde_json::from_str(&text).map_err(|e| unavailable(&e))
            }
            KeySource::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| unavailable(&e))?;
                let response = response.error_for_status().map_err(|e| unavailable(&e))?;
                response.json::<JwkSet>().await.map_err(|e| unavailable(&e))
            }
        }
    }
}

fn decoding_keys(set: &JwkSet) -> HashMap<String, DecodingKey> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, key))
        })
        .collect()
}

/// Paths that answer without a token: probes and tooling must work before anyone logs in.
fn is_always_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

/// Tower layer that authenticates every call and puts the [`Caller`] into its extensions.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<TokenVerifier>,
    /// Full method paths a service chose to serve without a token (e.g. its JWK Set).
    public_methods: Arc<[String]>,
}

impl AuthLayer {
    pub fn new(verifier: Arc<TokenVerifier>, public_methods: Vec<String>) -> Self {
        Self {
            verifier,
            public_methods: public_methods.into(),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            verifier: self.verifier.clone(),
            public_methods: self.public_methods.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    verifier: Arc<TokenVerifier>,
    public_methods: Arc<[String]>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone is not ready yet; the ready one goes into the future (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let path = request.uri().path();
        if is_always_public(path) || self.public_methods.iter().any(|public| public == path) {
            return Box::pin(inner.call(request));
        }
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            match verifier.authenticate(header).await {
                Ok(caller) => {
                    tracing::Span::current().record("user_id", caller.user_id.as_str());
                    tracing::Span::current().record("enterprise_id", caller.enterprise_id.as_str());
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(error) => {
                    tracing::info!(reason = %error, "call refused: not authenticated");
                    Ok(error.into_status().into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            user_id: "u-1".into(),
            enterprise_id: "e-1".into(),
            session_id: "s-1".into(),
            kind: "STAFF".into(),
            auth_time: 0,
            amr: vec!["pwd".into()],
            scopes: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_service_credential_is_that_service_and_nothing_else_is() {
        let secret = "s".repeat(40);
        let config = AuthConfig {
            jwks_file: Some(std::path::PathBuf::from("/nonexistent/jwks.json")),
            service_credentials: [(
                "authz".to_owned(),
                crate::config::ServiceSecret(secret.clone()),
            )]
            .into_iter()
            .collect(),
            ..AuthConfig::default()
        };
        assert!(!format!("{config:?}").contains(&secret), "never in logs");
        let verifier = TokenVerifier::new(&config).expect("verifier");
        let caller = verifier.verify(&secret).await.expect("the service");
        assert_eq!(
            (caller.user_id.as_str(), caller.kind.as_str()),
            ("service:authz", SERVICE_KIND)
        );
        assert!(caller.enterprise_id.is_empty());
        assert!(verifier.verify(&"s".repeat(39)).await.is_err());
        assert!(verifier.verify(&format!("{secret}x")).await.is_err());
        let short = AuthConfig {
            service_credentials: [(
                "authz".to_owned(),
                crate::config::ServiceSecret("too short".into()),
            )]
            .into_iter()
            .collect(),
            ..config
        };
        assert!(TokenVerifier::new(&short).is_err(), "short secrets refused");
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_only_until_it_expires() {
        let verifier = TokenVerifier::new(&AuthConfig {
            jwks_file: Some(std::path::PathBuf::from("/nonexistent/jwks.json")),
            ..AuthConfig::default()
        })
        .expect("verifier");
        let now = chrono_free_now();
        let digest = |token: &str| -> [u8; 32] {
            use sha2::Digest;
            sha2::Sha256::digest(token.as_bytes()).into()
        };
        verifier
            .verified
            .insert(digest("fresh"), (caller(), now + 60));
        verifier
            .verified
            .insert(digest("stale"), (caller(), now - 60));
        assert_eq!(
            verifier.verify("fresh").await.expect("remembered").user_id,
            "u-1"
        );
        assert!(matches!(
            verifier.verify("stale").await,
            Err(AuthError::Invalid(_))
        ));
        // Forgotten after refusing, so it is refused again by full verification.
        assert!(verifier.verified.get(&digest("stale")).is_none());
        assert!(verifier.verify("stale").await.is_err());
    }

    fn chrono_free_now() -> i64 {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        i64::try_from(secs).unwrap_or(i64::MAX)
    }
}
