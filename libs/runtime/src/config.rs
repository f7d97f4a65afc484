//! Configuration: defaults that run on a laptop, then a TOML file, then `PRAXIS_*` variables
//! (nested keys joined by `__`, e.g. `PRAXIS_AUTH__JWKS_URL`). Parsed completely before any port
//! is bound, so every mistake is reported at start.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Loads `T` from its defaults, the optional TOML file and the environment.
pub fn load<T: DeserializeOwned + Serialize + Default>(
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    load_over(T::default(), file)
}

/// Like [`load`], with the defaults given (each service has its own port and database file).
pub fn load_over<T: DeserializeOwned + Serialize>(
    defaults: T,
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError(format!(
                "config file {} does not exist",
                path.display()
            )));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment
        .merge(Env::prefixed("PRAXIS_").split("__"))
        .extract()
        .map_err(|error| ConfigError(error.to_string()))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    /// `tracing` filter directives, as in `RUST_LOG` (which wins when set).
    pub log_filter: String,
    /// Where to serve Prometheus metrics (`GET /metrics`); off when unset.
    pub metrics_listen: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Json,
            log_filter: "info".to_owned(),
            metrics_listen: None,
        }
    }
}

/// Where the keys that verify callers' bearer tokens come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// A JWK Set served over HTTP (identity's `/.well-known/jwks.json`).
    pub jwks_url: Option<String>,
    /// A JWK Set on disk (the one-process install, where identity writes it); wins over the URL.
    pub jwks_file: Option<PathBuf>,
    pub issuer: String,
    pub audience: String,
    /// Shared secrets by which Praxis services call each other where no token is at hand
    /// (authz's audit relay): a caller presenting one is the service `service:<name>`.
    pub service_credentials: std::collections::BTreeMap<String, ServiceSecret>,
    /// Identity's `POST /api-keys/verify`, where API keys (`Bearer prx_…`) are checked (I7);
    /// unset: API keys are refused (in one process, identity checks them directly).
    pub api_key_url: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_url: None,
            jwks_file: None,
            api_key_url: None,
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            service_credentials: std::collections::BTreeMap::new(),
        }
    }
}

/// A secret in configuration: never shown by `Debug`, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceSecret(pub String);

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Identity's JWK Set when it runs on the same machine with its defaults.
pub const DEFAULT_JWKS_URL: &str = "http://127.0.0.1:8080/.well-known/jwks.json";
pub const DEFAULT_ISSUER: &str = "praxis-identity";
pub const DEFAULT_AUDIENCE: &str = "praxis";

impl AuthConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let file = self
            .jwks_file
            .as_ref()
            .filter(|path| !path.as_os_str().is_empty());
        let url = self.jwks_url.as_ref().filter(|url| !url.is_empty());
        if file.is_none() && url.is_none() {
            return Err(ConfigError::new(
                "auth: set auth.jwks_url or auth.jwks_file",
            ));
        }
        Ok(())
    }
}

/// The part of every service's configuration that is the same across services.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    /// Address the gRPC server binds.
    pub listen: String,
    /// sea-orm URL: `sqlite://path?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// `memory` or a Redis URL; several comma-separated `redis://` URLs mean a Redis Cluster.
    pub cache_url: String,
    /// Seconds to wait for in-flight calls after SIGTERM before giving up.
    pub drain_seconds: u64,
    pub telemetry: TelemetryConfig,
    pub auth: AuthConfig,
    /// Apply pending migrations at start. Deployments that migrate in a separate step first
    /// (the Helm chart's hook Jobs) turn it off, so replicas never race each other.
    pub migrate_on_start: bool,
    /// TLS for this service's listeners and its `https://` calls to other services.
    pub tls: crate::tls::TlsConfig,
}

impl ServiceConfig {
    pub fn with_defaults(listen: &str, database_file: &str) -> Self {
        Self {
            listen: listen.to_owned(),
            database_url: format!("sqlite://.praxis/{database_file}?mode=rwc"),
            cache_url: "memory".to_owned(),
            drain_seconds: 20,
            telemetry: TelemetryConfig::default(),
            auth: AuthConfig {
                jwks_url: Some(DEFAULT_JWKS_URL.to_owned()),
                ..AuthConfig::default()
            },
            migrate_on_start: true,
            tls: crate::tls::TlsConfig::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|error| ConfigError(format!("listen {:?}: {error}", self.listen)))?;
        if let Some(metrics) = &self.telemetry.metrics_listen {
            metrics.parse::<std::net::SocketAddr>().map_err(|error| {
                ConfigError(format!("telemetry.metrics_listen {metrics:?}: {error}"))
            })?;
        }
        if self.database_url.is_empty() {
            return Err(ConfigError::new("database_url is empty"));
        }
        self.tls
            .validate()
            .map_err(|error| ConfigError(error.to_string()))?;
        self.auth.validate()
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self::with_defaults("127.0.0.1:50051", "praxis.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides the closure's error type
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "praxis.toml",
                "listen = \"127.0.0.1:7000\"\n[auth]\njwks_url = \"http://x/jwks\"\n",
            )?;
            jail.set_env("PRAXIS_CACHE_URL", "redis://127.0.0.1:6379");
            jail.set_env("PRAXIS_TELEMETRY__LOG_FORMAT", "pretty");
            let config: ServiceConfig =
                load(Some(Path::new("praxis.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(config.listen, "127.0.0.1:7000");
            assert_eq!(config.cache_url, "redis://127.0.0.1:6379");
            assert_eq!(config.telemetry.log_format, LogFormat::Pretty);
            assert_eq!(config.auth.jwks_url.as_deref(), Some("http://x/jwks"));
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_reported_before_start() {
        let config = ServiceConfig {
            listen: "not an address".to_owned(),
            ..ServiceConfig::default()
        };
        let error = config
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("listen"), "{error}");
        let neither = AuthConfig {
            jwks_url: Some(String::new()),
            jwks_file: None,
            ..AuthConfig::default()
        };
        assert!(neither.validate().is_err());
        assert!(load::<ServiceConfig>(Some(Path::new("/nonexistent/praxis.toml"))).is_err());
    }
}
