//! The authz service: Cedar decisions over directory data (A1–A3, A6–A8). `open` takes the
//! principal source, so the all-in-one binary passes the directory in process and the standalone
//! binary a gRPC client.
#![forbid(unsafe_code)]

pub mod audit;
pub mod book;
pub mod engine;
pub mod lookup;
pub mod migrations;
pub mod model;
pub mod policies;
pub mod principal;
pub mod principals;
pub mod snapshots;

mod grpc;

use praxis_cache::{Cache, CacheProbe};
use praxis_proto::authz::v1::authz_service_server::AuthzServiceServer;
use praxis_proto::authz::v1::policy_service_server::PolicyServiceServer;
use praxis_runtime::config::ServiceConfig;
use praxis_runtime::{ServiceHost, TokenVerifier};
use praxis_store::DatabaseProbe;
use praxis_store::sea_orm::DatabaseConnection;
use principals::PrincipalSource;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::Routes;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50053";

/// Applies authz's migrations and nothing else.
pub async fn migrate(database_url: &str) -> Result<(), StartError> {
    let db = praxis_store::connect(database_url).await?;
    praxis_store::migrate::<migrations::Migrator>(&db).await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthzConfig {
    #[serde(flatten)]
    pub service: ServiceConfig,
    /// The directory's gRPC address (standalone deployments).
    pub directory_url: String,
    #[serde(flatten)]
    pub decisions: DecisionSettings,
    /// Tokio worker threads; 0 = one per core, 1 = a current-thread runtime (on two cores the
    /// single-threaded shape has the lower tail latency).
    pub worker_threads: usize,
    /// The shared secret directory knows as `auth.service_credentials.authz`: the audit relay
    /// delivers with it. Unset, audit events wait in the outbox.
    pub audit_credential: Option<praxis_runtime::config::ServiceSecret>,
}

/// How fresh decisions are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DecisionSettings {
    /// Longest a cached principal snapshot or policy set is trusted without confirming the
    /// enterprise's revision: the bound on staleness after a directory write when revision
    /// announcements are lost. Announcements normally make it milliseconds.
    pub max_staleness_ms: u64,
}

impl Default for DecisionSettings {
    fn default() -> Self {
        Self {
            max_staleness_ms: 1000,
        }
    }
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::with_defaults(DEFAULT_LISTEN, "authz.db"),
            directory_url: "http://127.0.0.1:50051".to_owned(),
            decisions: DecisionSettings::default(),
            worker_threads: 0,
            audit_credential: None,
        }
    }
}

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub struct AuthzService {
    api: grpc::AuthzApi,
    policies: grpc::PolicyApi,
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
}

/// Opens authz's database (custom policies), loads the Cedar model and sets up the caches.
pub async fn open(
    config: &ServiceConfig,
    decisions: &DecisionSettings,
    principals: Arc<dyn PrincipalSource>,
    cache: Arc<dyn Cache>,
) -> Result<AuthzService, StartError> {
    let db = praxis_store::connect(&config.database_url).await?;
    praxis_store::prepare::<migrations::Migrator>(&db, config.migrate_on_start).await?;
    let model = Arc::new(model::Model::load()?);
    let staleness = Duration::from_millis(decisions.max_staleness_ms);
    let store = policies::PolicyStore::new(db.clone());
    let books = Arc::new(policies::Books::new(
        store.clone(),
        model.clone(),
        staleness,
    ));
    let snapshots = Arc::new(snapshots::Snapshots::new(
        principals,
        cache.clone(),
        staleness,
    ));
    Ok(AuthzService {
        api: grpc::AuthzApi {
            model: model.clone(),
            snapshots,
            books: books.clone(),
            db: db.clone(),
        },
        policies: grpc::PolicyApi {
            model,
            store,
            books,
        },
        db,
        cache,
    })
}

impl AuthzService {
    pub fn host(&self, verifier: Arc<TokenVerifier>, drain: Duration) -> ServiceHost {
        let routes = Routes::new(AuthzServiceServer::new(self.api.clone()))
            .add_service(PolicyServiceServer::new(self.policies.clone()));
        let names = vec![
            <AuthzServiceServer<grpc::AuthzApi> as NamedService>::NAME,
            <PolicyServiceServer<grpc::PolicyApi> as NamedService>::NAME,
        ];
        ServiceHost::new("authz", routes, names, verifier)
            .probe(Arc::new(DatabaseProbe(self.db.clone())))
            .probe(Arc::new(CacheProbe(self.cache.clone())))
            .drain(drain)
    }

    /// Follows directory's revision announcements until `shutdown`.
    /// Follows directory's revisions; with a `sink`, also relays the audit outbox to it.
    pub fn spawn_workers(
        &self,
        shutdown: CancellationToken,
        sink: Option<Arc<dyn audit::AuditSink>>,
    ) -> tokio::task::JoinHandle<()> {
        let follower = tokio::spawn(self.api.snapshots.clone().follow(shutdown.clone()));
        let Some(sink) = sink else {
            tracing::warn!(
                "authz has no audit trail to deliver to yet; its events wait in the outbox"
            );
            return follower;
        };
        let db = self.db.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::ZERO;
            loop {
                match audit::relay_once(&db, sink.as_ref()).await {
                    Ok(_) => backoff = Duration::ZERO,
                    Err(error) => {
                        backoff =
                            (backoff * 2).clamp(Duration::from_secs(1), Duration::from_secs(30));
                        tracing::warn!(%error, retry_in = ?backoff, "authz audit events not delivered yet");
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(backoff.max(Duration::from_millis(500))) => {}
                }
            }
            let _ = follower.await;
        })
    }

    /// The principal cache, for fault drills in tests.
    pub fn snapshots(&self) -> Arc<snapshots::Snapshots> {
        self.api.snapshots.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail decides the closure's error type
    fn decision_settings_come_from_the_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("authz.toml", "worker_threads = 1\n")?;
            jail.set_env("PRAXIS_MAX_STALENESS_MS", "250");
            let config: AuthzConfig =
                praxis_runtime::config::load(Some(std::path::Path::new("authz.toml")))
                    .map_err(|e| e.to_string())?;
            assert_eq!(config.decisions.max_staleness_ms, 250);
            assert_eq!(config.worker_threads, 1);
            assert_eq!(config.service.listen, DEFAULT_LISTEN);
            Ok(())
        });
    }
}
