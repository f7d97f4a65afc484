//! The identity service. This first cut owns the access-token signing keys: it signs tokens,
//! publishes the JWK Set over gRPC and HTTP (`/.well-known/jwks.json`), and, in one-process
//! installs, writes the set to a file the other services verify with.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod api_keys;
pub mod audit_relay;
pub mod auth;
pub mod keys;
pub mod passwords;
pub mod resets;
/// Sealing moved to `praxis-runtime` so directory seals its LDAP bind secrets the same way.
pub use praxis_runtime::secrets;
pub mod sessions;
pub mod sso;
pub mod store;
pub mod totp;

mod grpc;
mod grpc_api_keys;
mod grpc_auth;
mod grpc_sso;
mod http;

use praxis_cache::{Cache, CacheProbe};
use praxis_proto::identity::v1::api_key_service_server::ApiKeyServiceServer;
use praxis_proto::identity::v1::auth_service_server::AuthServiceServer;
use praxis_proto::identity::v1::session_service_server::SessionServiceServer;
use praxis_proto::identity::v1::sso_service_server::SsoServiceServer;
use praxis_proto::identity::v1::token_service_server::TokenServiceServer;
use praxis_proto::identity::v1::two_factor_service_server::TwoFactorServiceServer;
use praxis_runtime::config::ServiceConfig;
use praxis_runtime::{ServiceHost, TokenVerifier};
use praxis_store::DatabaseProbe;
use praxis_store::sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use keys::{KeyRing, TokenSubject};

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50052";
/// Where directory announces its changes (directory's `REVISIONS_CHANNEL`).
const REVISIONS_CHANNEL: &str = "praxis:directory:revisions";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IdentityConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// Address of the HTTP endpoints (JWKS, SSO).
    pub http_listen: String,
    /// Where to write the JWK Set for services that read it from a file (one-process installs).
    pub jwks_out: Option<PathBuf>,
    /// Lifetime of access tokens, in seconds.
    pub access_token_seconds: i64,
    /// How long a retired signing key stays published, in seconds.
    pub key_overlap_seconds: i64,
    /// A new signing key takes over when the active one is this old (I5); 0 = never.
    pub key_rotation_days: i64,
    /// How secrets are sealed at rest (I9).
    pub encryption: EncryptionConfig,
    /// Lockout, throttling and challenge settings.
    pub login: auth::AuthSettings,
    /// The directory's gRPC address, where a standalone identity reads accounts.
    pub directory_url: String,
    /// Single sign-on (I6): identity's public URL and where logins may return to.
    pub sso: sso::SsoSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EncryptionConfig {
    /// 32 bytes, base64. Deployments set it from a secret (`PRAXIS_ENCRYPTION__KEY`).
    pub key: Option<String>,
    /// Otherwise, a file holding it, created on first start (the laptop default).
    pub key_file: PathBuf,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        Self {
            key: None,
            key_file: PathBuf::from(".praxis/identity-secrets.key"),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::with_defaults(DEFAULT_LISTEN, "identity.db"),
            http_listen: DEFAULT_HTTP_LISTEN.to_owned(),
            jwks_out: None,
            access_token_seconds: 900,
            key_overlap_seconds: 86_400,
            key_rotation_days: 30,
            encryption: EncryptionConfig::default(),
            login: auth::AuthSettings::default(),
            directory_url: "http://127.0.0.1:50051".to_owned(),
            sso: sso::SsoSettings::default(),
        }
    }
}

impl IdentityConfig {
    pub fn sealer(&self) -> Result<secrets::Sealer, secrets::SecretError> {
        secrets::Sealer::from_key_or_file(self.encryption.key.as_deref(), &self.encryption.key_file)
    }

    pub fn validate(&self) -> Result<(), praxis_runtime::config::ConfigError> {
        self.service.validate()?;
        self.http_listen
            .parse::<std::net::SocketAddr>()
            .map_err(|error| {
                praxis_runtime::config::ConfigError::new(format!(
                    "http_listen {:?}: {error}",
                    self.http_listen
                ))
            })?;
        if self.access_token_seconds < 60 || self.access_token_seconds > 3600 {
            return Err(praxis_runtime::config::ConfigError::new(
                "access_token_seconds must be between 60 and 3600",
            ));
        }
        if self.key_overlap_seconds < self.access_token_seconds {
            return Err(praxis_runtime::config::ConfigError::new(
                "key_overlap_seconds must be at least access_token_seconds, or tokens stop verifying early",
            ));
        }
        Ok(())
    }
}

