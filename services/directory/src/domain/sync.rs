//! Directory sync: the bearer tokens a corporate directory provisions an enterprise with over
//! SCIM 2.0. A token is shown once, stored as its SHA-256, found by its public prefix, and acts
//! for its one enterprise; revoking it takes effect on the next request.

use super::*;
use crate::store::entities::{scim_resource, scim_token};
use chrono::{DateTime, Utc};

/// Every token starts with this; then the public prefix, `_`, and the secret part.
pub const TOKEN_PREFIX: &str = "scim_";
const PREFIX_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;
const MAX_DISPLAY_NAME: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimToken {
    pub id: String,
    pub enterprise_id: EnterpriseId,
    pub display_name: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<scim_token::Model> for ScimToken {
    fn from(row: scim_token::Model) -> Self {
        Self {
            id: row.id,
            enterprise_id: EnterpriseId(row.enterprise_id),
            display_name: row.display_name,
            prefix: row.prefix,
            created_by: row.created_by,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// Who a SCIM request acts as: one token of one enterprise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimClient {
    pub enterprise_id: EnterpriseId,
    pub token_id: String,
}

impl ScimClient {
    /// The actor its changes are audited under.
    pub fn actor(&self) -> String {
        format!("scim:{}", self.token_id)
    }
}

fn digest(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_secret() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut raw = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The public prefix of a presented token, if it has the token's shape.
fn prefix_of(secret: &str) -> Option<&str> {
    let rest = secret.strip_prefix(TOKEN_PREFIX)?;
    let (prefix, tail) = rest.split_once('_')?;
    (prefix.len() == PREFIX_BYTES * 2
        && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        && !tail.is_empty())
    .then_some(prefix)
}

impl Directory {
    /// Only the enterprise's admins (and platform admins) manage its directory sync.
    pub(super) async fn administered(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<(), DomainError> {
        self.visible_enterprise(actor, enterprise_id).await?;
        if !self.authority(actor, enterprise_id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins manage directory sync",
            ));
        }
        Ok(())
    }

    /// A new token and its secret (shown this once).
    pub async fn create_scim_token(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        display_name: &str,
        now: DateTime<Utc>,
    ) -> Result<(ScimToken, String), DomainError> {
        let display_name = display_name.trim();
        if display_name.is_empty() || display_name.chars().count() > MAX_DISPLAY_NAME {
            return Err(DomainError::invalid(
                "display_name",
                format!("1-{MAX_DISPLAY_NAME} characters, e.g. Okta"),
            ));
        }
        self.administered(actor, enterprise_id).await?;
        let id = uuid::Uuid::now_v7().to_string();
        let prefix = random_hex(PREFIX_BYTES);
        let secret = format!("{TOKEN_PREFIX}{prefix}_{}", random_secret());
        let audit = actor.audit(
            "scim_token.create",
            format!("scim_token:{id}"),
            serde_json::json!({"display_name": display_name, "prefix": prefix}),
            now,
        );
        let row = scim_token::Model {
            id,
            enterprise_id: enterprise_id.0.clone(),
            display_name: display_name.to_owned(),
            prefix,
            secret_hash: digest(&secret),
            created_by: audit.actor.clone(),
            created_at: now,
            revoked_at: None,
            last_used_at: None,
        };
        self.store.insert_scim_token(&row, &audit).await?;
        Ok((row.into(), secret))
    }

    pub async fn list_scim_tokens(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<ScimToken>, DomainError> {
        self.administered(actor, enterprise_id).await?;
        Ok(self
            .store
            .scim_tokens(enterprise_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes a token (again: a no-op); it stops working at once.
    pub async fn revoke_scim_token(
        &self,
        actor: &Actor,
        token_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ScimToken, DomainError> {
        let row = self
            .store
            .scim_token(token_id)
            .await?
            .ok_or(DomainError::NotFound("SCIM token"))?;
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        // Another enterprise's token does not exist for this actor.
        if self.administered(actor, &enterprise_id).await.is_err() {
            return Err(DomainError::NotFound("SCIM token"));
        }
        let audit = actor.audit(
            "scim_token.revoke",
            format!("scim_token:{}", row.id),
            serde_json::json!({"prefix": row.prefix}),
            now,
        );
        self.store.revoke_scim_token(&row, now, &audit).await?;
        self.store
            .scim_token(token_id)
            .await?
            .map(Into::into)
            .ok_or(DomainError::NotFound("SCIM token"))
    }

    /// The client a presented bearer token is, or PermissionDenied for anything else (a token
    /// never issued, altered, or revoked): the caller learns nothing about which.
    pub async fn authenticate_scim(
        &self,
        secret: &str,
        now: DateTime<Utc>,
    ) -> Result<ScimClient, DomainError> {
        const REFUSED: DomainError = DomainError::PermissionDenied("invalid SCIM token");
        let prefix = prefix_of(secret).ok_or(REFUSED)?;
        let row = self
            .store
            .scim_token_by_prefix(prefix)
            .await?
            .ok_or(REFUSED)?;
        if row.revoked_at.is_some() || row.secret_hash != digest(secret) {
            return Err(REFUSED);
        }
        if let Err(error) = self.store.touch_scim_token(&row.id, now).await {
            tracing::warn!(%error, "could not record a SCIM token's use");
        }
        Ok(ScimClient {
            enterprise_id: EnterpriseId(row.enterprise_id),
            token_id: row.id,
        })
    }
}

/// The SCIM resource types kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    User,
    Group,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::User => "User",
            ScimType::Group => "Group",
        }
    }

    /// The attribute that names a resource, unique within its enterprise.
    pub fn name_attribute(self) -> &'static str {
        match self {
            ScimType::User => "userName",
            ScimType::Group => "displayName",
        }
    }
}

/// A User or Group as its client sent it (no `id` or `meta` in `body`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScimResource {
    pub id: String,
    pub resource_type: ScimType,
    pub body: serde_json::Value,
    /// Moves on with every change: the ETag.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn resource_from(
    row: scim_resource::Model,
    resource_type: ScimType,
) -> Result<ScimResource, DomainError> {
    Ok(ScimResource {
        body: serde_json::from_str(&row.body)
            .map_err(|error| DomainError::Storage(format!("SCIM resource {}: {error}", row.id)))?,
        id: row.id,
        resource_type,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// What names the resource (lowercased for uniqueness) and its externalId.
fn keys(
    resource_type: ScimType,
    body: &serde_json::Value,
) -> Result<(String, Option<String>), DomainError> {
    let attribute = resource_type.name_attribute();
    let name = body
        .as_object()
        .and_then(|fields| {
            fields
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(attribute))
                .and_then(|(_, value)| value.as_str())
        })
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| DomainError::invalid(attribute, "required"))?;
    let external_id = body
        .get("externalId")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    Ok((name.to_lowercase(), external_id))
}

/// The body as kept: without what the server owns.
fn stored_body(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(fields) = body.as_object_mut() {
        fields
            .retain(|key, _| !key.eq_ignore_ascii_case("id") && !key.eq_ignore_ascii_case("meta"));
    }
    body
}

impl Directory {
    pub async fn scim_create(
        &self,
        client: &ScimClient,
        resource_type: ScimType,
        body: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<ScimResource, DomainError> {
        let body = stored_body(body);
        let (name_key, external_id) = keys(resource_type, &body)?;
        self.check_scim_email(client, resource_type, &body).await?;
        let row = scim_resource::Model {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: client.enterprise_id.0.clone(),
            resource_type: resource_type.as_str().to_owned(),
            name_key,
            external_id,
            body: body.to_string(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let audit = crate::store::AuditEntry::write(
            client.actor(),
            scim_action(resource_type, "create"),
            format!("scim_{}:{}", resource_type.as_str().to_lowercase(), row.id),
            serde_json::json!({"name": row.name_key, "external_id": row.external_id}),
            now,
        );
        match self.store.insert_scim_resource(&row, &audit).await {
            Err(DomainError::AlreadyExists(_)) => {
                return Err(DomainError::AlreadyExists("a resource with this name"));
            }
            other => other?,
        };
        let resource = resource_from(row, resource_type)?;
        self.after_scim_write(client, None, Some(&resource), now)
            .await?;
        Ok(resource)
    }

    pub async fn scim_get(
        &self,
        client: &ScimClient,
        resource_type: ScimType,
        id: &str,
    ) -> Result<ScimResource, DomainError> {
        let row = self
            .store
            .scim_resource(&client.enterprise_id, resource_type.as_str(), id)
            .await?
            .ok_or(DomainError::NotFound("resource"))?;
        resource_from(row, resource_type)
    }

    pub async fn scim_list(
        &self,
        client: &ScimClient,
        resource_type: ScimType,
    ) -> Result<Vec<ScimResource>, DomainError> {
        self.store
            .scim_resources(&client.enterprise_id, resource_type.as_str())
            .await?
            .into_iter()
            .map(|row| resource_from(row, resource_type))
            .collect()
    }

    /// Replaces the resource's body; `expected` is the version the client last saw (If-Match),
    /// or `None` to replace whatever is there.
    pub async fn scim_replace(
        &self,
        client: &ScimClient,
        resource_type: ScimType,
        id: &str,
        body: serde_json::Value,
        expected: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<ScimResource, DomainError> {
        let current = self
            .store
            .scim_resource(&client.enterprise_id, resource_type.as_str(), id)
            .await?
            .ok_or(DomainError::NotFound("resource"))?;
        if expected.is_some_and(|version| version != current.version) {
            return Err(DomainError::Aborted(
                "the resource changed since it was read",
            ));
        }
        let body = stored_body(body);
        let (name_key, external_id) = keys(resource_type, &body)?;
        self.check_scim_email(client, resource_type, &body).await?;
        let before = resource_from(current.clone(), resource_type)?;
        let row = scim_resource::Model {
            name_key,
            external_id,
            body: body.to_string(),
            version: current.version + 1,
            updated_at: now,
            ..current.clone()
        };
        let audit = crate::store::AuditEntry::write(
            client.actor(),
            scim_action(resource_type, "replace"),
            format!("scim_{}:{}", resource_type.as_str().to_lowercase(), row.id),
            serde_json::json!({"name": row.name_key, "version": row.version}),
            now,
        );
        match self
            .store
            .update_scim_resource(&row, current.version, &audit)
            .await
        {
            Err(DomainError::AlreadyExists(_)) => {
                return Err(DomainError::AlreadyExists("a resource with this name"));
            }
            other => other?,
        };
        let resource = resource_from(row, resource_type)?;
        self.after_scim_write(client, Some(&before), Some(&resource), now)
            .await?;
        Ok(resource)
    }

    pub async fn scim_delete(
        &self,
        client: &ScimClient,
        resource_type: ScimType,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let row = self
            .store
            .scim_resource(&client.enterprise_id, resource_type.as_str(), id)
            .await?
            .ok_or(DomainError::NotFound("resource"))?;
        let audit = crate::store::AuditEntry::write(
            client.actor(),
            scim_action(resource_type, "delete"),
            format!("scim_{}:{}", resource_type.as_str().to_lowercase(), row.id),
            serde_json::json!({"name": row.name_key}),
            now,
        );
        self.store.delete_scim_resource(&row, &audit).await?;
        let resource = resource_from(row, resource_type)?;
        self.after_scim_write(client, Some(&resource), None, now)
            .await
    }

    /// A User named by an email must be on the enterprise's domains (D2) before it is kept:
    /// the refusal changes nothing.
    async fn check_scim_email(
        &self,
        client: &ScimClient,
        resource_type: ScimType,
        body: &serde_json::Value,
    ) -> Result<(), DomainError> {
        if resource_type != ScimType::User {
            return Ok(());
        }
        match super::scim_rules::scim_email(body) {
            Some(email) => self.check_email_domain(&client.enterprise_id, &email).await,
            None => Ok(()),
        }
    }

    /// What a stored SCIM write means for Praxis users: the User's own, or every member a
    /// Group had or has.
    async fn after_scim_write(
        &self,
        client: &ScimClient,
        before: Option<&ScimResource>,
        after: Option<&ScimResource>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let Some(resource) = after.or(before) else {
            return Ok(());
        };
        match resource.resource_type {
            ScimType::User => {
                self.follow_scim_user(client, resource, after.is_none(), now)
                    .await?;
                if after.is_some() {
                    self.reconcile_scim_users(client, [resource.id.clone()].into(), now)
                        .await?;
                }
                Ok(())
            }
            ScimType::Group => {
                let members = |group: Option<&ScimResource>| {
                    group.map(super::scim_rules::member_ids).unwrap_or_default()
                };
                let name = |group: Option<&ScimResource>| {
                    group
                        .and_then(|g| g.body.get("displayName"))
                        .and_then(serde_json::Value::as_str)
                        .map(|name| name.trim().to_lowercase())
                };
                let (old, new) = (members(before), members(after));
                // A renamed, new or removed group may change every member's rules; otherwise
                // only those who joined or left (a group of thousands gains one at a time).
                let touched = if name(before) != name(after) {
                    old.union(&new).cloned().collect()
                } else {
                    old.symmetric_difference(&new).cloned().collect()
                };
                self.reconcile_scim_users(client, touched, now).await
            }
        }
    }

    /// What a SCIM User's change means for the Praxis user with its email (userName) in the
    /// client's enterprise: deactivated (`active: false`) or deleted in the corporate
    /// directory, they are disabled here (D14), which ends their sessions. Active again, they
    /// are enabled again, but only if it was this connector that disabled them: an admin's
    /// decision stands.
    async fn follow_scim_user(
        &self,
        client: &ScimClient,
        resource: &ScimResource,
        deleted: bool,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        if resource.resource_type != ScimType::User {
            return Ok(());
        }
        let inactive = resource.body.get("active") == Some(&serde_json::Value::Bool(false));
        let Some(email) = super::scim_rules::scim_email(&resource.body) else {
            return Ok(());
        };
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        if user.enterprise_id != client.enterprise_id || user.kind == UserKind::ServiceAccount {
            return Ok(());
        }
        let connector = format!("scim:{}", client.enterprise_id.0);
        let (status, reason) = match user.status {
            UserStatus::Active | UserStatus::Invited if deleted || inactive => (
                UserStatus::Disabled,
                if deleted {
                    "deleted in the corporate directory"
                } else {
                    "deactivated in the corporate directory"
                },
            ),
            UserStatus::Disabled
                if !deleted && !inactive && self.last_disabled_by(&user, &connector).await? =>
            {
                (
                    UserStatus::Active,
                    "active again in the corporate directory",
                )
            }
            _ => return Ok(()),
        };
        // Changes to Praxis users are the connector's, as provisioning's are; the token that
        // carried the request is in the details.
        let details = serde_json::json!({
            "via": "scim",
            "token": client.token_id,
            "scim_user": resource.id,
            "reason": reason,
        });
        self.set_status_for_connector(&connector, &user, status, details, now)
            .await
    }
}

fn scim_action(resource_type: ScimType, verb: &str) -> &'static str {
    match (resource_type, verb) {
        (ScimType::User, "create") => "scim.user.create",
        (ScimType::User, "replace") => "scim.user.replace",
        (ScimType::User, _) => "scim.user.delete",
        (ScimType::Group, "create") => "scim.group.create",
        (ScimType::Group, "replace") => "scim.group.replace",
        (ScimType::Group, _) => "scim.group.delete",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_shape_has_a_prefix() {
        let secret = format!(
            "{TOKEN_PREFIX}{}_{}",
            random_hex(PREFIX_BYTES),
            random_secret()
        );
        assert!(prefix_of(&secret).is_some());
        for bad in [
            "",
            "scim_",
            "scim_abc_def",
            "scim_zzzzzzzzzzzz_x",
            "prx_0123456789ab_x",
            "scim_0123456789ab_",
        ] {
            assert!(prefix_of(bad).is_none(), "{bad}");
        }
        assert_ne!(digest(&secret), digest(&format!("{secret}x")));
    }
}
