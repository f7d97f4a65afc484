//! SSO connections (I6): what each enterprise's identity provider is, how its answers map onto
//! directory users, and who may change that. The client secret is sealed at rest (I9).

use super::SsoError;
use crate::secrets::Sealer;
use crate::store::sso_connection;
use chrono::{DateTime, Utc};
use praxis_runtime::Caller;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub clock_skew_seconds: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamlConfig {
    pub idp_metadata_xml: String,
    pub idp_entity_id: String,
    pub sp_entity_id: String,
    pub allow_idp_initiated: bool,
    pub clock_skew_seconds: u32,
    pub allow_rsa_sha1: bool,
    /// The service provider's certificate, DER in base64; its key is the sealed secret.
    pub sp_certificate: String,
}

/// Claim or attribute names; empty = the usual ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Mapping {
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub phone: String,
    pub groups: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MembershipRule {
    pub practice_id: String,
    pub line_ids: Vec<String>,
}

/// group → (kind, practices, roles).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    pub group: String,
    /// `praxis.directory.v1.UserKind` number.
    pub kind: i32,
    pub memberships: Vec<MembershipRule>,
    pub role_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionSettings {
    pub oidc: Option<OidcConfig>,
    pub saml: Option<SamlConfig>,
    pub mapping: Mapping,
    pub rules: Vec<Rule>,
    pub default_rule: Option<Rule>,
    pub provision_users: bool,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub enterprise_id: String,
    pub display_name: String,
    pub enabled: bool,
    pub domains: Vec<String>,
    pub settings: ConnectionSettings,
    /// The OIDC client secret, or the SAML service provider's private key (PEM), sealed.
    pub sealed_secret: Option<Vec<u8>>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Connection {
    pub fn protocol(&self) -> &'static str {
        if self.settings.saml.is_some() {
            "saml"
        } else {
            "oidc"
        }
    }

    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// The plain OIDC client secret, or the SAML SP key's PEM.
    pub fn client_secret(&self, sealer: &Sealer) -> Result<Option<String>, SsoError> {
        self.sealed_secret
            .as_deref()
            .map(|sealed| {
                sealer
                    .open(sealed, &secret_context(&self.id))
                    .map_err(|e| SsoError::Internal(format!("connection secret: {e}")))
                    .and_then(|plain| {
                        String::from_utf8(plain)
                            .map_err(|_| SsoError::Internal("connection secret is not text".into()))
                    })
            })
            .transpose()
    }
}

pub fn secret_context(connection_id: &str) -> String {
    format!("sso-connection:{connection_id}")
}