pub struct IdentityService {
    pub keys: KeyRing,
    key_rotation: Option<chrono::Duration>,
    pub auth: Arc<auth::Authenticator>,
    pub sso: Arc<sso::Sso>,
    /// API keys (I7); also what checks them for this process's services.
    pub api_keys: Arc<api_keys::ApiKeys>,
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
    jwks_out: Option<PathBuf>,
}

/// Where identity reads who may log in.
pub enum AccountSource {
    /// The directory in this process.
    Given(Arc<dyn accounts::Accounts>),
    /// The directory at this gRPC URL, called with a service token identity signs itself.
    Directory(String),
}

/// Opens identity's database, seals and loads the signing keys, and sets up authentication
/// against `accounts` (the directory's view of who may log in).
pub async fn open(
    config: &IdentityConfig,
    cache: Arc<dyn Cache>,
    accounts: AccountSource,
) -> Result<IdentityService, StartError> {
    let db = praxis_store::connect(&config.service.database_url).await?;
    praxis_store::prepare::<store::migrations::Migrator>(&db, config.service.migrate_on_start)
        .await?;
    let keys = KeyRing::new(
        db.clone(),
        config.sealer()?,
        &config.service.auth.issuer,
        &config.service.auth.audience,
        chrono::Duration::seconds(config.key_overlap_seconds),
    );
    keys.ensure_active(chrono::Utc::now()).await?;
    let accounts: Arc<dyn accounts::Accounts> = match accounts {
        AccountSource::Given(accounts) => accounts,
        AccountSource::Directory(url) => Arc::new(accounts::GrpcAccounts::new(
            &url,
            keys.clone(),
            &config.service.tls,
        )?),
    };
    let api_keys = Arc::new(api_keys::ApiKeys::new(
        db.clone(),
        cache.clone(),
        accounts.clone(),
    ));
    let auth = Arc::new(auth::Authenticator::new(auth::AuthParts {
        db: db.clone(),
        keys: keys.clone(),
        accounts,
        cache: cache.clone(),
        sealer: config.sealer()?,
        settings: config.login.clone(),
        access_ttl: chrono::Duration::seconds(config.access_token_seconds),
    })?);
    let sso = Arc::new(sso::Sso::new(
        db.clone(),
        cache.clone(),
        config.sealer()?,
        auth.clone(),
        config.sso.clone(),
    )?);
    let service = IdentityService {
        sso,
        api_keys,
        key_rotation: (config.key_rotation_days > 0)
            .then(|| chrono::Duration::days(config.key_rotation_days)),
        keys,
        auth,
        db,
        cache,
        jwks_out: config.jwks_out.clone(),
    };
    service.publish_jwks_file().await?;
    Ok(service)
}

pub async fn migrate(database_url: &str) -> Result<(), StartError> {
    let db = praxis_store::connect(database_url).await?;
    praxis_store::migrate::<store::migrations::Migrator>(&db).await?;
    Ok(())
}

impl IdentityService {
    /// Writes the current JWK Set where file-configured verifiers read it; written to a temporary
    /// file and renamed, so a reader never sees half a file.
    pub async fn publish_jwks_file(&self) -> Result<(), StartError> {
        let Some(path) = &self.jwks_out else {
            return Ok(());
        };
        let set = self.keys.jwks(chrono::Utc::now()).await?;
        write_atomically(path, &serde_json::to_vec_pretty(&set)?).await?;
        Ok(())
    }

