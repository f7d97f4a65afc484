//! The directory service: the system of record for enterprises, practices, lines, resources and
//! users. `open` wires config → store → domain; `host` puts the gRPC surface on a
//! [`ServiceHost`]. The standalone binary and the all-in-one `praxis` both use these.
#![forbid(unsafe_code)]

pub mod domain;
pub mod grpc;
pub mod ldap;
pub mod scim;
pub mod store;

use praxis_cache::{Cache, CacheProbe};
use praxis_proto::audit::v1::audit_service_server::AuditServiceServer;
use praxis_proto::directory::v1::access_service_server::AccessServiceServer;
use praxis_proto::directory::v1::account_service_server::AccountServiceServer;
use praxis_proto::directory::v1::directory_sync_service_server::DirectorySyncServiceServer;
use praxis_proto::directory::v1::email_domain_service_server::EmailDomainServiceServer;
use praxis_proto::directory::v1::enterprise_service_server::EnterpriseServiceServer;
use praxis_proto::directory::v1::person_service_server::PersonServiceServer;
use praxis_proto::directory::v1::practice_service_server::PracticeServiceServer;
use praxis_proto::directory::v1::role_binding_service_server::RoleBindingServiceServer;
use praxis_proto::directory::v1::role_service_server::RoleServiceServer;
use praxis_proto::directory::v1::user_service_server::UserServiceServer;
use praxis_runtime::config::ServiceConfig;
use praxis_runtime::{ServiceHost, TokenVerifier};
use praxis_store::DatabaseProbe;
use praxis_store::sea_orm::DatabaseConnection;
use std::sync::Arc;
use std::time::Duration;
use tonic::server::NamedService;
use tonic::service::Routes;

pub use domain::Directory;

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Where the directory announces each committed revision, as JSON
/// `{"enterprise_id": "…", "revision": 42}`; `"*"` means announcements were lost and every
/// enterprise must be treated as changed.
pub const REVISIONS_CHANNEL: &str = "praxis:directory:revisions";

/// The `[encryption]` section of a directory's config (`PRAXIS_ENCRYPTION__KEY`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EncryptionSettings {
    /// 32 bytes, base64; deployments pass it from a secret.
    pub key: Option<String>,
    /// Otherwise a file holding it, created on first start.
    pub key_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EncryptionFileConfig {
    pub encryption: EncryptionSettings,
}

pub fn default_config() -> ServiceConfig {
    ServiceConfig::with_defaults(DEFAULT_LISTEN, "directory.db")
}

/// Connections of their own for principal snapshots on PostgreSQL, opened when first needed.
/// A cold Check waits for a snapshot, and the writers of one enterprise, queued behind its row
/// lock, each hold a connection of the main pool until the one ahead commits: with 16 writers
/// in flight a snapshot waited for one of them to commit (measured: the cold Check's p50 went
/// from 4.6–5.2 to 3.4–3.8 ms with these, its p99 from 10.2–11.5 to 7.6–9.8 ms).
pub const SNAPSHOT_READ_CONNECTIONS: u32 = 4;

/// A directory ready to serve: migrated database, open cache.
pub struct DirectoryService {
    pub directory: Directory,
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
}

pub async fn open(
    config: &ServiceConfig,
    cache: Arc<dyn Cache>,
) -> Result<DirectoryService, StartError> {
    let db = praxis_store::connect(&config.database_url).await?;
    praxis_store::prepare::<store::migrations::Migrator>(&db, config.migrate_on_start).await?;
    let mut store = store::Store::new(db.clone());
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        let mut options = sea_orm::ConnectOptions::new(config.database_url.clone());
        options
            .max_connections(SNAPSHOT_READ_CONNECTIONS)
            .connect_lazy(true);
        store = store.with_snapshot_reads(praxis_store::connect_with(options).await?);
    }
    let directory = Directory::new(store);
    Ok(DirectoryService {
        directory,
        db,
        cache,
    })
}

/// Applies the directory's migrations and nothing else (`praxis migrate`).
pub async fn migrate(database_url: &str) -> Result<(), StartError> {
    let db = praxis_store::connect(database_url).await?;
    praxis_store::migrate::<store::migrations::Migrator>(&db).await?;
    Ok(())
}