fn from_row(row: sso_connection::Model) -> Result<Connection, SsoError> {
    Ok(Connection {
        domains: serde_json::from_str(&row.domains)
            .map_err(|e| SsoError::Internal(format!("connection {} domains: {e}", row.id)))?,
        settings: serde_json::from_str(&row.settings)
            .map_err(|e| SsoError::Internal(format!("connection {} settings: {e}", row.id)))?,
        id: row.id,
        enterprise_id: row.enterprise_id,
        display_name: row.display_name,
        enabled: row.enabled,
        sealed_secret: row.sealed_secret,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn json(value: &impl Serialize) -> Result<String, SsoError> {
    serde_json::to_string(value).map_err(|e| SsoError::Internal(e.to_string()))
}

/// Enterprise admins manage their own enterprise's connections; platform admins any.
pub fn may_manage(caller: &Caller, enterprise_id: &str) -> Result<(), SsoError> {
    if caller.administers(enterprise_id) {
        Ok(())
    } else {
        Err(SsoError::PermissionDenied(
            "only the enterprise's admins manage its SSO connections",
        ))
    }
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<Connection>, SsoError> {
    sso_connection::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(from_row)
        .transpose()
}

pub async fn list(
    db: &DatabaseConnection,
    enterprise_id: &str,
) -> Result<Vec<Connection>, SsoError> {
    sso_connection::Entity::find()
        .filter(sso_connection::Column::EnterpriseId.eq(enterprise_id))
        .order_by_asc(sso_connection::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// Every connection (domains are few; discovery reads them all).
pub async fn all(db: &DatabaseConnection) -> Result<Vec<Connection>, SsoError> {
    sso_connection::Entity::find()
        .order_by_asc(sso_connection::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(from_row)
        .collect()
}

/// The enabled connection serving `domain`, if any.
pub async fn for_domain(
    db: &DatabaseConnection,
    domain: &str,
) -> Result<Option<Connection>, SsoError> {
    Ok(all(db)
        .await?
        .into_iter()
        .find(|c| c.enabled && c.domains.iter().any(|d| d == domain)))
}

/// Refuses a domain another connection already serves: discovery must have one answer.
pub async fn check_domains_free(
    db: &DatabaseConnection,
    domains: &[String],
    except_id: Option<&str>,
) -> Result<(), SsoError> {
    for other in all(db).await? {
        if Some(other.id.as_str()) == except_id {
            continue;
        }
        if let Some(taken) = domains.iter().find(|d| other.domains.contains(d)) {
            return Err(SsoError::Precondition {
                reason: "DOMAIN_TAKEN",
                message: format!("{taken} is served by another SSO connection"),
            });
        }
    }
    Ok(())
}

pub async fn insert(db: &DatabaseConnection, connection: &Connection) -> Result<(), SsoError> {
    sso_connection::Entity::insert(sso_connection::ActiveModel {
        id: Set(connection.id.clone()),
        enterprise_id: Set(connection.enterprise_id.clone()),
        display_name: Set(connection.display_name.clone()),
        enabled: Set(connection.enabled),
        protocol: Set(connection.protocol().to_owned()),
        domains: Set(json(&connection.domains)?),
        settings: Set(json(&connection.settings)?),
        sealed_secret: Set(connection.sealed_secret.clone()),
        version: Set(connection.version),
        created_at: Set(connection.created_at),
        updated_at: Set(connection.updated_at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// Writes `connection` over the stored row if that is still at `expected_version`.
pub async fn update(
    db: &DatabaseConnection,
    connection: &Connection,
    expected_version: i64,
) -> Result<(), SsoError> {
    let written = sso_connection::Entity::update_many()
        .col_expr(
            sso_connection::Column::DisplayName,
            Expr::value(connection.display_name.clone()),
        )
        .col_expr(
            sso_connection::Column::Enabled,
            Expr::value(connection.enabled),
        )
        .col_expr(
            sso_connection::Column::Protocol,
            Expr::value(connection.protocol()),
        )
        .col_expr(
            sso_connection::Column::Domains,
            Expr::value(json(&connection.domains)?),
        )
        .col_expr(
            sso_connection::Column::Settings,
            Expr::value(json(&connection.settings)?),
        )
        .col_expr(
            sso_connection::Column::SealedSecret,
            Expr::value(connection.sealed_secret.clone()),
        )
        .col_expr(
            sso_connection::Column::Version,
            Expr::value(connection.version),
        )
        .col_expr(
            sso_connection::Column::UpdatedAt,
            Expr::value(connection.updated_at),
        )
        .filter(sso_connection::Column::Id.eq(connection.id.as_str()))
        .filter(sso_connection::Column::Version.eq(expected_version))
        .exec(db)
        .await?;
    if written.rows_affected == 0 {
        return Err(SsoError::Aborted);
    }
    Ok(())
}

pub async fn delete(
    db: &DatabaseConnection,
    id: &str,
    expected_version: Option<i64>,
) -> Result<(), SsoError> {
    let mut query = sso_connection::Entity::delete_many().filter(sso_connection::Column::Id.eq(id));
    if let Some(version) = expected_version {
        query = query.filter(sso_connection::Column::Version.eq(version));
    }
    if query.exec(db).await?.rows_affected == 0 {
        return Err(SsoError::Aborted);
    }
    Ok(())
}

/// A lowercase domain name, or why not.
pub fn normalize_domain(value: &str) -> Result<String, String> {
    let domain = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if domain.len() > 253 || !domain.contains('.') || !labels_ok {
        return Err(format!("{value:?} is not a domain name"));
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i6_domains_are_normalized_or_refused() {
        assert_eq!(
            normalize_domain(" Acme-Health.TEST. ").ok().as_deref(),
            Some("acme-health.test")
        );
        for bad in ["", "localhost", "a@b.test", "-x.test", "a..b", "x y.test"] {
            assert!(normalize_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn i6_only_the_enterprises_admins_manage_its_connections() {
        let caller = |kind: &str, enterprise: &str| Caller {
            user_id: "u".into(),
            enterprise_id: enterprise.into(),
            session_id: "s".into(),
            kind: kind.into(),
            auth_time: 0,
            amr: vec![],
            scopes: vec![],
        };
        assert!(may_manage(&caller("ENTERPRISE_ADMIN", "e1"), "e1").is_ok());
        assert!(may_manage(&caller("ENTERPRISE_ADMIN", "e2"), "e1").is_err());
        assert!(may_manage(&caller("MANAGER", "e1"), "e1").is_err());
        assert!(may_manage(&caller("PLATFORM_ADMIN", ""), "e1").is_ok());
    }
}
