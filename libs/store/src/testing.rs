//! Fresh databases for tests: always a SQLite file of its own, and, when
//! `PRAXIS_TEST_DATABASE_URL` is set, a PostgreSQL schema of its own in that database, so tests
//! run in parallel without seeing each other's rows.

use crate::{StoreError, connect, connect_with};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection};

pub const DATABASE_URL_VAR: &str = "PRAXIS_TEST_DATABASE_URL";

pub struct TestDatabase {
    /// `sqlite` or `postgres`, for assertion messages.
    pub backend: &'static str,
    pub url: String,
    pub db: DatabaseConnection,
    _dir: Option<tempfile::TempDir>,
}

/// One fresh database per backend available to this run.
pub async fn test_databases() -> Result<Vec<TestDatabase>, StoreError> {
    let mut databases = vec![sqlite().await?];
    if let Some(url) = std::env::var(DATABASE_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
    {
        databases.push(postgres(&url).await?);
    }
    Ok(databases)
}

pub async fn sqlite() -> Result<TestDatabase, StoreError> {
    let dir = tempfile::tempdir().map_err(|error| StoreError::Connect(error.to_string()))?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
    let db = connect(&url).await?;
    Ok(TestDatabase {
        backend: "sqlite",
        url,
        db,
        _dir: Some(dir),
    })
}

pub async fn postgres(base_url: &str) -> Result<TestDatabase, StoreError> {
    let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
    let admin = connect(base_url).await?;
    admin
        .execute_unprepared(&format!("CREATE SCHEMA \"{schema}\""))
        .await
        .map_err(|error| StoreError::Connect(error.to_string()))?;
    admin
        .close()
        .await
        .map_err(|error| StoreError::Connect(error.to_string()))?;
    let mut options = ConnectOptions::new(base_url.to_owned());
    options
        .set_schema_search_path(schema.clone())
        .max_connections(5);
    let db = connect_with(options).await?;
    let separator = if base_url.contains('?') { '&' } else { '?' };
    let url = format!("{base_url}{separator}options=-c%20search_path%3D{schema}");
    Ok(TestDatabase {
        backend: "postgres",
        url,
        db,
        _dir: None,
    })
}