impl DirectoryService {
    /// Audit retention (AU3): the checkpoint key (from `settings`, else `default_key_file`,
    /// created on first start) and where archives go.
    pub fn with_audit(
        mut self,
        settings: &domain::retention::AuditSettings,
        default_key_file: &std::path::Path,
    ) -> Result<Self, StartError> {
        let key = domain::retention::CheckpointKey::from_settings(settings, default_key_file)?;
        self.directory = self.directory.with_audit(key, settings.archive_dir.clone());
        Ok(self)
    }

    /// The key connectors' secrets (LDAP bind passwords) are sealed with: `settings.key`, else
    /// the file (created on first start). Without either, directory runs but refuses to store
    /// a bind password (FAILED_PRECONDITION NO_SECRETS_KEY).
    pub fn with_secrets(
        mut self,
        settings: &EncryptionSettings,
        default_key_file: &std::path::Path,
    ) -> Result<Self, StartError> {
        use praxis_runtime::secrets::{Sealer, SecretError};
        let file = settings.key_file.as_deref().unwrap_or(default_key_file);
        let sealer = match Sealer::from_key_or_file(settings.key.as_deref(), file) {
            Ok(sealer) => sealer,
            // A key file that cannot be made (a read-only disk) leaves directory without one;
            // a bad key given in configuration does not start.
            Err(error @ SecretError::KeyFile(..)) => {
                tracing::warn!(%error, "no secrets key: LDAP bind passwords cannot be stored");
                return Ok(self);
            }
            Err(error) => return Err(error.into()),
        };
        self.directory = self.directory.with_sealer(sealer);
        Ok(self)
    }

