//! Logging in and staying logged in (I1–I5, I8): passwords with lockout and per-IP throttling,
//! challenges (2FA, 2FA enrolment, password change), sessions with their policy, refresh-token
//! rotation with reuse detection, introspection, step-up. Every attempt lands in the audit
//! outbox with its outcome and reason.

use crate::accounts::{Account, Accounts};
use crate::keys::{KeyRing, TokenSubject};
use crate::passwords::{self, Hasher};
use crate::secrets::Sealer;
use crate::sessions;
use crate::store::{audit_outbox, credential, password_history, recovery_code, session, totp};
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
    /// Failed passwords in a row that lock an account.
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChallengeState {
    user_id: String,
    kind: ChallengeKind,
    amr: Vec<String>,
    client: ClientInfo,
    attempts: u32,
    expires_at: DateTime<Utc>,
    /// An emailed one-time code: its hash and expiry (I3).
    #[serde(default)]
    email_code: Option<(String, DateTime<Utc>)>,
    #[serde(default)]
    codes_sent: u32,
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

    pub(crate) async fn audit(
        &self,
        enterprise_id: &str,
        actor: &str,
        action: &str,
        outcome: &str,
        client: &ClientInfo,
        details: serde_json::Value,
    ) {
        let row = audit_outbox::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            at: Set(Utc::now()),
            enterprise_id: Set(enterprise_id.to_owned()),
            actor: Set(actor.to_owned()),
            action: Set(action.to_owned()),
            target: Set(actor.to_owned()),
            outcome: Set(outcome.to_owned()),
            ip: Set(client.ip_text()),
            details: Set(details.to_string()),
            delivered_at: Set(None),
        };
        if let Err(error) = audit_outbox::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
        {
            tracing::error!(%error, action, "audit event could not be written");
        }
        tracing::info!(
            action,
            outcome,
            enterprise = enterprise_id,
            "identity audit"
        );
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

    // === login ===

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        let now = Utc::now();
        self.throttle(&client).await?;
        let account = self.account_by_email(email).await?;
        let credential = match &account {
            Some(account) => {
                credential::Entity::find_by_id(&account.user_id)
                    .one(&self.db)
                    .await?
            }
            None => None,
        };
        let (Some(account), Some(credential)) = (account, credential) else {
            self.hasher.verify_decoy(password).await;
            self.audit(
                "",
                "",
                "login",
                "failure",
                &client,
                serde_json::json!({"reason": "unknown email or no password set"}),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        };
        let matches = self
            .hasher
            .verify(password, &credential.password_hash)
            .await;
        let locked = credential.locked_until.is_some_and(|until| until > now);
        let refusal = if !account.active {
            Some("user disabled")
        } else if locked {
            Some("account locked")
        } else if !matches {
            Some("wrong password")
        } else {
            None
        };
        if let Some(reason) = refusal {
            if !matches && !locked {
                self.count_failure(&credential, now).await?;
            }
            self.audit(
                &account.enterprise_id,
                &account.user_id,
                "login",
                "failure",
                &client,
                serde_json::json!({"reason": reason}),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
        if credential.failed_attempts != 0 || credential.locked_until.is_some() {
            credential::Entity::update(credential::ActiveModel {
                user_id: Set(credential.user_id.clone()),
                failed_attempts: Set(0),
                locked_until: Set(None),
                ..Default::default()
            })
            .exec(&self.db)
            .await?;
        }
        if !account.network_allows(client.ip) {
            self.audit(
                &account.enterprise_id,
                &account.user_id,
                "login",
                "denied",
                &client,
                serde_json::json!({"reason": "address outside the network rules (I8)"}),
            )
            .await;
            return Err(AuthError::PermissionDenied(
                "logins from this network are not allowed",
            ));
        }
        let expired = account.password.max_age_days > 0
            && credential.password_set_at
                + Duration::days(i64::from(account.password.max_age_days))
                < now;
        if credential.must_change || expired {
            return self
                .challenge(
                    &account,
                    ChallengeKind::PasswordChange,
                    vec!["pwd".into()],
                    client,
                )
                .await;
        }
        self.after_password(&account, vec!["pwd".into()], client)
            .await
    }

    async fn count_failure(
        &self,
        credential: &credential::Model,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let failed = credential.failed_attempts + 1;
        let locked_until = (failed >= self.settings.lockout_threshold)
            .then(|| now + Duration::minutes(self.settings.lockout_minutes));
        credential::Entity::update(credential::ActiveModel {
            user_id: Set(credential.user_id.clone()),
            failed_attempts: Set(failed),
            locked_until: Set(locked_until.or(credential.locked_until)),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    async fn confirmed_totp(&self, user_id: &str) -> Result<Option<totp::Model>, AuthError> {
        Ok(totp::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .filter(|row| row.confirmed_at.is_some()))
    }

    /// After the password (and any password change): a second factor, its enrolment, or a session.
    async fn after_password(
        &self,
        account: &Account,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        if self.confirmed_totp(&account.user_id).await?.is_some() {
            return self
                .challenge(account, ChallengeKind::TwoFactor, amr, client)
                .await;
        }
        if account.two_factor_required {
            return self
                .challenge(account, ChallengeKind::TwoFactorEnrollment, amr, client)
                .await;
        }
        let tokens = self.open_session(account, amr, &client).await?;
        Ok(Step::Done {
            tokens,
            recovery_codes: Vec::new(),
        })
    }

    async fn challenge(
        &self,
        account: &Account,
        kind: ChallengeKind,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        let now = Utc::now();
        let otpauth_uri = match kind {
            ChallengeKind::TwoFactorEnrollment => Some(self.pending_totp(account).await?),
            _ => None,
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let state = ChallengeState {
            user_id: account.user_id.clone(),
            kind,
            amr,
            client,
            attempts: 0,
            expires_at: now + Duration::seconds(self.settings.challenge_seconds),
            email_code: None,
            codes_sent: 0,
        };
        self.put_challenge(&id, &state).await?;
        Ok(Step::Challenge(Challenge {
            id,
            kind,
            expires_at: state.expires_at,
            otpauth_uri,
        }))
    }

    async fn put_challenge(&self, id: &str, state: &ChallengeState) -> Result<(), AuthError> {
        let left = (state.expires_at - Utc::now()).num_milliseconds().max(1);
        let bytes = serde_json::to_vec(state).map_err(internal)?;
        self.cache
            .set(
                &challenge_key(id),
                &bytes,
                std::time::Duration::from_millis(u64::try_from(left).unwrap_or(1)),
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }

    /// A fresh unconfirmed TOTP secret for `account`, replacing any unconfirmed one.
    async fn pending_totp(&self, account: &Account) -> Result<String, AuthError> {
        let secret = otp::new_secret();
        let sealed = self
            .sealer
            .seal(&secret, &format!("totp:{}", account.user_id));
        totp::Entity::delete_by_id(&account.user_id)
            .exec(&self.db)
            .await?;
        totp::Entity::insert(totp::ActiveModel {
            user_id: Set(account.user_id.clone()),
            sealed_secret: Set(sealed),
            confirmed_at: Set(None),
            last_step: Set(None),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(otp::otpauth_uri(
            &secret,
            &self.settings.totp_issuer,
            &account.email,
        ))
    }

    fn open_secret(&self, row: &totp::Model) -> Result<Vec<u8>, AuthError> {
        self.sealer
            .open(&row.sealed_secret, &format!("totp:{}", row.user_id))
            .map_err(internal)
    }

    /// Checks a TOTP code against the user's factor (confirmed or pending) and spends its step.
    async fn spend_totp(&self, row: &totp::Model, code: &str) -> Result<bool, AuthError> {
        let secret = self.open_secret(row)?;
        let Some(step) = otp::verify(&secret, code, Utc::now().timestamp(), row.last_step) else {
            return Ok(false);
        };
        // Conditional on the step last seen, so two concurrent uses of one code cannot both win.
        let mut update = totp::Entity::update_many()
            .col_expr(
                totp::Column::LastStep,
                sea_orm::sea_query::Expr::value(step),
            )
            .filter(totp::Column::UserId.eq(&row.user_id));
        update = match row.last_step {
            Some(last) => update.filter(totp::Column::LastStep.eq(last)),
            None => update.filter(totp::Column::LastStep.is_null()),
        };
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    async fn spend_recovery_code(&self, user_id: &str, code: &str) -> Result<bool, AuthError> {
        let result = recovery_code::Entity::update_many()
            .col_expr(
                recovery_code::Column::UsedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(recovery_code::Column::CodeHash.eq(recovery_hash(user_id, code)))
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    async fn new_recovery_codes<C: ConnectionTrait>(
        db: &C,
        user_id: &str,
    ) -> Result<Vec<String>, AuthError> {
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .exec(db)
            .await?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        for code in &codes {
            recovery_code::Entity::insert(recovery_code::ActiveModel {
                code_hash: Set(recovery_hash(user_id, code)),
                user_id: Set(user_id.to_owned()),
                used_at: Set(None),
            })
            .exec_without_returning(db)
            .await?;
        }
        Ok(codes)
    }

    pub async fn complete_challenge(
        &self,
        id: &str,
        code: &str,
        new_password: &str,
    ) -> Result<Step, AuthError> {
        let bytes = self
            .cache
            .take(&challenge_key(id))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or(AuthError::Unauthenticated(
                "challenge unknown, used or expired",
            ))?;
        let mut state: ChallengeState = serde_json::from_slice(&bytes)
            .map_err(|_| AuthError::Unauthenticated("challenge unknown, used or expired"))?;
        if state.expires_at <= Utc::now() {
            return Err(AuthError::Unauthenticated(
                "challenge unknown, used or expired",
            ));
        }
        let account = self
            .account(&state.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::InvalidCredentials)?;
        match state.kind {
            ChallengeKind::PasswordChange => {
                if let Err(error) = self.set_password(&account, new_password, false).await {
                    self.retry(id, &mut state).await?;
                    return Err(error);
                }
                self.audit(
                    &account.enterprise_id,
                    &account.user_id,
                    "password.change",
                    "success",
                    &state.client,
                    serde_json::json!({"reason": "required at login"}),
                )
                .await;
                self.after_password(&account, state.amr.clone(), state.client.clone())
                    .await
            }
            ChallengeKind::TwoFactor => {
                let row = self
                    .confirmed_totp(&account.user_id)
                    .await?
                    .ok_or(AuthError::Unauthenticated("no second factor enrolled"))?;
                let emailed = state.email_code.as_ref().is_some_and(|(hash, until)| {
                    *until > Utc::now()
                        && *hash == sessions::digest(&format!("{}:{}", state.user_id, code.trim()))
                });
                let (ok, method) = if emailed {
                    (true, "email")
                } else if code.trim().len() == otp::DIGITS as usize {
                    (self.spend_totp(&row, code).await?, "otp")
                } else {
                    (
                        self.spend_recovery_code(&account.user_id, code).await?,
                        "recovery",
                    )
                };
                if !ok {
                    self.audit(
                        &account.enterprise_id,
                        &account.user_id,
                        "login.second_factor",
                        "failure",
                        &state.client,
                        serde_json::json!({"reason": "wrong, reused or expired code", "method": method}),
                    )
                    .await;
                    self.retry(id, &mut state).await?;
                    return Err(AuthError::Unauthenticated("wrong code"));
                }
                let mut amr = state.amr.clone();
                amr.push(method.to_owned());
                let tokens = self.open_session(&account, amr, &state.client).await?;
                Ok(Step::Done {
                    tokens,
                    recovery_codes: Vec::new(),
                })
            }
            ChallengeKind::TwoFactorEnrollment => {
                let row = totp::Entity::find_by_id(&account.user_id)
                    .one(&self.db)
                    .await?
                    .ok_or(AuthError::Unauthenticated(
                        "enrolment expired; log in again",
                    ))?;
                if !self.spend_totp(&row, code).await? {
                    self.retry(id, &mut state).await?;
                    return Err(AuthError::Unauthenticated("wrong code"));
                }
                let recovery_codes = self.confirm_totp(&account.user_id).await?;
                let mut amr = state.amr.clone();
                amr.push("otp".to_owned());
                let tokens = self.open_session(&account, amr, &state.client).await?;
                Ok(Step::Done {
                    tokens,
                    recovery_codes,
                })
            }
        }
    }

    /// Emails a one-time code for a 2FA challenge (I3): six digits, kept only as a hash in the
    /// challenge, valid 10 minutes and once (the challenge is spent when answered), at most three
    /// sends per challenge. Returns the masked address and the code's expiry.
    pub async fn send_challenge_code(
        &self,
        id: &str,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        const UNKNOWN: AuthError = AuthError::Unauthenticated("challenge unknown, used or expired");
        let bytes = self
            .cache
            .take(&challenge_key(id))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or(UNKNOWN)?;
        let mut state: ChallengeState = serde_json::from_slice(&bytes).map_err(|_| UNKNOWN)?;
        if state.expires_at <= Utc::now() {
            return Err(UNKNOWN);
        }
        if state.kind != ChallengeKind::TwoFactor {
            self.put_challenge(id, &state).await?;
            return Err(AuthError::Precondition {
                reason: "NOT_A_TWO_FACTOR_CHALLENGE",
                message: "codes are sent only for 2FA challenges".to_owned(),
            });
        }
        if state.codes_sent >= 3 {
            self.put_challenge(id, &state).await?;
            return Err(AuthError::Throttled);
        }
        let account = self
            .account(&state.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(UNKNOWN)?;
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        let until = Utc::now() + Duration::minutes(10);
        state.email_code = Some((
            sessions::digest(&format!("{}:{code}", state.user_id)),
            until,
        ));
        state.codes_sent += 1;
        // The challenge outlives the code if need be, so the code's ten minutes hold.
        state.expires_at = state.expires_at.max(until);
        self.put_challenge(id, &state).await?;
        crate::store::notification_outbox::Entity::insert(
            crate::store::notification_outbox::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                enterprise_id: Set(account.enterprise_id.clone()),
                topic: Set("identity.code".to_owned()),
                recipient: Set(account.email.clone()),
                payload: Set(serde_json::json!({"code": code}).to_string()),
                created_at: Set(Utc::now()),
                claimed_until: Set(None),
                delivered_at: Set(None),
            },
        )
        .exec_without_returning(&self.db)
        .await?;
        let masked = match account.email.split_once('@') {
            Some((local, domain)) => format!(
                "{}***@{domain}",
                local.chars().next().map(String::from).unwrap_or_default()
            ),
            None => "***".to_owned(),
        };
        Ok((masked, until))
    }

    /// Puts a challenge back after a wrong answer, unless it has had its attempts.
    async fn retry(&self, id: &str, state: &mut ChallengeState) -> Result<(), AuthError> {
        state.attempts += 1;
        if state.attempts < self.settings.challenge_attempts {
            self.put_challenge(id, state).await?;
        }
        Ok(())
    }

    async fn confirm_totp(&self, user_id: &str) -> Result<Vec<String>, AuthError> {
        let txn = self.db.begin().await?;
        totp::Entity::update_many()
            .col_expr(
                totp::Column::ConfirmedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(totp::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let codes = Self::new_recovery_codes(&txn, user_id).await?;
        txn.commit().await?;
        Ok(codes)
    }

    // === sessions ===

    async fn open_session(
        &self,
        account: &Account,
        amr: Vec<String>,
        client: &ClientInfo,
    ) -> Result<Tokens, AuthError> {
        let now = Utc::now();
        let rules = &account.session;
        let alive = sessions::alive(&self.db, &account.user_id, now).await?;
        let limit = usize::try_from(rules.max_concurrent_sessions).unwrap_or(usize::MAX);
        let mut ending = Vec::new();
        if limit > 0 && alive.len() >= limit {
            if !rules.end_oldest_at_limit {
                self.audit(
                    &account.enterprise_id,
                    &account.user_id,
                    "login",
                    "refused",
                    client,
                    serde_json::json!({"reason": "concurrent session limit"}),
                )
                .await;
                return Err(AuthError::Precondition {
                    reason: "SESSION_LIMIT",
                    message: format!(
                        "at most {limit} sessions at a time; end one to start another"
                    ),
                });
            }
            ending = alive[..=alive.len() - limit]
                .iter()
                .map(|row| row.id.clone())
                .collect();
        }
        let id = uuid::Uuid::now_v7().to_string();
        let txn = self.db.begin().await?;
        sessions::end(&txn, &ending, "session limit: oldest ended", now).await?;
        session::Entity::insert(session::ActiveModel {
            id: Set(id.clone()),
            user_id: Set(account.user_id.clone()),
            enterprise_id: Set(account.enterprise_id.clone()),
            kind: Set(account.kind.clone()),
            device_id: Set(client.device_id.clone()),
            user_agent: Set(client.user_agent.chars().take(512).collect()),
            ip: Set(client.ip_text()),
            amr: Set(serde_json::to_string(&amr).map_err(internal)?),
            auth_time: Set(now),
            created_at: Set(now),
            last_seen_at: Set(now),
            idle_timeout_seconds: Set(i64::from(rules.idle_timeout_minutes) * 60),
            expires_at: Set(now + Duration::hours(i64::from(rules.absolute_lifetime_hours))),
            ended_at: Set(None),
            end_reason: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        let refresh_token = sessions::issue_refresh(&txn, &id, now).await?;
        txn.commit().await?;
        self.accounts.record_login(&account.user_id, now).await;
        self.audit(
            &account.enterprise_id,
            &account.user_id,
            "login",
            "success",
            client,
            serde_json::json!({"session_id": id, "amr": amr, "ended_for_limit": ending}),
        )
        .await;
        let subject = TokenSubject {
            user_id: account.user_id.clone(),
            enterprise_id: account.enterprise_id.clone(),
            session_id: id.clone(),
            kind: account.kind.clone(),
            amr,
            auth_time: now,
        };
        let access_token = self
            .keys
            .issue(&subject, now, self.access_ttl)
            .await
            .map_err(internal)?;
        Ok(Tokens {
            access_token,
            access_expires_at: now + self.access_ttl,
            refresh_token,
            session_id: id,
        })
    }

    async fn end_with_audit(
        &self,
        row: &session::Model,
        reason: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        sessions::end(&self.db, std::slice::from_ref(&row.id), reason, Utc::now()).await?;
        self.audit(
            &row.enterprise_id,
            &row.user_id,
            "session.end",
            "success",
            client,
            serde_json::json!({"session_id": row.id, "reason": reason}),
        )
        .await;
        Ok(())
    }

    pub async fn refresh(&self, token: &str, client: ClientInfo) -> Result<Tokens, AuthError> {
        let now = Utc::now();
        let hash = sessions::digest(token.trim());
        let record = crate::store::refresh_token::Entity::find_by_id(&hash)
            .one(&self.db)
            .await?
            .ok_or(AuthError::Unauthenticated("refresh token not recognised"))?;
        let row = sessions::get(&self.db, &record.session_id)
            .await?
            .ok_or(AuthError::Unauthenticated("refresh token not recognised"))?;
        if record.used_at.is_some() {
            self.end_with_audit(&row, "refresh token reused", &client)
                .await?;
            return Err(AuthError::Unauthenticated(
                "refresh token already used; the session has been ended",
            ));
        }
        if let Some(reason) = sessions::dead_reason(&row, now) {
            if row.ended_at.is_none() {
                sessions::end(&self.db, std::slice::from_ref(&row.id), reason, now).await?;
            }
            return Err(AuthError::Unauthenticated("session ended"));
        }
        let account = self.account(&row.user_id).await?;
        let Some(account) = account.filter(|a| a.active) else {
            self.end_with_audit(&row, "user disabled or deleted", &client)
                .await?;
            return Err(AuthError::Unauthenticated("session ended"));
        };
        if account.session.bind_to_ip && client.ip_text() != row.ip {
            self.end_with_audit(&row, "used from another address", &client)
                .await?;
            return Err(AuthError::Unauthenticated("session ended"));
        }
        if account.session.bind_to_device && client.device_id != row.device_id {
            self.end_with_audit(&row, "used from another device", &client)
                .await?;
            return Err(AuthError::Unauthenticated("session ended"));
        }
        let txn = self.db.begin().await?;
        if !sessions::spend(&txn, &hash, now).await? {
            txn.rollback().await?;
            self.end_with_audit(&row, "refresh token reused", &client)
                .await?;
            return Err(AuthError::Unauthenticated(
                "refresh token already used; the session has been ended",
            ));
        }
        session::Entity::update(session::ActiveModel {
            id: Set(row.id.clone()),
            last_seen_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let refresh_token = sessions::issue_refresh(&txn, &row.id, now).await?;
        txn.commit().await?;
        let amr: Vec<String> = serde_json::from_str(&row.amr).unwrap_or_default();
        let subject = TokenSubject {
            user_id: row.user_id.clone(),
            enterprise_id: row.enterprise_id.clone(),
            session_id: row.id.clone(),
            kind: account.kind.clone(),
            amr,
            auth_time: row.auth_time,
        };
        let access_token = self
            .keys
            .issue(&subject, now, self.access_ttl)
            .await
            .map_err(internal)?;
        Ok(Tokens {
            access_token,
            access_expires_at: now + self.access_ttl,
            refresh_token,
            session_id: row.id,
        })
    }

    /// Whether the token verifies and its session is alive (and its user still active).
    pub async fn introspect(
        &self,
        verifier: &TokenVerifier,
        token: &str,
    ) -> Result<Option<Introspection>, AuthError> {
        let Ok(caller) = verifier.verify(token.trim()).await else {
            return Ok(None);
        };
        let Some(row) = sessions::get(&self.db, &caller.session_id).await? else {
            return Ok(None);
        };
        if row.user_id != caller.user_id || sessions::dead_reason(&row, Utc::now()).is_some() {
            return Ok(None);
        }
        if !self
            .account(&caller.user_id)
            .await?
            .is_some_and(|account| account.active)
        {
            return Ok(None);
        }
        // The signature was verified above; this only reads the expiry back out.
        let expires_at = token
            .trim()
            .split('.')
            .nth(1)
            .and_then(|payload| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|claims| claims.get("exp").and_then(serde_json::Value::as_i64))
            .unwrap_or(0);
        Ok(Some(Introspection { caller, expires_at }))
    }

    /// The caller's session, alive.
    pub(crate) async fn current_session(
        &self,
        caller: &Caller,
    ) -> Result<session::Model, AuthError> {
        let row = sessions::get(&self.db, &caller.session_id)
            .await?
            .filter(|row| row.user_id == caller.user_id)
            .ok_or(AuthError::Unauthenticated("session ended"))?;
        if sessions::dead_reason(&row, Utc::now()).is_some() {
            return Err(AuthError::Unauthenticated("session ended"));
        }
        Ok(row)
    }

    /// Enterprise admins act on users of their own enterprise; anyone on themselves.
    pub(crate) async fn reachable(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<Account, AuthError> {
        let account = self
            .account(user_id)
            .await?
            .filter(|a| a.enterprise_id == caller.enterprise_id)
            .ok_or(AuthError::NotFound("user"))?;
        if caller.user_id != user_id && caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins act on other users",
            ));
        }
        Ok(account)
    }

    pub async fn list_sessions(
        &self,
        caller: &Caller,
        user_id: Option<&str>,
    ) -> Result<Vec<session::Model>, AuthError> {
        self.current_session(caller).await?;
        let user_id = user_id.unwrap_or(&caller.user_id);
        self.reachable(caller, user_id).await?;
        Ok(sessions::alive(&self.db, user_id, Utc::now()).await?)
    }

    pub async fn end_session(&self, caller: &Caller, session_id: &str) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        let row = sessions::get(&self.db, session_id)
            .await?
            .filter(|row| row.user_id == caller.user_id && row.ended_at.is_none())
            .ok_or(AuthError::NotFound("session"))?;
        self.end_with_audit(&row, "ended by the user", &ClientInfo::default())
            .await
    }

    /// Ends the caller's sessions, all or all but the current one.
    pub async fn end_own_sessions(
        &self,
        caller: &Caller,
        keep_current: bool,
    ) -> Result<u64, AuthError> {
        self.current_session(caller).await?;
        let ids: Vec<String> = sessions::alive(&self.db, &caller.user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .filter(|id| !keep_current || *id != caller.session_id)
            .collect();
        self.end_many(caller, &caller.user_id, &ids, "ended by the user")
            .await
    }

    pub async fn end_user_sessions(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<u64, AuthError> {
        self.current_session(caller).await?;
        if caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins end other users' sessions",
            ));
        }
        self.reachable(caller, user_id).await?;
        let ids: Vec<String> = sessions::alive(&self.db, user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        self.end_many(caller, user_id, &ids, "ended by an admin")
            .await
    }

    async fn end_many(
        &self,
        caller: &Caller,
        user_id: &str,
        ids: &[String],
        reason: &str,
    ) -> Result<u64, AuthError> {
        let ended = sessions::end(&self.db, ids, reason, Utc::now()).await?;
        self.audit(
            &caller.enterprise_id,
            &caller.user_id,
            "session.end",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"user_id": user_id, "sessions": ids, "reason": reason}),
        )
        .await;
        Ok(ended)
    }

    /// D14: ends the open sessions of users who are no longer active (disabled, deleted or
    /// gone), of one enterprise or of all; returns how many ended. Runs when directory announces
    /// a change and on a timer, so a disabled user's sessions end even while unused, and do not
    /// come back if the user is enabled again.
    pub async fn end_sessions_of_inactive_users(
        &self,
        enterprise_id: Option<&str>,
    ) -> Result<u64, AuthError> {
        let now = Utc::now();
        let mut query = session::Entity::find()
            .filter(session::Column::EndedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now));
        if let Some(enterprise_id) = enterprise_id {
            query = query.filter(session::Column::EnterpriseId.eq(enterprise_id));
        }
        let open = query.all(&self.db).await?;
        let mut users: Vec<&str> = open.iter().map(|row| row.user_id.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let mut ended = 0;
        for user_id in users {
            if self.account(user_id).await?.is_some_and(|a| a.active) {
                continue;
            }
            let ids: Vec<String> = open
                .iter()
                .filter(|row| row.user_id == user_id)
                .map(|row| row.id.clone())
                .collect();
            ended += sessions::end(&self.db, &ids, "user disabled or deleted", now).await?;
            let enterprise = open
                .iter()
                .find(|row| row.user_id == user_id)
                .map(|row| row.enterprise_id.clone())
                .unwrap_or_default();
            self.audit(
                &enterprise,
                user_id,
                "session.end",
                "success",
                &ClientInfo::default(),
                serde_json::json!({"sessions": ids, "reason": "user disabled or deleted (D14)"}),
            )
            .await;
        }
        Ok(ended)
    }

    // === passwords ===

    /// Sets `account`'s password after checking the policy and history.
    pub(crate) async fn set_password(
        &self,
        account: &Account,
        password: &str,
        must_change: bool,
    ) -> Result<(), AuthError> {
        let problems = passwords::problems(password, &account.password, &account.email);
        if !problems.is_empty() {
            return Err(AuthError::Invalid {
                field: "new_password",
                message: format!("the password needs {}", problems.join(", ")),
            });
        }
        let history = password_history::Entity::find()
            .filter(password_history::Column::UserId.eq(&account.user_id))
            .order_by_desc(password_history::Column::SetAt)
            .all(&self.db)
            .await?;
        let current = credential::Entity::find_by_id(&account.user_id)
            .one(&self.db)
            .await?;
        let mut recent: Vec<String> = current.iter().map(|c| c.password_hash.clone()).collect();
        recent.extend(
            history
                .iter()
                .take(usize::from(account.password.history))
                .map(|h| h.password_hash.clone()),
        );
        if account.password.history > 0 {
            for hash in &recent {
                if self.hasher.verify(password, hash).await {
                    return Err(AuthError::Invalid {
                        field: "new_password",
                        message: format!(
                            "one of the last {} passwords; choose another",
                            account.password.history
                        ),
                    });
                }
            }
        }
        let hash = self.hasher.hash(password).await.map_err(internal)?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        if let Some(current) = &current {
            password_history::Entity::insert(password_history::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                user_id: Set(account.user_id.clone()),
                password_hash: Set(current.password_hash.clone()),
                set_at: Set(current.password_set_at),
            })
            .exec_without_returning(&txn)
            .await?;
            credential::Entity::update(credential::ActiveModel {
                user_id: Set(account.user_id.clone()),
                password_hash: Set(hash),
                password_set_at: Set(now),
                must_change: Set(must_change),
                failed_attempts: Set(0),
                locked_until: Set(None),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
        } else {
            credential::Entity::insert(credential::ActiveModel {
                user_id: Set(account.user_id.clone()),
                enterprise_id: Set(account.enterprise_id.clone()),
                password_hash: Set(hash),
                password_set_at: Set(now),
                must_change: Set(must_change),
                failed_attempts: Set(0),
                locked_until: Set(None),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new_password: &str,
    ) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        let account = self
            .account(&caller.user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        let credential = credential::Entity::find_by_id(&caller.user_id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::Precondition {
                reason: "NO_PASSWORD",
                message: "no password is set".to_owned(),
            })?;
        if !self.hasher.verify(current, &credential.password_hash).await {
            self.count_failure(&credential, Utc::now()).await?;
            return Err(AuthError::PermissionDenied("the current password is wrong"));
        }
        self.set_password(&account, new_password, false).await?;
        // Other sessions were opened with the old password.
        let others: Vec<String> = sessions::alive(&self.db, &caller.user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .filter(|id| *id != caller.session_id)
            .collect();
        self.end_many(caller, &caller.user_id, &others, "password changed")
            .await?;
        Ok(())
    }

    /// An admin's temporary password (D13): changed at the next login; open sessions end.
    pub async fn set_temporary_password(
        &self,
        caller: &Caller,
        user_id: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        if caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins set temporary passwords",
            ));
        }
        let account = self.reachable(caller, user_id).await?;
        self.set_password(&account, password, true).await?;
        let ids: Vec<String> = sessions::alive(&self.db, user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        self.end_many(caller, user_id, &ids, "temporary password set")
            .await?;
        Ok(())
    }

    /// Seeds a password directly (bootstrap and demo data); must be changed at first login
    /// when `must_change`.
    pub async fn seed_password(
        &self,
        user_id: &str,
        password: &str,
        must_change: bool,
    ) -> Result<(), AuthError> {
        let account = self
            .account(user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.set_password(&account, password, must_change).await
    }

    /// Seeds a password only for a user who has none (demo data, run on every start).
    pub async fn seed_password_if_absent(
        &self,
        user_id: &str,
        password: &str,
    ) -> Result<bool, AuthError> {
        if credential::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        self.seed_password(user_id, password, false).await?;
        Ok(true)
    }

    pub async fn unlock_user(&self, caller: &Caller, user_id: &str) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        if caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins unlock users",
            ));
        }
        let account = self.reachable(caller, user_id).await?;
        credential::Entity::update_many()
            .col_expr(
                credential::Column::FailedAttempts,
                sea_orm::sea_query::Expr::value(0),
            )
            .col_expr(
                credential::Column::LockedUntil,
                sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(credential::Column::UserId.eq(user_id))
            .exec(&self.db)
            .await?;
        self.audit(
            &account.enterprise_id,
            &caller.user_id,
            "user.unlock",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"user_id": user_id}),
        )
        .await;
        Ok(())
    }

    /// Step-up (I4): the password (and a code when 2FA is enrolled) again; a new access token
    /// for the same session with a fresh `auth_time`.
    pub async fn reauthenticate(
        &self,
        caller: &Caller,
        password: &str,
        code: &str,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        let row = self.current_session(caller).await?;
        let account = self
            .account(&caller.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::Unauthenticated("session ended"))?;
        let credential = credential::Entity::find_by_id(&caller.user_id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::PermissionDenied("no password is set"))?;
        if credential
            .locked_until
            .is_some_and(|until| until > Utc::now())
        {
            return Err(AuthError::PermissionDenied("the account is locked"));
        }
        if !self
            .hasher
            .verify(password, &credential.password_hash)
            .await
        {
            self.count_failure(&credential, Utc::now()).await?;
            return Err(AuthError::PermissionDenied("wrong password"));
        }
        let mut amr = vec!["pwd".to_owned()];
        if let Some(factor) = self.confirmed_totp(&caller.user_id).await? {
            if !self.spend_totp(&factor, code).await? {
                return Err(AuthError::PermissionDenied("wrong or missing code"));
            }
            amr.push("otp".to_owned());
        }
        let now = Utc::now();
        session::Entity::update(session::ActiveModel {
            id: Set(row.id.clone()),
            auth_time: Set(now),
            amr: Set(serde_json::to_string(&amr).map_err(internal)?),
            last_seen_at: Set(now),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        let subject = TokenSubject {
            user_id: account.user_id.clone(),
            enterprise_id: account.enterprise_id.clone(),
            session_id: row.id,
            kind: account.kind.clone(),
            amr,
            auth_time: now,
        };
        let token = self
            .keys
            .issue(&subject, now, self.access_ttl)
            .await
            .map_err(internal)?;
        Ok((token, now + self.access_ttl))
    }

    // === 2FA management ===

    pub async fn start_totp_enrollment(&self, caller: &Caller) -> Result<String, AuthError> {
        self.current_session(caller).await?;
        if self.confirmed_totp(&caller.user_id).await?.is_some() {
            return Err(AuthError::Precondition {
                reason: "ALREADY_ENROLLED",
                message: "TOTP is enrolled already".to_owned(),
            });
        }
        let account = self
            .account(&caller.user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.pending_totp(&account).await
    }

    pub async fn confirm_totp_enrollment(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        self.current_session(caller).await?;
        let row = totp::Entity::find_by_id(&caller.user_id)
            .one(&self.db)
            .await?
            .filter(|row| row.confirmed_at.is_none())
            .ok_or(AuthError::Precondition {
                reason: "NO_PENDING_ENROLLMENT",
                message: "start an enrolment first".to_owned(),
            })?;
        if !self.spend_totp(&row, code).await? {
            return Err(AuthError::Invalid {
                field: "code",
                message: "wrong or expired code".to_owned(),
            });
        }
        self.confirm_totp(&caller.user_id).await
    }

    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
    ) -> Result<Vec<String>, AuthError> {
        self.current_session(caller).await?;
        if Utc::now().timestamp() - caller.auth_time > 300 {
            return Err(AuthError::Precondition {
                reason: "REAUTHENTICATION_REQUIRED",
                message: "authenticate again (Reauthenticate) within 5 minutes first".to_owned(),
            });
        }
        if self.confirmed_totp(&caller.user_id).await?.is_none() {
            return Err(AuthError::Precondition {
                reason: "NOT_ENROLLED",
                message: "no second factor is enrolled".to_owned(),
            });
        }
        Self::new_recovery_codes(&self.db, &caller.user_id).await
    }
}
