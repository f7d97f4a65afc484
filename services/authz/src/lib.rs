//! The authz service: answers Check from directory data. `open` takes the principal source, so
//! the all-in-one binary passes the directory in process and the standalone binary a gRPC client.
#![forbid(unsafe_code)]

pub mod domain;
pub mod migrations;
pub mod principals;

mod grpc;

use praxis_cache::{Cache, CacheProbe};
use praxis_proto::authz::v1::authz_service_server::AuthzServiceServer;
use praxis_runtime::config::ServiceConfig;
use praxis_runtime::{ServiceHost, TokenVerifier};
use praxis_store::DatabaseProbe;
use praxis_store::sea_orm::DatabaseConnection;
use principals::PrincipalSource;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
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
}

impl Default for AuthzConfig {
    fn default() -> Self {
        Self {
            service: ServiceConfig::with_defaults(DEFAULT_LISTEN, "authz.db"),
            directory_url: "http://127.0.0.1:50051".to_owned(),
        }
    }
}

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub struct AuthzService {
    principals: Arc<dyn PrincipalSource>,
    db: DatabaseConnection,
    cache: Arc<dyn Cache>,
}

/// Authz's own database holds no tables yet (grants and elevations will live there); it is
/// opened, migrated and watched from the start so deployments and health checks include it.
pub async fn open(
    config: &ServiceConfig,
    principals: Arc<dyn PrincipalSource>,
    cache: Arc<dyn Cache>,
) -> Result<AuthzService, StartError> {
    let db = praxis_store::connect(&config.database_url).await?;
    praxis_store::prepare::<migrations::Migrator>(&db, config.migrate_on_start).await?;
    Ok(AuthzService {
        principals,
        db,
        cache,
    })
}

impl AuthzService {
    pub fn host(&self, verifier: Arc<TokenVerifier>, drain: Duration) -> ServiceHost {
        let api = grpc::AuthzApi {
            principals: self.principals.clone(),
        };
        let routes = Routes::new(AuthzServiceServer::new(api));
        let names = vec![<AuthzServiceServer<grpc::AuthzApi> as NamedService>::NAME];
        ServiceHost::new("authz", routes, names, verifier)
            .probe(Arc::new(DatabaseProbe(self.db.clone())))
            .probe(Arc::new(CacheProbe(self.cache.clone())))
            .drain(drain)
    }
}
