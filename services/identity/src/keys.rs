//! Access-token signing keys (I5): Ed25519, one active key signing, older keys still published
//! for an overlap so tokens they signed keep verifying until they expire.

use crate::secrets::Sealer;
use crate::store::signing_key;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use praxis_runtime::auth::AccessClaims;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key storage: {0}")]
    Storage(String),
    #[error("key material: {0}")]
    Material(String),
    #[error("no active signing key")]
    NoActiveKey,
}

/// What a sealed private key is bound to.
fn context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

fn storage(error: sea_orm::DbErr) -> KeyError {
    KeyError::Storage(error.to_string())
}

/// A public key as published in the JWK Set (RFC 8037 OKP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicJwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub alg: &'static str,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub kid: String,
    pub x: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

/// What a new access token says about its holder.
#[derive(Debug, Clone)]
pub struct TokenSubject {
    pub user_id: String,
    pub enterprise_id: String,
    pub session_id: String,
    pub kind: String,
    pub amr: Vec<String>,
    pub auth_time: DateTime<Utc>,
}

#[derive(Clone)]
pub struct KeyRing {
    db: DatabaseConnection,
    /// Private keys are stored sealed (I9).
    sealer: Sealer,
    issuer: String,
    audience: String,
    /// How long a retired key stays published; longer than any access token lives.
    overlap: Duration,
}

impl KeyRing {
    pub fn new(
        db: DatabaseConnection,
        sealer: Sealer,
        issuer: &str,
        audience: &str,
        overlap: Duration,
    ) -> Self {
        Self {
            db,
            sealer,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            overlap,
        }
    }

    /// Makes sure a key signs; the first start of a fresh install creates it. Keys stored
    /// before they were sealed are sealed now.
    pub async fn ensure_active(&self, now: DateTime<Utc>) -> Result<(), KeyError> {
        for row in signing_key::Entity::find()
            .all(&self.db)
            .await
            .map_err(storage)?
        {
            if !Sealer::is_sealed(&row.private_key) {
                let sealed = self.sealer.seal(&row.private_key, &context(&row.kid));
                signing_key::Entity::update(signing_key::ActiveModel {
                    kid: Set(row.kid.clone()),
                    private_key: Set(sealed),
                    ..Default::default()
                })
                .exec(&self.db)
                .await
                .map_err(storage)?;
                tracing::info!(kid = %row.kid, "signing key sealed");
            }
        }
        if self.active().await?.is_none() {
            self.rotate(now).await?;
        }
        Ok(())
    }

    /// A new key signs from now on; the previous one is retired but stays published.
    pub async fn rotate(&self, now: DateTime<Utc>) -> Result<String, KeyError> {
        let signing_key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let private_key = signing_key
            .to_pkcs8_der()
            .map_err(|error| KeyError::Material(error.to_string()))?;
        let public_x = URL_SAFE_NO_PAD.encode(signing_key.verifying_key().as_bytes());
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let txn = self.db.begin().await.map_err(storage)?;
        signing_key::Entity::update_many()
            .col_expr(
                signing_key::Column::RetiredAt,
                sea_orm::sea_query::Expr::value(now),
            )
            .filter(signing_key::Column::RetiredAt.is_null())
            .exec(&txn)
            .await
            .map_err(storage)?;
        let row = signing_key::ActiveModel {
            kid: Set(kid.clone()),
            private_key: Set(self.sealer.seal(private_key.as_bytes(), &context(&kid))),
            public_x: Set(public_x),
            created_at: Set(now),
            retired_at: Set(None),
        };
        signing_key::Entity::insert(row)
            .exec_without_returning(&txn)
            .await
            .map_err(storage)?;
        txn.commit().await.map_err(storage)?;
        tracing::info!(kid = %kid, "signing key rotated");
        Ok(kid)
    }

    /// Rotates when the active key is older than `max_age`; returns the new key's id.
    pub async fn rotate_if_due(
        &self,
        now: DateTime<Utc>,
        max_age: Duration,
    ) -> Result<Option<String>, KeyError> {
        match self.active().await? {
            Some(key) if now - key.created_at < max_age => Ok(None),
            _ => self.rotate(now).await.map(Some),
        }
    }

    async fn active(&self) -> Result<Option<signing_key::Model>, KeyError> {
        signing_key::Entity::find()
            .filter(signing_key::Column::RetiredAt.is_null())
            .order_by_desc(signing_key::Column::CreatedAt)
            .one(&self.db)
            .await
            .map_err(storage)
    }

    /// The active key and every retired key still within its overlap.
    pub async fn jwks(&self, now: DateTime<Utc>) -> Result<JwkSet, KeyError> {
        let rows = signing_key::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(signing_key::Column::RetiredAt.is_null())
                    .add(signing_key::Column::RetiredAt.gt(now - self.overlap)),
            )
            .order_by_desc(signing_key::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(storage)?;
        let keys = rows
            .into_iter()
            .map(|row| PublicJwk {
                kty: "OKP",
                crv: "Ed25519",
                alg: "EdDSA",
                use_: "sig",
                kid: row.kid,
                x: row.public_x,
            })
            .collect();
        Ok(JwkSet { keys })
    }

    /// Signs an access token for `subject`, valid for `ttl` from `now`.
    pub async fn issue(
        &self,
        subject: &TokenSubject,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, KeyError> {
        let key = self.active().await?.ok_or(KeyError::NoActiveKey)?;
        let private_key = self
            .sealer
            .open(&key.private_key, &context(&key.kid))
            .map_err(|error| KeyError::Material(error.to_string()))?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id.clone(),
            ent: subject.enterprise_id.clone(),
            sid: subject.session_id.clone(),
            kind: subject.kind.clone(),
            auth_time: subject.auth_time.timestamp(),
            amr: subject.amr.clone(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ed_der(&private_key))
            .map_err(|error| KeyError::Material(error.to_string()))
    }
}
