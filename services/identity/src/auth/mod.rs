//! Logging in and staying logged in (I1–I5, I8): passwords with lockout and per-IP throttling,
//! challenges (2FA, 2FA enrolment, password change), sessions with their policy, refresh-token
//! rotation with reuse detection, introspection, step-up. Every attempt lands in the audit
//! outbox with its outcome and reason.

mod credentials;
mod factors;
mod login;
mod passkeys;
mod phone;
mod session_cache;
mod session_ops;

pub use passkeys::PasskeyInfo;

use crate::accounts::{Account, Accounts};
use crate::keys::{KeyRing, TokenSubject};
use crate::passwords::{self, Hasher};
use crate::secrets::Sealer;
use crate::sessions;
use crate::store::{
    audit_outbox, credential, passkey, password_history, recovery_code, session, sms_factor, totp,
};
use crate::totp as otp;
use chrono::{DateTime, Duration, Utc};
use praxis_cache::Cache;
use praxis_runtime::{Caller, TokenVerifier};
use rand::Rng;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// Failed passwords in a row that lock an account, where the enterprise policy does not say.
    pub lockout_threshold: i32,
    pub lockout_minutes: i64,
    /// Login attempts per client IP per minute before further ones are refused.
    pub attempts_per_ip_per_minute: i64,
    /// Wrong codes a challenge tolerates before it is spent.
    pub challenge_attempts: u32,
    pub challenge_seconds: i64,
    /// Take the client address from `x-forwarded-for` (behind a trusted proxy) rather than from
    /// the connection.
    pub trust_forwarded_for: bool,
    /// The issuer authenticator apps show.
    pub totp_issuer: String,
    /// Password reset links.
    pub reset: crate::resets::ResetSettings,
    /// Passkeys (WebAuthn): who the relying party is.
    pub webauthn: WebauthnSettings,
}

/// The WebAuthn relying party: passkeys are bound to `rp_id` (a registrable domain) and
/// accepted only from `origins` (the web apps that log people in).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebauthnSettings {
    pub rp_id: String,
    pub rp_name: String,
    pub origins: Vec<String>,
    /// Any port of those origins (development on localhost).
    pub allow_any_port: bool,
}

impl Default for WebauthnSettings {
    fn default() -> Self {
        Self {
            rp_id: "localhost".to_owned(),
            rp_name: "Praxis".to_owned(),
            origins: vec!["http://localhost".to_owned()],
            allow_any_port: true,
        }
    }
}

impl WebauthnSettings {
    fn build(&self) -> Result<webauthn_rs::Webauthn, String> {
        let mut origins = self.origins.iter().map(|origin| {
            webauthn_rs::prelude::Url::parse(origin)
                .map_err(|e| format!("webauthn.origins {origin:?}: {e}"))
        });
        let first = origins
            .next()
            .ok_or("webauthn.origins: at least one origin")??;
        let mut builder = webauthn_rs::WebauthnBuilder::new(&self.rp_id, &first)
            .map_err(|e| format!("webauthn: {e}"))?
            .rp_name(&self.rp_name)
            .allow_any_port(self.allow_any_port);
        for origin in origins {
            builder = builder.append_allowed_origin(&origin?);
        }
        builder.build().map_err(|e| format!("webauthn: {e}"))
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            lockout_threshold: 5,
            lockout_minutes: 15,
            attempts_per_ip_per_minute: 30,
            challenge_attempts: 5,
            challenge_seconds: 300,
            trust_forwarded_for: false,
            totp_issuer: "Praxis".to_owned(),
            reset: crate::resets::ResetSettings::default(),
            webauthn: WebauthnSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Unknown email, wrong password, locked or disabled account: one answer for all.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("too many attempts; try again later")]
    Throttled,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{message}")]
    Precondition {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<DbErr> for AuthError {
    fn from(error: DbErr) -> Self {
        AuthError::Internal(format!("identity store: {error}"))
    }
}

fn internal(error: impl std::fmt::Display) -> AuthError {
    AuthError::Internal(error.to_string())
}

/// Where a request comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientInfo {
    pub device_id: String,
    pub user_agent: String,
    pub ip: Option<IpAddr>,
}

impl ClientInfo {
    fn ip_text(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeKind {
    TwoFactor,
    TwoFactorEnrollment,
    PasswordChange,
    /// A second factor for `Reauthenticate` (I4), for the session it names.
    StepUp,
}

/// Where a step-up stands: done (a token with a fresh `auth_time`) or waiting for a factor.
#[derive(Debug, Clone)]
pub enum StepUp {
    Done(String, DateTime<Utc>),
    Challenge(Challenge),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChallengeState {
    user_id: String,
    kind: ChallengeKind,
    amr: Vec<String>,
    client: ClientInfo,
    attempts: u32,
    expires_at: DateTime<Utc>,
    /// What answers this challenge (`Method`s), fixed when it is issued.
    #[serde(default)]
    methods: Vec<Method>,
    /// A one-time code sent by email or SMS: its hash and expiry (I3).
    #[serde(default)]
    email_code: Option<(String, DateTime<Utc>)>,
    /// Which channel the code went by.
    #[serde(default)]
    code_method: Option<Method>,
    #[serde(default)]
    codes_sent: u32,
    /// The WebAuthn ceremony waiting for a passkey's answer.
    #[serde(default)]
    passkey: Option<webauthn_rs::prelude::PasskeyAuthentication>,
    /// For a step-up: the session it refreshes.
    #[serde(default)]
    session_id: Option<String>,
}

/// A way to answer a second-factor challenge; its name is what `amr` says after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Otp,
    Recovery,
    Email,
    Sms,
    Passkey,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Otp => "otp",
            Method::Recovery => "recovery",
            Method::Email => "email",
            Method::Sms => "sms",
            Method::Passkey => "passkey",
        }
    }
}

/// An audit event identity records (AU2). Changes write theirs inside their own transaction, so
/// a change is never committed without its event.
pub(crate) struct AuditNote {
    enterprise_id: String,
    actor: String,
    target: String,
    action: String,
    outcome: String,
    client: ClientInfo,
    details: serde_json::Value,
}

impl AuditNote {
    /// An event about the actor themselves (their login, their password).
    pub(crate) fn by(
        enterprise_id: &str,
        actor: &str,
        action: &str,
        outcome: &str,
        client: &ClientInfo,
        details: serde_json::Value,
    ) -> Self {
        Self {
            enterprise_id: enterprise_id.to_owned(),
            actor: actor.to_owned(),
            target: actor.to_owned(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            client: client.clone(),
            details,
        }
    }

    /// The same event about another user (an admin's action).
    pub(crate) fn on(mut self, target: &str) -> Self {
        self.target = target.to_owned();
        self
    }

    pub(crate) async fn write<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        audit_outbox::Entity::insert(audit_outbox::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            at: Set(Utc::now()),
            enterprise_id: Set(self.enterprise_id.clone()),
            actor: Set(self.actor.clone()),
            action: Set(self.action.clone()),
            target: Set(self.target.clone()),
            outcome: Set(self.outcome.clone()),
            ip: Set(self.client.ip_text()),
            details: Set(self.details.to_string()),
            delivered_at: Set(None),
            user_agent: Set(self.client.user_agent.chars().take(512).collect()),
            trace_id: Set(praxis_runtime::request_context::current_trace_id()),
            refused: Set(String::new()),
        })
        .exec_without_returning(db)
        .await?;
        tracing::info!(
            action = %self.action,
            outcome = %self.outcome,
            enterprise = %self.enterprise_id,
            "identity audit"
        );
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub session_id: String,
}

#[derive(Debug, Clone)]
pub struct Challenge {
    pub id: String,
    pub kind: ChallengeKind,
    pub expires_at: DateTime<Utc>,
    pub otpauth_uri: Option<String>,
    pub methods: Vec<Method>,
    /// For a passkey answer: `PublicKeyCredentialRequestOptions` as WebAuthn JSON.
    pub passkey_request: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Done {
        tokens: Tokens,
        recovery_codes: Vec<String>,
    },
    Challenge(Challenge),
}

#[derive(Debug, Clone)]
pub struct Introspection {
    pub caller: Caller,
    pub expires_at: i64,
}

pub struct Authenticator {
    db: DatabaseConnection,
    keys: KeyRing,
    accounts: Arc<dyn Accounts>,
    cache: Arc<dyn Cache>,
    sealer: Sealer,
    hasher: Hasher,
    settings: AuthSettings,
    access_ttl: Duration,
    webauthn: webauthn_rs::Webauthn,
}

const RECOVERY_CODES: usize = 10;

fn challenge_key(id: &str) -> String {
    format!("praxis:identity:challenge:{id}")
}

fn recovery_hash(user_id: &str, code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    sessions::digest(&format!("{user_id}:{normalized}"))
}

fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let mut pick = || {
        (0..5)
            .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
            .collect::<String>()
    };
    format!("{}-{}", pick(), pick())
}

