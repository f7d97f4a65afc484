//! For a downstream tonic server: the layers that give every call a request id, a span under
//! the caller's trace, and an authenticated [`Caller`] in its extensions.
//!
//! ```text
//! let protect = praxis_client::server::Protect::new(&settings)?;
//! tonic::transport::Server::builder()
//!     .layer(protect.layers("patients"))
//!     .add_service(PatientServiceServer::new(api))
//! ```
//!
//! Access tokens are verified here against identity's JWK Set (fetched once, and again when a
//! token names a key not seen yet: identity rotated). API keys (`Bearer prx_…`) are checked
//! with identity and the answer kept for a few seconds.

use praxis_runtime::auth::{ApiKeyChecker, ApiKeyRefusal, AuthLayer, HttpApiKeyChecker};
use praxis_runtime::config::AuthConfig;
use praxis_runtime::request_context::RequestContextLayer;
use praxis_runtime::tls::TlsConfig;
use std::sync::Arc;
use std::time::Duration;
use tower::layer::util::{Identity, Stack};

pub use praxis_runtime::auth::{AuthError, Caller, TokenVerifier, caller};

/// How callers are authenticated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Identity's `/.well-known/jwks.json`.
    pub jwks_url: String,
    /// Identity's `/api-keys/verify`; unset: API keys are refused.
    pub api_key_url: Option<String>,
    /// How long an accepted API key is remembered: a revoked key still works this long here.
    /// Zero asks identity on every call.
    pub api_key_cache: Duration,
    pub issuer: String,
    pub audience: String,
    /// Methods served without a token (`/package.Service/Method`); health and reflection always are.
    pub public_methods: Vec<String>,
    /// Trusts `ca_file` for `https://` key and API key URLs.
    pub tls: TlsConfig,
}

impl Settings {
    pub fn new(jwks_url: impl Into<String>) -> Self {
        let defaults = AuthConfig::default();
        Self {
            jwks_url: jwks_url.into(),
            api_key_url: None,
            api_key_cache: Duration::from_secs(5),
            issuer: defaults.issuer,
            audience: defaults.audience,
            public_methods: Vec::new(),
            tls: TlsConfig::default(),
        }
    }
}

/// The authentication of one server; clone freely.
#[derive(Clone)]
pub struct Protect {
    verifier: Arc<TokenVerifier>,
    public_methods: Vec<String>,
}

impl Protect {
    pub fn new(settings: &Settings) -> Result<Self, praxis_runtime::config::ConfigError> {
        let config = AuthConfig {
            jwks_url: Some(settings.jwks_url.clone()),
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ..AuthConfig::default()
        };
        let verifier = Arc::new(TokenVerifier::with_tls(&config, &settings.tls)?);
        if let Some(url) = &settings.api_key_url {
            let builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
            let http = settings
                .tls
                .http_client(builder)
                .map_err(|error| praxis_runtime::config::ConfigError::new(error.to_string()))?
                .build()
                .map_err(|error| {
                    praxis_runtime::config::ConfigError::new(format!("http client: {error}"))
                })?;
            let checker = RememberedKeys::new(
                Arc::new(HttpApiKeyChecker::new(url, http)),
                settings.api_key_cache,
            );
            verifier.set_api_key_checker(Arc::new(checker));
        }
        Ok(Self {
            verifier,
            public_methods: settings.public_methods.clone(),
        })
    }

    pub fn verifier(&self) -> Arc<TokenVerifier> {
        self.verifier.clone()
    }

    /// Request context (outermost) then authentication, for `Server::builder().layer(..)`.
    pub fn layers(
        &self,
        service: &'static str,
    ) -> Stack<AuthLayer, Stack<RequestContextLayer, Identity>> {
        tower::ServiceBuilder::new()
            .layer(RequestContextLayer::new(service))
            .layer(AuthLayer::new(
                self.verifier.clone(),
                self.public_methods.clone(),
            ))
            .into_inner()
    }
}

/// Accepted API keys, by the SHA-256 of the key, for a short time; refusals are never kept, so
/// a key that starts working (or identity coming back) is seen at once.
pub struct RememberedKeys {
    inner: Arc<dyn ApiKeyChecker>,
    accepted: moka::future::Cache<[u8; 32], Caller>,
}

impl RememberedKeys {
    pub fn new(inner: Arc<dyn ApiKeyChecker>, keep: Duration) -> Self {
        Self {
            inner,
            accepted: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(keep.max(Duration::from_millis(1)))
                .build(),
        }
    }
}

#[async_trait::async_trait]
impl ApiKeyChecker for RememberedKeys {
    async fn check(&self, key: &str) -> Result<Caller, ApiKeyRefusal> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
        if let Some(caller) = self.accepted.get(&digest).await {
            return Ok(caller);
        }
        let caller = self.inner.check(key).await?;
        self.accepted.insert(digest, caller.clone()).await;
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        calls: AtomicU32,
        valid: &'static str,
    }

    #[async_trait::async_trait]
    impl ApiKeyChecker for Counting {
        async fn check(&self, key: &str) -> Result<Caller, ApiKeyRefusal> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if key == self.valid {
                Ok(Caller {
                    user_id: "svc-1".into(),
                    enterprise_id: "e-1".into(),
                    kind: "SERVICE_ACCOUNT".into(),
                    ..Caller::default()
                })
            } else {
                Err(ApiKeyRefusal::Invalid)
            }
        }
    }

    #[tokio::test]
    async fn accepted_keys_are_remembered_briefly_and_refusals_never() {
        let inner = Arc::new(Counting {
            calls: AtomicU32::new(0),
            valid: "prx_good",
        });
        let keys = RememberedKeys::new(inner.clone(), Duration::from_millis(200));
        for _ in 0..3 {
            assert_eq!(
                keys.check("prx_good").await.map(|c| c.user_id).ok(),
                Some("svc-1".to_owned())
            );
        }
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1, "asked identity once");
        for _ in 0..2 {
            assert!(matches!(
                keys.check("prx_bad").await,
                Err(ApiKeyRefusal::Invalid)
            ));
        }
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            3,
            "refusals are asked again"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(keys.check("prx_good").await.is_ok());
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            4,
            "asked again once the time is up"
        );
    }
}
