//! Test kit: starts a real Praxis install on loopback ports with fresh databases, once per
//! backend this run has (SQLite + memory always; PostgreSQL + Redis when CI provides them),
//! and signs tokens with that install's own identity keys.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use praxis::config::PraxisConfig;
use praxis::{Addresses, TokenFor};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub const REDIS_URL_VAR: &str = "PRAXIS_TEST_REDIS_URL";

pub struct Install {
    /// `sqlite+memory`, `postgres+redis`, … for assertion messages.
    pub backend: String,
    pub addresses: Addresses,
    pub config: PraxisConfig,
    pub directory: praxis_directory::Directory,
    pub identity: std::sync::Arc<praxis_identity::auth::Authenticator>,
    pub cache: std::sync::Arc<dyn praxis_cache::Cache>,
    /// Receives what the directory's outbox relay delivers (invitations).
    pub notifier: std::sync::Arc<praxis_directory::domain::notifier::MemoryNotifier>,
    shutdown: CancellationToken,
    running: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Install {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn loopback_any_port(config: &mut PraxisConfig) {
    config.directory.listen = "127.0.0.1:0".into();
    config.identity.listen = "127.0.0.1:0".into();
    config.identity.http_listen = "127.0.0.1:0".into();
    config.authz.listen = "127.0.0.1:0".into();
    config.scim_listen = "127.0.0.1:0".into();
}

/// One install per backend available to this run.
pub async fn installs() -> Vec<Install> {
    let mut installs = vec![start(false).await];
    if std::env::var(praxis_store::testing::DATABASE_URL_VAR).is_ok_and(|url| !url.is_empty()) {
        installs.push(start(true).await);
    }
    installs
}

pub async fn start(postgres: bool) -> Install {
    start_configured(postgres, |_| {}).await
}

/// Like [`start`], with `tweak` applied to the configuration first.
pub async fn start_configured(postgres: bool, tweak: impl FnOnce(&mut PraxisConfig)) -> Install {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = PraxisConfig {
        data_dir: dir.path().to_path_buf(),
        drain_seconds: 2,
        ..PraxisConfig::default()
    };
    loopback_any_port(&mut config);
    tweak(&mut config);
    let mut backend = String::from("sqlite");
    if postgres {
        let base = std::env::var(praxis_store::testing::DATABASE_URL_VAR).expect("database url");
        config.directory.database_url = Some(
            praxis_store::testing::postgres(&base)
                .await
                .expect("schema")
                .url,
        );
        config.identity.database_url = Some(
            praxis_store::testing::postgres(&base)
                .await
                .expect("schema")
                .url,
        );
        config.authz.database_url = Some(
            praxis_store::testing::postgres(&base)
                .await
                .expect("schema")
                .url,
        );
        backend = "postgres".into();
        if let Some(redis) = std::env::var(REDIS_URL_VAR)
            .ok()
            .filter(|url| !url.is_empty())
        {
            config.cache_url = redis;
        }
    }
    backend.push_str(if config.cache_url == "memory" {
        "+memory"
    } else {
        "+redis"
    });
    let shutdown = CancellationToken::new();
    let notifier =
        std::sync::Arc::new(praxis_directory::domain::notifier::MemoryNotifier::default());
    let running = praxis::start_with(&config, shutdown.clone(), notifier.clone())
        .await
        .unwrap_or_else(|e| panic!("{backend}: start: {e}"));
    let addresses = running.addresses;
    let directory = running.directory.clone();
    let identity = running.identity.clone();
    let cache = running.cache.clone();
    let handle = tokio::spawn(async move {
        let _ = running.wait().await;
    });
    Install {
        backend,
        addresses,
        config,
        directory,
        identity,
        cache,
        notifier,
        shutdown,
        running: Some(handle),
        _dir: dir,
    }
}

impl Install {
    pub async fn channel(&self, address: std::net::SocketAddr) -> Channel {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://{address}")).expect("endpoint");
        for _ in 0..50 {
            if let Ok(channel) = endpoint.connect().await {
                return channel;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{}: cannot connect to {address}", self.backend)
    }

    pub async fn token_for(&self, email: &str) -> String {
        praxis::issue_token(
            &self.config,
            TokenFor::User {
                email: email.to_owned(),
            },
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: token for {email}: {e}", self.backend))
    }

    pub async fn platform_admin_token(&self) -> String {
        praxis::issue_token(
            &self.config,
            TokenFor::PlatformAdmin,
            Duration::from_secs(300),
        )
        .await
        .expect("token")
    }

    /// Identity's key ring over this install's identity database, for crafting tokens.
    pub async fn key_ring(&self, issuer: &str, audience: &str) -> praxis_identity::KeyRing {
        let db = praxis_store::connect(&self.config.identity().service.database_url)
            .await
            .expect("identity db");
        let sealer = self.config.identity().sealer().expect("secrets key");
        praxis_identity::KeyRing::new(db, sealer, issuer, audience, chrono::Duration::hours(1))
    }

    /// Cancels the install and waits until every server stopped.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("install did not stop")
                .expect("join");
        }
    }
}

/// A request carrying a bearer token.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

/// An enterprise with two practices (two lines each) and one user of each kind, made through
/// the directory's operator path. Emails are unique per fixture so fixtures can coexist.
pub struct Fixture {
    pub enterprise: praxis_directory::domain::Enterprise,
    /// The enterprise's allowlisted email domain.
    pub domain: String,
    pub practices: Vec<praxis_directory::domain::Practice>,
    pub users: Vec<praxis_directory::domain::User>,
}

impl Fixture {
    pub fn user(
        &self,
        kind: praxis_directory::domain::UserKind,
    ) -> &praxis_directory::domain::User {
        self.users
            .iter()
            .find(|user| user.kind == kind)
            .expect("fixture user of that kind")
    }
}

pub async fn fixture(install: &Install, name: &str) -> Fixture {
    use praxis_directory::domain::*;
    let operator = Actor::Operator;
    let now = chrono::Utc::now();
    let directory = &install.directory;
    let enterprise = directory
        .create_enterprise(&operator, name, "", now)
        .await
        .expect("enterprise");
    let mut practices = Vec::new();
    for practice_name in ["North", "South"] {
        let (practice, _) = directory
            .create_practice(&operator, &enterprise.id, practice_name, "", now)
            .await
            .expect("practice");
        for line in 1..=2 {
            directory
                .add_line(
                    &operator,
                    &practice.id,
                    &format!("Line {line}"),
                    &format!("+1555010000{line}"),
                    now,
                )
                .await
                .expect("line");
        }
        practices.push(
            directory
                .get_practice(&operator, &practice.id)
                .await
                .expect("practice"),
        );
    }
    // Each fixture its own domain: a domain belongs to one enterprise (D2).
    let domain = format!("{}.clinic.test", uuid::Uuid::now_v7().simple());
    directory
        .add_email_domain(&operator, &enterprise.id, &domain, now)
        .await
        .expect("domain");
    let mut users = Vec::new();
    for kind in UserKind::ALL {
        let first = &practices[0];
        let memberships = match kind {
            UserKind::Staff => vec![Membership::new(
                first.id.clone(),
                vec![first.lines[0].id.clone()],
            )],
            UserKind::AdvancedStaff | UserKind::Manager => {
                vec![Membership::new(first.id.clone(), Vec::new())]
            }
            _ => Vec::new(),
        };
        let new_user = NewUser {
            email: format!("{}@{domain}", kind.as_str().to_lowercase()),
            given_name: format!("{name} Person"),
            family_name: kind.as_str().to_lowercase(),
            kind,
            memberships,
            person_id: None,
        };
        users.push(
            directory
                .seed_user(&operator, &enterprise.id, new_user, now)
                .await
                .expect("user")
                .0,
        );
    }
    let enterprise = directory
        .get_enterprise(&operator, &enterprise.id)
        .await
        .expect("enterprise");
    Fixture {
        enterprise,
        domain,
        practices,
        users,
    }
}

/// The field names of an INVALID_ARGUMENT's BadRequest details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .map(|bad| {
            bad.field_violations
                .iter()
                .map(|v| v.field.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Latency figures for the measurement examples (not for tests).
pub mod datagen;
pub mod ldap;
pub mod system;

pub mod bench {
    use std::time::Duration;

    pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
        samples.sort_unstable();
        let rank = ((samples.len() as f64) * p).ceil() as usize;
        samples[rank.saturating_sub(1).min(samples.len().saturating_sub(1))]
    }

    pub fn report(name: &str, samples: &mut [Duration]) {
        if samples.is_empty() {
            println!("{name}: no samples");
            return;
        }
        let p50 = percentile(samples, 0.50);
        let p99 = percentile(samples, 0.99);
        let max = percentile(samples, 1.0);
        println!(
            "{name}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
            samples.len(),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}

/// Removes the database's append-only guard on audit events, as an attacker with the owner's
/// rights could; tests then check that VerifyChain still finds what they change.
pub async fn drop_audit_guard(db: &impl praxis_store::sea_orm::ConnectionTrait) {
    match db.get_database_backend() {
        praxis_store::sea_orm::DatabaseBackend::Postgres => {
            db.execute_unprepared("DROP TRIGGER audit_events_append_only ON audit_events")
                .await
                .expect("drop trigger");
        }
        _ => {
            for trigger in ["audit_events_no_update", "audit_events_no_delete"] {
                db.execute_unprepared(&format!("DROP TRIGGER {trigger}"))
                    .await
                    .expect("drop trigger");
            }
        }
    }
}

/// Takes every connection of `db`'s pool into an open transaction, as writers queued behind an
/// enterprise's row lock do, and proves the pool has none left.
pub async fn hold_every_connection(
    db: &praxis_store::sea_orm::DatabaseConnection,
) -> Vec<praxis_store::sea_orm::DatabaseTransaction> {
    use praxis_store::sea_orm::TransactionTrait;
    let mut held = Vec::new();
    while let Ok(txn) = tokio::time::timeout(Duration::from_millis(300), db.begin()).await {
        held.push(txn.expect("a writer's transaction"));
        assert!(held.len() < 100, "the pool has no end");
    }
    assert!(!held.is_empty(), "no connection was taken");
    held
}
