//! Configuration of the one-process install: every service on loopback, SQLite files under the
//! data directory, one in-memory cache, unless told otherwise.

use praxis_runtime::config::{AuthConfig, ConfigError, ServiceConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PraxisConfig {
    /// SQLite files, the JWK Set and identity's secrets key file live here.
    pub data_dir: PathBuf,
    /// `memory` (one process needs nothing else) or Redis URLs.
    pub cache_url: String,
    pub drain_seconds: u64,
    pub telemetry: TelemetryConfig,
    pub directory: Endpoint,
    pub identity: IdentityEndpoint,
    pub authz: Endpoint,
    /// Where invitations and reset links go out; the log sink when unset.
    pub smtp: Option<praxis_runtime::notify::SmtpConfig>,
    /// Where SMS sign-in codes go out (an HTTP webhook); the log sink when unset.
    pub sms: Option<praxis_runtime::notify::SmsConfig>,
    /// Audit retention: archives and the checkpoint key (under `data_dir` when unset).
    pub audit: praxis_directory::domain::retention::AuditSettings,
    /// Shared secrets other Praxis services call these with (`auth.service_credentials`).
    pub service_credentials:
        std::collections::BTreeMap<String, praxis_runtime::config::ServiceSecret>,
    /// TLS for the three gRPC listeners and identity's HTTP one (mTLS with
    /// `require_client_cert`).
    pub tls: praxis_runtime::tls::TlsConfig,
    /// Directory's SCIM 2.0 endpoint (`/scim/v2`), where corporate directories provision users.
    pub scim_listen: String,
    /// How SCIM clients reach it when that is not the listener itself (behind a proxy).
    pub scim_public_url: Option<String>,
    /// The key directory seals LDAP bind passwords with (`key`, 32 bytes base64); by default
    /// `directory-secrets.key` in `data_dir`.
    pub directory_encryption: praxis_directory::EncryptionSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub listen: String,
    /// Overrides the SQLite file under `data_dir`, e.g. with a PostgreSQL URL.
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdentityEndpoint {
    pub listen: String,
    pub http_listen: String,
    pub database_url: Option<String>,
    /// The key identity seals secrets with (32 bytes, base64); by default a file in `data_dir`.
    #[serde(default)]
    pub encryption_key: Option<String>,
    /// Lockout, throttling and challenge settings.
    #[serde(default)]
    pub login: praxis_identity::auth::AuthSettings,
    /// Single sign-on: identity's public URL and the origins logins may return to.
    #[serde(default)]
    pub sso: praxis_identity::sso::SsoSettings,
}

impl Default for PraxisConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".praxis"),
            cache_url: "memory".to_owned(),
            drain_seconds: 20,
            telemetry: TelemetryConfig::default(),
            directory: Endpoint {
                listen: praxis_directory::DEFAULT_LISTEN.to_owned(),
                database_url: None,
            },
            identity: IdentityEndpoint {
                listen: praxis_identity::DEFAULT_LISTEN.to_owned(),
                http_listen: praxis_identity::DEFAULT_HTTP_LISTEN.to_owned(),
                database_url: None,
                encryption_key: None,
                login: praxis_identity::auth::AuthSettings::default(),
                sso: praxis_identity::sso::SsoSettings::default(),
            },
            authz: Endpoint {
                listen: praxis_authz::DEFAULT_LISTEN.to_owned(),
                database_url: None,
            },
            smtp: None,
            sms: None,
            audit: Default::default(),
            service_credentials: Default::default(),
            tls: Default::default(),
            scim_listen: DEFAULT_SCIM_LISTEN.to_owned(),
            scim_public_url: None,
            directory_encryption: praxis_directory::EncryptionSettings::default(),
        }
    }
}

pub const DEFAULT_SCIM_LISTEN: &str = "127.0.0.1:8081";

impl PraxisConfig {
    fn database_url(&self, explicit: &Option<String>, file: &str) -> String {
        explicit
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.data_dir.join(file).display()))
    }

    pub fn jwks_file(&self) -> PathBuf {
        self.data_dir.join("jwks.json")
    }

    fn service(&self, listen: &str, database_url: String) -> ServiceConfig {
        ServiceConfig {
            listen: listen.to_owned(),
            database_url,
            cache_url: self.cache_url.clone(),
            drain_seconds: self.drain_seconds,
            telemetry: self.telemetry.clone(),
            migrate_on_start: true,
            tls: self.tls.clone(),
            auth: AuthConfig {
                jwks_file: Some(self.jwks_file()),
                jwks_url: None,
                service_credentials: self.service_credentials.clone(),
                ..AuthConfig::default()
            },
        }
    }

    pub fn directory(&self) -> ServiceConfig {
        self.service(
            &self.directory.listen,
            self.database_url(&self.directory.database_url, "directory.db"),
        )
    }

    pub fn identity(&self) -> praxis_identity::IdentityConfig {
        praxis_identity::IdentityConfig {
            service: self.service(
                &self.identity.listen,
                self.database_url(&self.identity.database_url, "identity.db"),
            ),
            http_listen: self.identity.http_listen.clone(),
            jwks_out: Some(self.jwks_file()),
            encryption: praxis_identity::EncryptionConfig {
                key: self.identity.encryption_key.clone(),
                key_file: self.data_dir.join("identity-secrets.key"),
            },
            login: self.identity.login.clone(),
            sso: self.identity.sso.clone(),
            ..praxis_identity::IdentityConfig::default()
        }
    }

    pub fn authz(&self) -> ServiceConfig {
        self.service(
            &self.authz.listen,
            self.database_url(&self.authz.database_url, "authz.db"),
        )
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.directory().validate()?;
        self.identity().validate()?;
        self.authz().validate()
    }
}
