//! Single sign-on through an enterprise's identity provider (I6). A browser login goes
//! start → provider → back here (OIDC callback or SAML ACS) → the person is mapped and
//! provisioned in directory → a single-use `sso_code` is handed to the web app through its
//! allowlisted `return_to`, and its backend trades the code for a session (`CompleteSsoLogin`).
//! Flow state (OIDC state, nonce and PKCE verifier; SAML request ids) lives in the cache with
//! an expiry and is taken, so each is used once.

pub mod connections;
pub mod mapping;
pub mod oidc;
pub mod saml;

use crate::accounts::ProvisionError;
use crate::auth::{AuthError, Authenticator, ClientInfo, Tokens};
use crate::secrets::Sealer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use connections::Connection;
use mapping::ExternalUser;
use praxis_cache::Cache;
use rand::RngCore;
use sea_orm::{DatabaseConnection, DbErr};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SsoSettings {
    /// Identity's HTTP address as browsers and identity providers reach it; callbacks are
    /// built on it (`{public_url}/sso/{connection}/callback`). Empty: `http://` and the address
    /// the HTTP listener is bound to (development).
    pub public_url: String,
    /// Origins (`scheme://host[:port]`) a finished login may return to. Anything else is
    /// refused, so identity is no open redirector.
    pub return_origins: Vec<String>,
    /// How long a started login may take at the identity provider.
    pub login_seconds: u64,
}

impl Default for SsoSettings {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            return_origins: vec![
                "http://localhost:3000".to_owned(),
                "http://127.0.0.1:3000".to_owned(),
            ],
            login_seconds: 600,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// Bad input from an admin (a connection's settings).
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A login refused: the reason is safe to show and is audited.
    #[error("{0}")]
    Refused(String),
    #[error("{message}")]
    Precondition {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the connection changed since it was read")]
    Aborted,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<DbErr> for SsoError {
    fn from(error: DbErr) -> Self {
        SsoError::Internal(format!("identity store: {error}"))
    }
}

impl From<AuthError> for SsoError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unavailable(cause) => SsoError::Unavailable(cause),
            AuthError::Internal(cause) => SsoError::Internal(cause),
            other => SsoError::Refused(other.to_string()),
        }
    }
}

/// A login between its start and the provider's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub connection_id: String,
    pub return_to: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// SAML: the AuthnRequest id the response must answer.
    pub request_id: String,
}

/// A finished browser login waiting for `CompleteSsoLogin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Finished {
    user_id: String,
    amr: Vec<String>,
    client: ClientInfo,
}

/// What `finish` hands the browser: where to go next.
pub struct Redirect(pub String);

pub struct Sso {
    pub(crate) db: DatabaseConnection,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) sealer: Sealer,
    pub(crate) auth: Arc<Authenticator>,
    pub(crate) settings: SsoSettings,
    pub(crate) oidc: oidc::Discovery,
    /// `http://<listener address>`, for an empty `public_url`.
    bound_url: std::sync::OnceLock<String>,
}

const CODE_SECONDS: u64 = 60;

fn pending_key(state: &str) -> String {
    format!("praxis:identity:sso:pending:{state}")
}

fn code_key(code: &str) -> String {
    format!("praxis:identity:sso:code:{}", crate::sessions::digest(code))
}

pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Sso {
    pub fn new(
        db: DatabaseConnection,
        cache: Arc<dyn Cache>,
        sealer: Sealer,
        auth: Arc<Authenticator>,
        settings: SsoSettings,
    ) -> Result<Self, SsoError> {
        Ok(Self {
            oidc: oidc::Discovery::new()?,
            bound_url: std::sync::OnceLock::new(),
            db,
            cache,
            sealer,
            auth,
            settings,
        })
    }

    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn trust_forwarded_for(&self) -> bool {
        self.auth.settings().trust_forwarded_for
    }

    /// Records where the HTTP listener is, for an empty `public_url`.
    pub fn bound_to(&self, address: std::net::SocketAddr) {
        let _ = self.bound_url.set(format!("http://{address}"));
    }

    pub fn public_url(&self) -> String {
        let configured = self.settings.public_url.trim().trim_end_matches('/');
        if configured.is_empty() {
            self.bound_url.get().cloned().unwrap_or_default()
        } else {
            configured.to_owned()
        }
    }

    pub fn callback_url(&self, connection_id: &str) -> String {
        format!("{}/sso/{connection_id}/callback", self.public_url())
    }

    pub fn acs_url(&self, connection_id: &str) -> String {
        format!("{}/sso/{connection_id}/acs", self.public_url())
    }

    /// `return_to` if its origin is allowlisted; nothing else is ever redirected to.
    pub fn checked_return_to(&self, return_to: &str) -> Result<url::Url, SsoError> {
        let url = url::Url::parse(return_to.trim())
            .map_err(|_| SsoError::Refused("return_to is not an absolute URL".into()))?;
        let origin = url.origin().ascii_serialization();
        if self
            .settings
            .return_origins
            .iter()
            .any(|allowed| allowed.trim_end_matches('/') == origin)
        {
            Ok(url)
        } else {
            Err(SsoError::Refused(format!(
                "return_to {origin} is not an allowed origin"
            )))
        }
    }

    /// An enabled connection, or a refusal naming why not.
    pub async fn usable_connection(&self, id: &str) -> Result<Connection, SsoError> {
        match connections::get(&self.db, id).await? {
            Some(connection) if connection.enabled => Ok(connection),
            Some(_) => Err(SsoError::Refused("this SSO connection is disabled".into())),
            None => Err(SsoError::NotFound("SSO connection")),
        }
    }

    pub(crate) async fn put_pending(&self, state: &str, pending: &Pending) -> Result<(), SsoError> {
        let bytes = serde_json::to_vec(pending).map_err(|e| SsoError::Internal(e.to_string()))?;
        self.cache
            .set(
                &pending_key(state),
                &bytes,
                Duration::from_secs(self.settings.login_seconds),
            )
            .await
            .map_err(|e| SsoError::Unavailable(e.to_string()))
    }

    /// The pending login `state` names, removed so it cannot be answered twice.
    pub(crate) async fn take_pending(&self, state: &str) -> Result<Option<Pending>, SsoError> {
        if state.is_empty() || state.len() > 128 {
            return Ok(None);
        }
        let bytes = self
            .cache
            .take(&pending_key(state))
            .await
            .map_err(|e| SsoError::Unavailable(e.to_string()))?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// A verified person from `connection`: checks the domain, provisions or updates them in
    /// directory, checks they may log in, and hands back the redirect carrying the sso_code.
    pub(crate) async fn finish(
        &self,
        connection: &Connection,
        user: ExternalUser,
        amr: Vec<String>,
        client: ClientInfo,
        return_to: &str,
    ) -> Result<Redirect, SsoError> {
        let refused = |message: String| Err(SsoError::Refused(message));
        if user.email.is_empty() {
            return refused("the identity provider sent no email".into());
        }
        if user.email_verified == Some(false) {
            return refused("the identity provider says the email is not verified".into());
        }
        if !connection.domains.iter().any(|d| d == user.domain()) {
            return refused(format!(
                "{} is not a domain this connection serves",
                user.domain()
            ));
        }
        let mut return_to = self.checked_return_to(return_to)?;
        if !connection.settings.provision_users
            && self.auth.account_by_email(&user.email).await?.is_none()
        {
            return refused("no such user, and this connection does not create users".into());
        }
        let request = mapping::provision_request(connection, &user);
        let account = match self.auth.accounts().provision(request).await {
            Ok(account) => account,
            Err(ProvisionError::Refused(message)) => return refused(message),
            Err(ProvisionError::Unavailable(cause)) => return Err(SsoError::Unavailable(cause)),
        };
        if account.enterprise_id != connection.enterprise_id {
            return refused("the user belongs to another enterprise".into());
        }
        if !account.active {
            return refused("user disabled".into());
        }
        if !account.network_allows(client.ip) {
            return refused("logins from this network are not allowed".into());
        }
        // Which connection vouched for whom; the session's own `login` event follows when the
        // code is traded.
        self.auth
            .audit(
                &account.enterprise_id,
                &account.user_id,
                "sso.login",
                "success",
                &client,
                serde_json::json!({
                    "connection_id": connection.id,
                    "protocol": connection.protocol(),
                    "subject": user.subject,
                }),
            )
            .await;
        let code = random_token();
        let finished = Finished {
            user_id: account.user_id.clone(),
            amr,
            client,
        };
        let bytes = serde_json::to_vec(&finished).map_err(|e| SsoError::Internal(e.to_string()))?;
        self.cache
            .set(&code_key(&code), &bytes, Duration::from_secs(CODE_SECONDS))
            .await
            .map_err(|e| SsoError::Unavailable(e.to_string()))?;
        return_to.query_pairs_mut().append_pair("sso_code", &code);
        Ok(Redirect(return_to.into()))
    }

    /// Trades a finished login's code for a session; the code works once, for 60 seconds.
    pub async fn complete(&self, code: &str) -> Result<(Tokens, String, Vec<String>), SsoError> {
        let code = code.trim();
        let taken = if code.is_empty() || code.len() > 128 {
            None
        } else {
            self.cache
                .take(&code_key(code))
                .await
                .map_err(|e| SsoError::Unavailable(e.to_string()))?
        };
        let Some(finished) = taken.and_then(|b| serde_json::from_slice::<Finished>(&b).ok()) else {
            return Err(SsoError::Refused(
                "the sso_code is unknown, used or expired".into(),
            ));
        };
        let tokens = self
            .auth
            .open_sso_session(&finished.user_id, finished.amr.clone(), &finished.client)
            .await?;
        Ok((tokens, finished.user_id, finished.amr))
    }

    /// Home-realm discovery: the connection serving the email's domain, if any, and whether
    /// its enterprise refuses passwords. Every email of a domain gets the same answer, so it
    /// tells nobody whether a user exists.
    pub async fn discover(&self, email: &str) -> Result<Discovered, SsoError> {
        let email = email.trim().to_ascii_lowercase();
        let Some((_, domain)) = email.rsplit_once('@') else {
            return Err(SsoError::Invalid {
                field: "email".into(),
                message: "an email address".into(),
            });
        };
        let connection = connections::for_domain(&self.db, domain).await?;
        // The enterprise's answer, not the user's: it says nothing about who has an account.
        let sso_required = match &connection {
            Some(connection) => {
                self.auth
                    .accounts()
                    .enterprise_domains(&connection.enterprise_id)
                    .await
                    .map_err(|e| SsoError::Unavailable(e.to_string()))?
                    .sso_required
            }
            None => false,
        };
        Ok(Discovered {
            connection_id: connection.map(|c| c.id),
            sso_required,
        })
    }

    /// Records a refused SSO login with its reason (AU2).
    pub(crate) async fn audit_refusal(
        &self,
        connection: Option<&Connection>,
        reason: &str,
        client: &ClientInfo,
    ) {
        self.auth
            .audit(
                connection.map_or("", |c| c.enterprise_id.as_str()),
                "",
                "sso.login",
                "failure",
                client,
                serde_json::json!({
                    "reason": reason,
                    "connection_id": connection.map(|c| c.id.clone()),
                }),
            )
            .await;
    }
}

pub struct Discovered {
    pub connection_id: Option<String>,
    pub sso_required: bool,
}