    pub fn host(&self, verifier: Arc<TokenVerifier>, drain: Duration) -> ServiceHost {
        let api = grpc::TokenApi {
            keys: self.keys.clone(),
        };
        let auth = grpc_auth::AuthApi {
            auth: self.auth.clone(),
            verifier: verifier.clone(),
        };
        let sso = grpc_sso::SsoApi {
            sso: self.sso.clone(),
        };
        let routes = Routes::new(TokenServiceServer::new(api))
            .add_service(AuthServiceServer::new(auth.clone()))
            .add_service(SessionServiceServer::new(auth.clone()))
            .add_service(TwoFactorServiceServer::new(auth))
            .add_service(SsoServiceServer::new(sso))
            .add_service(ApiKeyServiceServer::new(grpc_api_keys::ApiKeyApi {
                keys: self.api_keys.clone(),
            }));
        let names = vec![
            <TokenServiceServer<grpc::TokenApi> as NamedService>::NAME,
            <AuthServiceServer<grpc_auth::AuthApi> as NamedService>::NAME,
            <SessionServiceServer<grpc_auth::AuthApi> as NamedService>::NAME,
            <TwoFactorServiceServer<grpc_auth::AuthApi> as NamedService>::NAME,
            <SsoServiceServer<grpc_sso::SsoApi> as NamedService>::NAME,
            <ApiKeyServiceServer<grpc_api_keys::ApiKeyApi> as NamedService>::NAME,
        ];
        let mut host = ServiceHost::new("identity", routes, names, verifier)
            .public_method(grpc::GET_JWKS_PATH);
        for method in grpc_auth::PUBLIC_METHODS
            .iter()
            .chain(&grpc_sso::PUBLIC_METHODS)
        {
            host = host.public_method(method);
        }
        host.probe(Arc::new(DatabaseProbe(self.db.clone())))
            .probe(Arc::new(CacheProbe(self.cache.clone())))
            .drain(drain)
    }

    /// Rotates the signing key when it is due (one replica at a time, through a cache lock)
    /// and republishes the JWK Set file; returns the new key's id.
    pub async fn rotate_keys_if_due(&self) -> Result<Option<String>, StartError> {
        let Some(max_age) = self.key_rotation else {
            return Ok(None);
        };
        let locked = self
            .cache
            .set_if_absent(
                "praxis:identity:key-rotation",
                b"1",
                Duration::from_secs(60),
            )
            .await?;
        if !locked {
            return Ok(None);
        }
        let rotated = self.keys.rotate_if_due(chrono::Utc::now(), max_age).await?;
        // Also drops retired keys past their overlap from the file.
        self.publish_jwks_file().await?;
        Ok(rotated)
    }

    /// Relays identity's outbox (reset links) to `notifier`, rotates signing keys when due, and
    /// ends the sessions of users directory disabled (on its announcements, and every 30 s),
    /// until `shutdown`.
    pub fn spawn_workers(
        self: &Arc<Self>,
        notifier: Arc<dyn praxis_runtime::notify::Notifier>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut rotation = tokio::time::interval(Duration::from_secs(3600));
            let mut sweep = tokio::time::interval(Duration::from_secs(30));
            // Directory announces every change; a change may be a user disabled (D14).
            let mut changes = service.cache.subscribe(REVISIONS_CHANNEL).await.ok();
            // The audit relay backs off while directory is away, up to 30 s between tries.
            let mut audit_backoff = Duration::ZERO;
            let mut audit_next = tokio::time::Instant::now();
            loop {
                let changed = async {
                    match changes.as_mut() {
                        Some(subscription) => subscription.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    notice = changed => {
                        // The subscription ended: what it would have said is lost, so everyone.
                        let notice = notice.unwrap_or_else(|| {
                            changes = None;
                            praxis_cache::Notice::Gap
                        });
                        // A busy enterprise announces hundreds of revisions a second: one
                        // sweep answers all the announcements of a short while (a session of a
                        // disabled user then ends a tenth of a second later, not at once).
                        tokio::time::sleep(SWEEP_GATHERING).await;
                        let waiting = std::iter::from_fn(|| changes.as_mut()?.ready());
                        let sweeps = match Sweep::of(std::iter::once(notice).chain(waiting)) {
                            Sweep::Everyone => vec![None],
                            Sweep::Enterprises(ids) => ids.into_iter().map(Some).collect(),
                        };
                        for enterprise in sweeps {
                            if let Err(error) = service
                                .auth
                                .end_sessions_of_inactive_users(enterprise.as_deref())
                                .await
                            {
                                tracing::warn!(%error, "ending sessions of inactive users failed");
                            }
                        }
                    }
                    _ = sweep.tick() => {
                        if changes.is_none() {
                            changes = service.cache.subscribe(REVISIONS_CHANNEL).await.ok();
                        }
                        if let Err(error) = service.auth.end_sessions_of_inactive_users(None).await {
                            tracing::warn!(%error, "ending sessions of inactive users failed");
                        }
                    }
                    _ = rotation.tick() => {
                        match service.rotate_keys_if_due().await {
                            Ok(Some(kid)) => tracing::info!(%kid, "signing key rotated on schedule"),
                            Ok(None) => {}
                            Err(error) => tracing::warn!(%error, "signing key rotation failed; retrying"),
                        }
                    }
                    _ = tick.tick() => {
                        if let Err(error) = service
                            .auth
                            .relay_notifications(notifier.as_ref(), chrono::Utc::now())
                            .await
                        {
                            tracing::warn!(%error, "identity outbox relay failed; retrying");
                        }
                        if tokio::time::Instant::now() >= audit_next {
                            match audit_relay::relay_once(&service.db, service.auth.accounts()).await {
                                Ok(_) => audit_backoff = Duration::ZERO,
                                Err(error) => {
                                    audit_backoff = (audit_backoff * 2)
                                        .clamp(Duration::from_secs(1), Duration::from_secs(30));
                                    tracing::warn!(%error, retry_in = ?audit_backoff, "audit events not delivered yet; they wait in the outbox");
                                }
                            }
                            audit_next = tokio::time::Instant::now() + audit_backoff;
                        }
                    }
                }
            }
        })
    }

    /// The HTTP endpoints, served until `shutdown`; over TLS when `tls` is given.
    pub async fn serve_http(
        &self,
        listener: tokio::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), StartError> {
        http::serve(
            self.keys.clone(),
            self.sso.clone(),
            self.api_keys.clone(),
            listener,
            tls,
            shutdown,
        )
        .await
    }
}

