//! The OIDC relying party (I6), with `openidconnect`: discovery, the authorization-code flow
//! with PKCE S256, state and nonce, and the id_token checks (signature with an algorithm
//! allowlist, issuer, audience, nonce, expiry with the connection's clock skew).

use super::connections::{Connection, OidcConfig};
use super::mapping::ExternalUser;
use super::{Pending, Redirect, Sso, SsoError};
use crate::auth::ClientInfo;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use std::sync::Arc;
use std::time::Duration;

/// Signatures identity accepts on id_tokens: asymmetric only (no `none`, no HMAC with the
/// client secret).
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

const DEFAULT_SKEW_SECONDS: u32 = 60;

/// Provider metadata (with its keys) per issuer, read again after ten minutes or when a
/// token names a key it does not have.
pub struct Discovery {
    http: reqwest::Client,
    metadata: moka::future::Cache<String, Arc<CoreProviderMetadata>>,
}

impl Discovery {
    pub fn new() -> Result<Self, SsoError> {
        // No redirects: a provider's endpoints are what its metadata says (no SSRF through 3xx).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SsoError::Internal(format!("http client: {e}")))?;
        Ok(Self {
            http,
            metadata: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
        })
    }

    async fn metadata(
        &self,
        issuer: &str,
        fresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, SsoError> {
        if fresh {
            self.metadata.invalidate(issuer).await;
        }
        let http = self.http.clone();
        let issuer_url = IssuerUrl::new(issuer.to_owned())
            .map_err(|e| SsoError::Refused(format!("issuer {issuer:?}: {e}")))?;
        self.metadata
            .try_get_with(issuer.to_owned(), async move {
                CoreProviderMetadata::discover_async(issuer_url, &http)
                    .await
                    .map(Arc::new)
                    .map_err(|e| format!("{e}"))
            })
            .await
            .map_err(|e| SsoError::Unavailable(format!("OIDC discovery of {issuer}: {e}")))
    }
}

fn config(connection: &Connection) -> Result<&OidcConfig, SsoError> {
    connection
        .settings
        .oidc
        .as_ref()
        .ok_or_else(|| SsoError::Refused("this is not an OIDC connection".into()))
}

fn scopes(config: &OidcConfig) -> Vec<String> {
    let mut scopes: Vec<String> = if config.scopes.is_empty() {
        vec!["email".into(), "profile".into()]
    } else {
        config.scopes.clone()
    };
    scopes.retain(|s| s != "openid");
    scopes
}

/// The claims of a compact JWT whose signature and claims were verified already.
fn payload(compact: &str) -> Result<serde_json::Map<String, serde_json::Value>, SsoError> {
    let part = compact
        .split('.')
        .nth(1)
        .ok_or_else(|| SsoError::Refused("id_token is not a JWT".into()))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| SsoError::Refused("id_token payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| SsoError::Refused("id_token payload is not JSON".into()))
}

impl Sso {
    async fn oidc_client(
        &self,
        connection: &Connection,
        fresh: bool,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SsoError,
    > {
        let config = config(connection)?;
        let metadata = self.oidc.metadata(&config.issuer, fresh).await?;
        let secret = connection.client_secret(&self.sealer)?;
        let redirect = RedirectUrl::new(self.callback_url(&connection.id))
            .map_err(|e| SsoError::Internal(format!("callback URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            (*metadata).clone(),
            ClientId::new(config.client_id.clone()),
            secret.map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a new login; the state, nonce and PKCE verifier
    /// wait in the cache for the callback.
    pub async fn oidc_start(
        &self,
        connection: &Connection,
        return_to: &str,
    ) -> Result<String, SsoError> {
        let config = config(connection)?;
        self.checked_return_to(return_to)?;
        let client = self.oidc_client(connection, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in scopes(config) {
            request = request.add_scope(Scope::new(scope));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        self.put_pending(
            state.secret(),
            &Pending {
                connection_id: connection.id.clone(),
                return_to: return_to.trim().to_owned(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                request_id: String::new(),
            },
        )
        .await?;
        Ok(url.to_string())
    }

    /// The provider's answer: the state must be one we issued (once), the code is exchanged
    /// with the PKCE verifier, and the id_token must pass every check before anyone is mapped.
    pub async fn oidc_callback(
        &self,
        connection: &Connection,
        answer: CallbackParams,
        client: ClientInfo,
    ) -> Result<Redirect, SsoError> {
        let refused = |message: String| Err(SsoError::Refused(message));
        let Some(pending) = self.take_pending(&answer.state).await? else {
            return refused("state unknown, used or expired".into());
        };
        if pending.connection_id != connection.id {
            return refused("state belongs to another connection".into());
        }
        if let Some(error) = answer.error.filter(|e| !e.is_empty()) {
            return refused(format!("the identity provider answered {error}"));
        }
        let Some(code) = answer.code.filter(|c| !c.is_empty()) else {
            return refused("no authorization code".into());
        };
        let config = config(connection)?;
        let oidc = self.oidc_client(connection, false).await?;
        let response = oidc
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| SsoError::Refused(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.oidc.http)
            .await
            .map_err(|e| SsoError::Refused(format!("code exchange failed: {e}")))?;
        let Some(id_token) = response.id_token() else {
            return refused("the token response has no id_token".into());
        };
        let skew = chrono::Duration::seconds(i64::from(if config.clock_skew_seconds == 0 {
            DEFAULT_SKEW_SECONDS
        } else {
            config.clock_skew_seconds
        }));
        let nonce = Nonce::new(pending.nonce.clone());
        let verify = |client: &CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >| {
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(ALLOWED_ALGS)
                .set_time_fn(move || chrono::Utc::now() - skew)
                .set_issue_time_verifier_fn(move |issued| {
                    if issued > chrono::Utc::now() + skew {
                        Err(format!("issued in the future ({issued})"))
                    } else {
                        Ok(())
                    }
                });
            id_token.claims(&verifier, &nonce).map(|_| ())
        };
        match verify(&oidc) {
            Ok(()) => {}
            // The provider may have rotated its keys since discovery: read them again, once.
            Err(ClaimsVerificationError::SignatureVerification(_)) => {
                let fresh = self.oidc_client(connection, true).await?;
                verify(&fresh).map_err(|e| SsoError::Refused(format!("id_token refused: {e}")))?;
            }
            Err(error) => return refused(format!("id_token refused: {error}")),
        }
        let claims = payload(&id_token.to_string())?;
        let user = ExternalUser::from_claims(&claims, &connection.settings.mapping);
        self.finish(
            connection,
            user,
            vec!["sso".into(), "oidc".into()],
            client,
            &pending.return_to,
        )
        .await
    }
}

/// The query of an OIDC authorization response.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackParams {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
}
