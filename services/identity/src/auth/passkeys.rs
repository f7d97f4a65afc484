//! Passkeys (WebAuthn, I3) with `webauthn-rs`: registration by a logged-in user, and the
//! assertion that answers a 2FA challenge. Ceremony state waits in the cache and is used once;
//! the stored credential keeps its signature counter so a cloned authenticator is noticed.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid,
};

/// A registered passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<passkey::Model> for PasskeyInfo {
    fn from(row: passkey::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    user_id: String,
    ceremony: PasskeyRegistration,
}

const MAX_NAME: usize = 64;
const CEREMONY_SECONDS: u64 = 300;

fn registration_key(id: &str) -> String {
    format!("praxis:identity:passkey-registration:{id}")
}

/// WebAuthn wants a UUID for the user handle; directory ids are UUIDs, others get a stable one.
fn user_handle(user_id: &str) -> Uuid {
    Uuid::parse_str(user_id).unwrap_or_else(|_| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(user_id.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    })
}

fn credential_id(passkey: &Passkey) -> String {
    URL_SAFE_NO_PAD.encode(passkey.cred_id())
}

impl Authenticator {
    async fn passkeys_of(
        &self,
        user_id: &str,
    ) -> Result<Vec<(passkey::Model, Passkey)>, AuthError> {
        let rows = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .order_by_asc(passkey::Column::CreatedAt)
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|row| {
                let key: Passkey = serde_json::from_str(&row.credential).map_err(internal)?;
                Ok((row, key))
            })
            .collect()
    }

    /// Starts a registration: the options for `navigator.credentials.create()` as WebAuthn JSON,
    /// and the id that `finish_passkey_registration` takes back.
    pub async fn start_passkey_registration(
        &self,
        caller: &Caller,
    ) -> Result<(String, String), AuthError> {
        self.current_session(caller).await?;
        let account = self
            .account(&caller.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::NotFound("user"))?;
        let existing: Vec<_> = self
            .passkeys_of(&caller.user_id)
            .await?
            .into_iter()
            .map(|(_, key)| key.cred_id().clone())
            .collect();
        let (options, ceremony) = self
            .webauthn
            .start_passkey_registration(
                user_handle(&caller.user_id),
                &account.email,
                &account.email,
                Some(existing),
            )
            .map_err(internal)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let pending = PendingRegistration {
            user_id: caller.user_id.clone(),
            ceremony,
        };
        self.cache
            .set(
                &registration_key(&id),
                &serde_json::to_vec(&pending).map_err(internal)?,
                std::time::Duration::from_secs(CEREMONY_SECONDS),
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        Ok((id, serde_json::to_string(&options).map_err(internal)?))
    }

    /// Verifies the authenticator's answer (`PublicKeyCredential` JSON from
    /// `navigator.credentials.create()`) and stores the passkey; the first factor comes with
    /// recovery codes.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        registration_id: &str,
        credential: &str,
        name: &str,
    ) -> Result<(PasskeyInfo, Vec<String>), AuthError> {
        self.current_session(caller).await?;
        let name = match name.trim() {
            "" => "Passkey",
            name => name,
        };
        if name.chars().count() > MAX_NAME {
            return Err(AuthError::Invalid {
                field: "name",
                message: format!("at most {MAX_NAME} characters"),
            });
        }
        let answer: RegisterPublicKeyCredential =
            serde_json::from_str(credential).map_err(|e| AuthError::Invalid {
                field: "credential",
                message: format!("not a WebAuthn registration response: {e}"),
            })?;
        let unknown = || AuthError::Precondition {
            reason: "NO_PENDING_REGISTRATION",
            message: "the registration is unknown, used or expired; start again".to_owned(),
        };
        let bytes = self
            .cache
            .take(&registration_key(registration_id.trim()))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(unknown)?;
        let pending: PendingRegistration = serde_json::from_slice(&bytes).map_err(|_| unknown())?;
        if pending.user_id != caller.user_id {
            return Err(unknown());
        }
        let key = self
            .webauthn
            .finish_passkey_registration(&answer, &pending.ceremony)
            .map_err(|e| AuthError::Invalid {
                field: "credential",
                message: format!("the authenticator's answer does not verify: {e}"),
            })?;
        let now = Utc::now();
        let row = passkey::Model {
            id: credential_id(&key),
            user_id: caller.user_id.clone(),
            name: name.to_owned(),
            credential: serde_json::to_string(&key).map_err(internal)?,
            created_at: now,
            last_used_at: None,
        };
        let txn = self.db.begin().await?;
        if passkey::Entity::find_by_id(&row.id)
            .one(&txn)
            .await?
            .is_some()
        {
            return Err(AuthError::Precondition {
                reason: "ALREADY_REGISTERED",
                message: "this passkey is registered already".to_owned(),
            });
        }
        passkey::Entity::insert(passkey::ActiveModel::from(row.clone()))
            .exec_without_returning(&txn)
            .await?;
        let codes = Self::first_recovery_codes(&txn, &caller.user_id).await?;
        AuditNote::by(
            &caller.enterprise_id,
            &caller.user_id,
            "two_factor.passkey.registered",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"passkey_id": row.id, "name": row.name}),
        )
        .write(&txn)
        .await?;
        txn.commit().await?;
        Ok((row.into(), codes))
    }

    pub async fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>, AuthError> {
        self.current_session(caller).await?;
        Ok(self
            .passkeys_of(&caller.user_id)
            .await?
            .into_iter()
            .map(|(row, _)| row.into())
            .collect())
    }

    /// Removing a way to log in needs a recent authentication.
    pub async fn delete_passkey(&self, caller: &Caller, id: &str) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        self.require_recent_authentication(caller)?;
        let txn = self.db.begin().await?;
        let deleted = passkey::Entity::delete_many()
            .filter(passkey::Column::Id.eq(id.trim()))
            .filter(passkey::Column::UserId.eq(&caller.user_id))
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(AuthError::NotFound("passkey"));
        }
        AuditNote::by(
            &caller.enterprise_id,
            &caller.user_id,
            "two_factor.passkey.deleted",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"passkey_id": id.trim()}),
        )
        .write(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// The options for `navigator.credentials.get()` over the user's passkeys, and the ceremony
    /// the challenge keeps.
    pub(super) async fn passkey_request(
        &self,
        user_id: &str,
    ) -> Result<(String, PasskeyAuthentication), AuthError> {
        let keys: Vec<Passkey> = self
            .passkeys_of(user_id)
            .await?
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        let (options, ceremony) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        Ok((serde_json::to_string(&options).map_err(internal)?, ceremony))
    }

    /// Whether `assertion` (`PublicKeyCredential` JSON from `navigator.credentials.get()`)
    /// answers `ceremony` with one of the user's passkeys; the counter it carries is stored.
    pub(super) async fn verify_passkey(
        &self,
        user_id: &str,
        ceremony: &PasskeyAuthentication,
        assertion: &str,
    ) -> Result<bool, AuthError> {
        let Ok(answer) = serde_json::from_str::<PublicKeyCredential>(assertion) else {
            return Ok(false);
        };
        let result = match self
            .webauthn
            .finish_passkey_authentication(&answer, ceremony)
        {
            Ok(result) => result,
            Err(error) => {
                tracing::info!(%error, "passkey assertion refused");
                return Ok(false);
            }
        };
        let id = URL_SAFE_NO_PAD.encode(result.cred_id());
        let Some(row) = passkey::Entity::find_by_id(&id)
            .one(&self.db)
            .await?
            .filter(|row| row.user_id == user_id)
        else {
            return Ok(false);
        };
        let mut key: Passkey = serde_json::from_str(&row.credential).map_err(internal)?;
        key.update_credential(&result);
        passkey::Entity::update(passkey::ActiveModel {
            id: Set(row.id),
            credential: Set(serde_json::to_string(&key).map_err(internal)?),
            last_used_at: Set(Some(Utc::now())),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        Ok(true)
    }
}