pub struct AuthParts {
    pub db: DatabaseConnection,
    pub keys: KeyRing,
    pub accounts: Arc<dyn Accounts>,
    pub cache: Arc<dyn Cache>,
    pub sealer: Sealer,
    pub settings: AuthSettings,
    pub access_ttl: Duration,
}

impl Authenticator {
    pub fn new(parts: AuthParts) -> Result<Self, AuthError> {
        Ok(Self {
            db: parts.db,
            keys: parts.keys,
            accounts: parts.accounts,
            cache: parts.cache,
            sealer: parts.sealer,
            hasher: Hasher::new().map_err(internal)?,
            webauthn: parts
                .settings
                .webauthn
                .build()
                .map_err(AuthError::Internal)?,
            settings: parts.settings,
            access_ttl: parts.access_ttl,
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub(crate) fn accounts(&self) -> &dyn Accounts {
        self.accounts.as_ref()
    }

    /// Refuses a client address that has made too many attempts this minute.
    pub(crate) async fn throttle(&self, client: &ClientInfo) -> Result<(), AuthError> {
        let Some(ip) = client.ip else {
            return Ok(());
        };
        let attempts = self
            .cache
            .increment(
                &format!("praxis:identity:attempts:ip:{ip}"),
                std::time::Duration::from_secs(60),
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        if attempts > self.settings.attempts_per_ip_per_minute {
            self.audit(
                "",
                "",
                "throttle",
                "refused",
                client,
                serde_json::json!({"reason": "too many attempts from this address"}),
            )
            .await;
            return Err(AuthError::Throttled);
        }
        Ok(())
    }

    /// Records an attempt (a login, a refused code): nothing else is written with it, so a
    /// failure to record is logged rather than failing the answer.
    pub(crate) async fn audit(
        &self,
        enterprise_id: &str,
        actor: &str,
        action: &str,
        outcome: &str,
        client: &ClientInfo,
        details: serde_json::Value,
    ) {
        let note = AuditNote::by(enterprise_id, actor, action, outcome, client, details);
        if let Err(error) = note.write(&self.db).await {
            tracing::error!(%error, action, "audit event could not be written");
        }
    }

    pub(crate) async fn account_by_email(&self, email: &str) -> Result<Option<Account>, AuthError> {
        self.accounts
            .by_email(email)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }

    pub(crate) async fn account(&self, user_id: &str) -> Result<Option<Account>, AuthError> {
        self.accounts
            .by_id(user_id)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }
}
