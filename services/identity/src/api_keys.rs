//! API keys (I7): `prx_<prefix>_<secret>`, shown once and kept as a SHA-256, found by their
//! public prefix. Every call made with one is checked here: revoked, expired or past a rotation's
//! overlap is refused at once, the principal must still be active, and a token bucket in the
//! shared cache holds each key to its rate across every replica. Each use is counted.

use crate::accounts::Accounts;
use crate::auth::{AuditNote, ClientInfo};
use crate::store::api_key;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use praxis_cache::Cache;
use praxis_runtime::Caller;
use praxis_runtime::auth::{API_KEY_PREFIX, ApiKeyChecker, ApiKeyRefusal};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub const DEFAULT_RATE_PER_MINUTE: i32 = 600;
const MAX_RATE_PER_MINUTE: i32 = 100_000;
const MAX_LIFETIME_DAYS: i64 = 366;
pub const DEFAULT_OVERLAP_SECONDS: i32 = 3600;
const MAX_OVERLAP_SECONDS: i32 = 7 * 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("invalid request: {0:?}")]
    Invalid(Vec<(String, String)>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{message}")]
    Precondition {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<DbErr> for ApiKeyError {
    fn from(error: DbErr) -> Self {
        ApiKeyError::Internal(format!("identity store: {error}"))
    }
}

/// A new key: its record and the key itself, which is never shown again.
pub struct Issued {
    pub key: api_key::Model,
    pub secret: String,
}

/// What a new key is for.
pub struct NewKey {
    pub principal_id: String,
    pub display_name: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_per_minute: i32,
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fresh key: (public prefix, the whole key).
fn new_key() -> (String, String) {
    let mut prefix = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut prefix);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let prefix = data_encoding::BASE32_NOPAD
        .encode(&prefix)
        .to_ascii_lowercase();
    let key = format!(
        "{API_KEY_PREFIX}{prefix}_{}",
        URL_SAFE_NO_PAD.encode(secret)
    );
    (prefix, key)
}

/// The prefix of a key as presented, if it has the shape of one.
fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 13 && !secret.is_empty() && key.len() < 128).then_some(prefix)
}

pub fn scopes_of(key: &api_key::Model) -> Vec<String> {
    serde_json::from_str(&key.scopes).unwrap_or_default()
}

/// Enterprise admins manage their enterprise's keys; platform admins any.
fn may_manage(caller: &Caller, enterprise_id: &str) -> Result<(), ApiKeyError> {
    if caller.administers(enterprise_id) {
        Ok(())
    } else {
        Err(ApiKeyError::PermissionDenied(
            "only the enterprise's admins manage its API keys",
        ))
    }
}

pub struct ApiKeys {
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
    accounts: Arc<dyn Accounts>,
}

impl ApiKeys {
    pub fn new(db: DatabaseConnection, cache: Arc<dyn Cache>, accounts: Arc<dyn Accounts>) -> Self {
        Self {
            db,
            cache,
            accounts,
        }
    }

    async fn key(&self, id: &str) -> Result<api_key::Model, ApiKeyError> {
        api_key::Entity::find_by_id(id.trim())
            .one(&self.db)
            .await?
            .ok_or(ApiKeyError::NotFound("API key"))
    }

    /// The key `id`, if the caller manages its enterprise (others are told it does not exist).
    async fn managed(&self, caller: &Caller, id: &str) -> Result<api_key::Model, ApiKeyError> {
        let key = self.key(id).await?;
        may_manage(caller, &key.enterprise_id).map_err(|_| ApiKeyError::NotFound("API key"))?;
        Ok(key)
    }

    fn audit(caller: &Caller, key: &api_key::Model, action: &str) -> AuditNote {
        AuditNote::by(
            &key.enterprise_id,
            &caller.user_id,
            action,
            "success",
            &ClientInfo::default(),
            serde_json::json!({
                "key_id": key.id,
                "prefix": key.prefix,
                "principal_id": key.principal_id,
                "scopes": scopes_of(key),
                "expires_at": key.expires_at.to_rfc3339(),
            }),
        )
        .on(&key.principal_id)
    }

