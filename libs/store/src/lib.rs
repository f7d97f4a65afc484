//! Storage shared by the services: one sea-orm connection to SQLite (the embedded default, a file
//! under the data directory) or PostgreSQL, each service's migrations applied at start, and a
//! health probe. Each service owns its own database; nothing here knows any service's tables.
#![forbid(unsafe_code)]

pub mod outbox;
pub mod testing;

use futures::future::BoxFuture;
use praxis_runtime::health::Probe;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use std::time::Duration;

pub use sea_orm;
pub use sea_orm_migration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database: {0}")]
    Connect(String),
    #[error("migration failed: {0}")]
    Migrate(String),
}

/// Opens `url`. A SQLite file's directory is created if missing, so `serve` works on a fresh
/// checkout.
pub async fn connect(url: &str) -> Result<DatabaseConnection, StoreError> {
    connect_with(ConnectOptions::new(url.to_owned())).await
}

pub async fn connect_with(mut options: ConnectOptions) -> Result<DatabaseConnection, StoreError> {
    let sqlite_dir = sqlite_file(options.get_url())
        .and_then(|path| std::path::Path::new(path).parent())
        .filter(|parent| !parent.as_os_str().is_empty());
    if let Some(parent) = sqlite_dir {
        std::fs::create_dir_all(parent).map_err(|error| {
            StoreError::Connect(format!("create {}: {error}", parent.display()))
        })?;
    }
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // A connection in steady use is not pinged before each statement (a round trip every
        // time: a principal snapshot takes several connections' worth of them); one idle for
        // a while is, since the server may have dropped it meanwhile.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .map_err(|error| StoreError::Connect(redact(&error)))?;
    if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        // Several connections share one file: wait for a writer instead of failing at once.
        db.execute_unprepared("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;")
            .await
            .map_err(|error| StoreError::Connect(redact(&error)))?;
    }
    Ok(db)
}

/// Applies every pending migration of a service.
pub async fn migrate<M: MigratorTrait>(db: &DatabaseConnection) -> Result<(), StoreError> {
    M::up(db, None)
        .await
        .map_err(|error| StoreError::Migrate(error.to_string()))
}

/// At start: migrate, or, where migrations run as their own step, refuse to serve a schema
/// that is behind the code.
pub async fn prepare<M: MigratorTrait>(
    db: &DatabaseConnection,
    migrate_now: bool,
) -> Result<(), StoreError> {
    if migrate_now {
        return migrate::<M>(db).await;
    }
    let pending = M::get_pending_migrations(db)
        .await
        .map_err(|error| StoreError::Migrate(error.to_string()))?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Migrate(format!(
            "{} migrations pending and migrate_on_start is off: run the `migrate` command first",
            pending.len()
        )))
    }
}

fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && !path.starts_with(":memory:")).then_some(path)
}

/// Connection errors may quote the URL, and a PostgreSQL URL may hold a password.
fn redact(error: &DbErr) -> String {
    let text = error.to_string();
    match (text.find("://"), text.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***{}", &text[..scheme], &text[at..])
        }
        _ => text,
    }
}

/// Health follows the database: SERVING only while it answers.
pub struct DatabaseProbe(pub DatabaseConnection);

impl Probe for DatabaseProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|error| redact(&error)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(
            sqlite_file("sqlite://.praxis/directory.db?mode=rwc"),
            Some(".praxis/directory.db")
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://u:p@h/db"), None);
    }

    #[tokio::test]
    async fn creates_the_data_directory() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { panic!("tempdir") };
        let file = dir.path().join("nested/deeper/praxis.db");
        let db = connect(&format!("sqlite://{}?mode=rwc", file.display())).await;
        assert!(db.is_ok(), "{:?}", db.err());
        assert!(file.exists());
    }
}