/// How long announcements are gathered into one sweep for sessions of disabled users.
const SWEEP_GATHERING: Duration = Duration::from_millis(100);

/// Whose sessions directory's announcements call for checking.
#[derive(Debug, PartialEq, Eq)]
enum Sweep {
    /// Announcements may have been lost, or one concerned every enterprise.
    Everyone,
    Enterprises(std::collections::BTreeSet<String>),
}

impl Sweep {
    fn of(notices: impl Iterator<Item = praxis_cache::Notice>) -> Self {
        let mut enterprises = std::collections::BTreeSet::new();
        for notice in notices {
            let enterprise = match notice {
                praxis_cache::Notice::Message(bytes) => {
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("enterprise_id")?.as_str().map(str::to_owned))
                        .filter(|id| id != "*")
                }
                praxis_cache::Notice::Gap => None,
            };
            let Some(enterprise) = enterprise else {
                return Sweep::Everyone;
            };
            enterprises.insert(enterprise);
        }
        Sweep::Enterprises(enterprises)
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    // A name of its own: another writer of the same file (a CLI beside the server) must not
    // rename this one's half-written file away.
    let temporary = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, path).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(enterprise_id: &str, revision: i64) -> praxis_cache::Notice {
        praxis_cache::Notice::Message(
            serde_json::json!({"enterprise_id": enterprise_id, "revision": revision})
                .to_string()
                .into_bytes(),
        )
    }

    /// D14: a storm of announcements asks for one sweep per enterprise named, and anything
    /// that may hide a change (a gap, every enterprise, an unreadable notice) for a sweep of all.
    #[test]
    fn d14_announcements_waiting_together_make_one_sweep_per_enterprise() {
        let storm = (1..=300)
            .map(|revision| announced(if revision % 3 == 0 { "e-2" } else { "e-1" }, revision));
        assert_eq!(
            Sweep::of(storm),
            Sweep::Enterprises(["e-1".to_owned(), "e-2".to_owned()].into())
        );
        for hiding in [
            praxis_cache::Notice::Gap,
            announced("*", 0),
            praxis_cache::Notice::Message(b"not json".to_vec()),
        ] {
            let notices = [announced("e-1", 1), hiding, announced("e-2", 2)];
            assert_eq!(Sweep::of(notices.into_iter()), Sweep::Everyone);
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides the closure's error type
    fn the_passkey_relying_party_comes_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PRAXIS_LOGIN__WEBAUTHN__RP_ID", "clinic.example");
            jail.set_env(
                "PRAXIS_LOGIN__WEBAUTHN__ORIGINS",
                "[\"https://login.clinic.example\", \"https://app.clinic.example\"]",
            );
            jail.set_env("PRAXIS_LOGIN__WEBAUTHN__ALLOW_ANY_PORT", "false");
            let config: IdentityConfig =
                praxis_runtime::config::load(None).map_err(|e| e.to_string())?;
            let webauthn = &config.login.webauthn;
            assert_eq!(webauthn.rp_id, "clinic.example");
            assert_eq!(
                webauthn.origins,
                ["https://login.clinic.example", "https://app.clinic.example"]
            );
            assert!(!webauthn.allow_any_port);
            Ok(())
        });
    }
}