    pub async fn create(
        &self,
        caller: &Caller,
        wanted: NewKey,
        now: DateTime<Utc>,
    ) -> Result<Issued, ApiKeyError> {
        let mut problems = Vec::new();
        let name = wanted.display_name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            problems.push(("display_name".to_owned(), "1 to 100 characters".to_owned()));
        }
        let mut scopes = Vec::new();
        for (index, scope) in wanted.scopes.iter().enumerate() {
            let scope = scope.trim();
            match scope.split_once(':') {
                Some((feature, action)) if praxis_proto::catalogue::knows(feature, action) => {
                    if !scopes.iter().any(|s| s == scope) {
                        scopes.push(scope.to_owned());
                    }
                }
                _ => problems.push((
                    format!("scopes[{index}]"),
                    "a catalogued feature:action".to_owned(),
                )),
            }
        }
        match wanted.expires_at {
            Some(at) if at > now && at <= now + Duration::days(MAX_LIFETIME_DAYS) => {}
            _ => problems.push((
                "expire_time".to_owned(),
                "required, in the future and at most a year ahead".to_owned(),
            )),
        }
        let rate = match wanted.rate_per_minute {
            0 => DEFAULT_RATE_PER_MINUTE,
            n => n,
        };
        if !(1..=MAX_RATE_PER_MINUTE).contains(&rate) {
            problems.push((
                "rate_limit_per_minute".to_owned(),
                format!("1 to {MAX_RATE_PER_MINUTE}"),
            ));
        }
        if wanted.principal_id.trim().is_empty() {
            problems.push(("principal_id".to_owned(), "required".to_owned()));
        }
        let (Some(expires_at), true) = (wanted.expires_at, problems.is_empty()) else {
            return Err(ApiKeyError::Invalid(problems));
        };
        let account = self
            .accounts
            .by_id(wanted.principal_id.trim())
            .await
            .map_err(|e| ApiKeyError::Unavailable(e.to_string()))?
            .ok_or(ApiKeyError::NotFound("principal"))?;
        may_manage(caller, &account.enterprise_id)?;
        if !account.active {
            return Err(ApiKeyError::Precondition {
                reason: "PRINCIPAL_INACTIVE",
                message: "the principal is disabled".to_owned(),
            });
        }
        let (prefix, secret) = new_key();
        let key = api_key::Model {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: account.enterprise_id.clone(),
            principal_id: account.user_id.clone(),
            display_name: name,
            prefix,
            key_hash: digest(&secret),
            scopes: serde_json::to_string(&scopes)
                .map_err(|e| ApiKeyError::Internal(e.to_string()))?,
            expires_at,
            created_at: now,
            created_by: caller.user_id.clone(),
            revoked_at: None,
            last_used_at: None,
            use_count: 0,
            rate_per_minute: rate,
            replaced_by: None,
            retire_at: None,
        };
        let txn = self.db.begin().await?;
        api_key::Entity::insert(api_key::ActiveModel::from(key.clone()))
            .exec_without_returning(&txn)
            .await?;
        Self::audit(caller, &key, "api_key.create")
            .write(&txn)
            .await?;
        txn.commit().await?;
        Ok(Issued { key, secret })
    }

    pub async fn list(
        &self,
        caller: &Caller,
        enterprise_id: &str,
        principal_id: Option<&str>,
    ) -> Result<Vec<api_key::Model>, ApiKeyError> {
        may_manage(caller, enterprise_id)?;
        let mut query = api_key::Entity::find()
            .filter(api_key::Column::EnterpriseId.eq(enterprise_id))
            .order_by_asc(api_key::Column::Id);
        if let Some(principal_id) = principal_id {
            query = query.filter(api_key::Column::PrincipalId.eq(principal_id));
        }
        Ok(query.all(&self.db).await?)
    }

    /// Revokes at once; revoking a revoked key changes nothing.
    pub async fn revoke(
        &self,
        caller: &Caller,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<api_key::Model, ApiKeyError> {
        let key = self.managed(caller, id).await?;
        if key.revoked_at.is_some() {
            return Ok(key);
        }
        let revoked = api_key::Model {
            revoked_at: Some(now),
            ..key
        };
        let txn = self.db.begin().await?;
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(revoked.id.as_str()))
            .exec(&txn)
            .await?;
        Self::audit(caller, &revoked, "api_key.revoke")
            .write(&txn)
            .await?;
        txn.commit().await?;
        Ok(revoked)
    }

    /// A successor with the same principal, scopes, expiry and rate; the old key works for
    /// `overlap_seconds` more, then stops.
    pub async fn rotate(
        &self,
        caller: &Caller,
        id: &str,
        overlap_seconds: i32,
        now: DateTime<Utc>,
    ) -> Result<(Issued, api_key::Model), ApiKeyError> {
        if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap_seconds) {
            return Err(ApiKeyError::Invalid(vec![(
                "overlap_seconds".to_owned(),
                format!("0 to {MAX_OVERLAP_SECONDS}"),
            )]));
        }
        let old = self.managed(caller, id).await?;
        if old.revoked_at.is_some() || old.expires_at <= now || old.replaced_by.is_some() {
            return Err(ApiKeyError::Precondition {
                reason: "KEY_NOT_ROTATABLE",
                message: "only a live key that was not rotated already can be rotated".to_owned(),
            });
        }
        let (prefix, secret) = new_key();
        let key = api_key::Model {
            id: uuid::Uuid::now_v7().to_string(),
            prefix,
            key_hash: digest(&secret),
            created_at: now,
            created_by: caller.user_id.clone(),
            last_used_at: None,
            use_count: 0,
            ..old.clone()
        };
        let retire_at = std::cmp::min(
            now + Duration::seconds(i64::from(overlap_seconds)),
            old.expires_at,
        );
        let replaced = api_key::Model {
            replaced_by: Some(key.id.clone()),
            retire_at: Some(retire_at),
            ..old
        };
        let txn = self.db.begin().await?;
        let updated = api_key::Entity::update_many()
            .col_expr(api_key::Column::ReplacedBy, Expr::value(key.id.clone()))
            .col_expr(api_key::Column::RetireAt, Expr::value(retire_at))
            .filter(api_key::Column::Id.eq(replaced.id.as_str()))
            .filter(api_key::Column::ReplacedBy.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(ApiKeyError::Precondition {
                reason: "KEY_NOT_ROTATABLE",
                message: "the key was rotated already".to_owned(),
            });
        }
        api_key::Entity::insert(api_key::ActiveModel::from(key.clone()))
            .exec_without_returning(&txn)
            .await?;
        Self::audit(caller, &key, "api_key.rotate")
            .write(&txn)
            .await?;
        txn.commit().await?;
        Ok((Issued { key, secret }, replaced))
    }

    /// Who a key is, if it may be used now; counts the use and takes a token from its bucket.
    pub async fn verify(
        &self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<Caller, ApiKeyRefusal> {
        let unavailable = |e: &dyn std::fmt::Display| ApiKeyRefusal::Unavailable(e.to_string());
        let prefix = prefix_of(presented.trim()).ok_or(ApiKeyRefusal::Invalid)?;
        let key = api_key::Entity::find()
            .filter(api_key::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(|e| unavailable(&e))?
            .ok_or(ApiKeyRefusal::Invalid)?;
        // Both sides are digests of secrets: comparing them leaks nothing usable.
        let live = key.key_hash == digest(presented.trim())
            && key.revoked_at.is_none()
            && key.expires_at > now
            && key.retire_at.is_none_or(|at| at > now);
        if !live {
            return Err(ApiKeyRefusal::Invalid);
        }
        let account = self
            .accounts
            .by_id(&key.principal_id)
            .await
            .map_err(|e| unavailable(&e))?
            .filter(|a| a.active && a.enterprise_id == key.enterprise_id)
            .ok_or(ApiKeyRefusal::Invalid)?;
        let rate = u32::try_from(key.rate_per_minute).unwrap_or(1);
        if let Some(wait) = self
            .cache
            .take_token(
                &format!("praxis:identity:api-key:bucket:{}", key.id),
                rate,
                std::time::Duration::from_secs(60),
            )
            .await
            .map_err(|e| unavailable(&e))?
        {
            return Err(ApiKeyRefusal::RateLimited(wait));
        }
        api_key::Entity::update_many()
            .col_expr(
                api_key::Column::UseCount,
                Expr::col(api_key::Column::UseCount).add(1),
            )
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(key.id.as_str()))
            .exec(&self.db)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Caller {
            user_id: key.principal_id.clone(),
            enterprise_id: key.enterprise_id.clone(),
            session_id: format!("api_key:{}", key.id),
            kind: account.kind,
            auth_time: key.created_at.timestamp(),
            amr: vec!["api_key".to_owned()],
            scopes: scopes_of(&key),
        })
    }
}

#[async_trait::async_trait]
impl ApiKeyChecker for ApiKeys {
    async fn check(&self, key: &str) -> Result<Caller, ApiKeyRefusal> {
        self.verify(key, Utc::now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i7_keys_have_a_public_prefix_and_a_secret_only_their_hash_keeps() {
        let (prefix, key) = new_key();
        assert_eq!(prefix_of(&key), Some(prefix.as_str()));
        assert!(key.starts_with("prx_"));
        assert_eq!(digest(&key).len(), 64);
        assert!(!digest(&key).contains(&prefix));
        let (_, other) = new_key();
        assert_ne!(key, other);
        for bad in ["", "prx_", "prx_short_x", "Bearer x", "prx_aaaaaaaaaaaaa_"] {
            assert_eq!(prefix_of(bad), None, "{bad}");
        }
    }
}