    /// Background work until `shutdown`: revision announcements on the cache's pub/sub, the
    /// outbox relay to `notifier`, alert announcements, and the hourly audit retention (AU3)
    /// and inactivity sweep (D19), and LDAP syncs on their schedules.
    pub fn spawn_workers(
        &self,
        notifier: Arc<dyn domain::notifier::Notifier>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let announcer = {
            let mut revisions = self.directory.store().revisions();
            let cache = self.cache.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        next = revisions.recv() => next,
                    };
                    let message = match next {
                        Ok((enterprise_id, revision)) => {
                            serde_json::json!({"enterprise_id": enterprise_id.0, "revision": revision})
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(
                                missed,
                                "revision announcements fell behind; announcing a full flush"
                            );
                            serde_json::json!({"enterprise_id": "*", "revision": 0})
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    };
                    if let Err(error) = cache
                        .publish(REVISIONS_CHANNEL, message.to_string().as_bytes())
                        .await
                    {
                        tracing::warn!(%error, "cannot announce a revision; caches fall back to their time bound");
                    }
                }
            })
        };
        let relay = {
            let directory = self.directory.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match directory
                        .relay_outbox(notifier.as_ref(), chrono::Utc::now())
                        .await
                    {
                        // A full batch: more are waiting (a bulk import's invitations), so
                        // they go out now rather than a batch every two seconds; a shutdown
                        // still stops the relay between batches, not after the backlog.
                        Ok(delivered)
                            if delivered >= domain::notifier::OUTBOX_BATCH
                                && !shutdown.is_cancelled() =>
                        {
                            continue;
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "outbox relay failed; retrying"),
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            })
        };
        let alerts = {
            let mut raised = self.directory.alerts();
            let cache = self.cache.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        next = raised.recv() => next,
                    };
                    match next {
                        Ok(alert) => grpc::audit::publish(cache.as_ref(), &[alert]).await,
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(
                                missed,
                                "alert announcements fell behind; the trail has them"
                            );
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            })
        };
        let sweeper = {
            let directory = self.directory.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match directory.apply_audit_retention(chrono::Utc::now()).await {
                        Ok(runs) => {
                            for run in runs {
                                tracing::info!(
                                    enterprise = %run.enterprise_id,
                                    archived = run.archived,
                                    checkpoint = run.checkpoint_seq,
                                    archive = %run.archive.display(),
                                    "audit events archived and removed behind a checkpoint"
                                );
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, "audit retention failed; retrying next round")
                        }
                    }
                    match directory.disable_inactive_users(chrono::Utc::now()).await {
                        Ok(0) => {}
                        Ok(disabled) => tracing::info!(
                            disabled,
                            "disabled accounts idle past their enterprise's limit"
                        ),
                        Err(error) => {
                            tracing::warn!(%error, "inactivity sweep failed; retrying next round")
                        }
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    }
                }
            })
        };
        let ldap = {
            let directory = self.directory.clone();
            tokio::spawn(async move {
                loop {
                    run_due_ldap_syncs(&directory).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(LDAP_SCHEDULE_TICK) => {}
                    }
                }
            })
        };
        vec![announcer, relay, sweeper, alerts, ldap]
    }

    pub fn host(&self, verifier: Arc<TokenVerifier>, drain: Duration) -> ServiceHost {
        let routes = Routes::new(EnterpriseServiceServer::new(grpc::EnterpriseApi {
            directory: self.directory.clone(),
        }))
        .add_service(PracticeServiceServer::new(grpc::PracticeApi {
            directory: self.directory.clone(),
        }))
        .add_service(UserServiceServer::new(grpc::UserApi {
            directory: self.directory.clone(),
        }))
        .add_service(EmailDomainServiceServer::new(grpc::EmailDomainApi {
            directory: self.directory.clone(),
        }))
        .add_service(PersonServiceServer::new(grpc::PersonApi {
            directory: self.directory.clone(),
        }))
        .add_service(RoleServiceServer::new(grpc::RoleApi {
            directory: self.directory.clone(),
        }))
        .add_service(RoleBindingServiceServer::new(grpc::RoleBindingApi {
            directory: self.directory.clone(),
        }))
        .add_service(AccountServiceServer::new(grpc::AccountApi {
            directory: self.directory.clone(),
        }))
        .add_service(AccessServiceServer::new(grpc::AccessApi {
            directory: self.directory.clone(),
        }))
        .add_service(AuditServiceServer::new(grpc::AuditApi {
            directory: self.directory.clone(),
            cache: self.cache.clone(),
        }))
        .add_service(DirectorySyncServiceServer::new(grpc::DirectorySyncApi {
            directory: self.directory.clone(),
        }));
        let names = vec![
            <EnterpriseServiceServer<grpc::EnterpriseApi> as NamedService>::NAME,
            <PracticeServiceServer<grpc::PracticeApi> as NamedService>::NAME,
            <UserServiceServer<grpc::UserApi> as NamedService>::NAME,
            <EmailDomainServiceServer<grpc::EmailDomainApi> as NamedService>::NAME,
            <PersonServiceServer<grpc::PersonApi> as NamedService>::NAME,
            <RoleServiceServer<grpc::RoleApi> as NamedService>::NAME,
            <RoleBindingServiceServer<grpc::RoleBindingApi> as NamedService>::NAME,
            <AccountServiceServer<grpc::AccountApi> as NamedService>::NAME,
            <AccessServiceServer<grpc::AccessApi> as NamedService>::NAME,
            <AuditServiceServer<grpc::AuditApi> as NamedService>::NAME,
            <DirectorySyncServiceServer<grpc::DirectorySyncApi> as NamedService>::NAME,
        ];
        ServiceHost::new("directory", routes, names, verifier)
            .probe(Arc::new(DatabaseProbe(self.db.clone())))
            .probe(Arc::new(CacheProbe(self.cache.clone())))
            .drain(drain)
    }
}

/// How often the scheduler looks for LDAP syncs that are due.
const LDAP_SCHEDULE_TICK: Duration = Duration::from_secs(60);

/// Runs every LDAP sync whose time has come, one after another; a run another replica holds
/// is skipped.
pub async fn run_due_ldap_syncs(directory: &Directory) {
    let due = match directory.due_ldap_syncs(chrono::Utc::now()).await {
        Ok(due) => due,
        Err(error) => {
            tracing::warn!(%error, "cannot look for due LDAP syncs; retrying next round");
            return;
        }
    };
    for enterprise_id in due {
        match directory
            .run_ldap_sync(&enterprise_id, "schedule", &ldap::Ldap3Reader)
            .await
        {
            Ok(_) | Err(domain::DomainError::FailedPrecondition { .. }) => {}
            Err(error) => {
                tracing::warn!(enterprise = %enterprise_id.0, %error, "scheduled LDAP sync failed")
            }
        }
    }
}
