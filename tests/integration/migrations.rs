//! Migrations on every backend: applied once, idempotent, and a service told not to migrate
//! refuses to start on a schema behind its code.

use praxis_store::testing::test_databases;

#[tokio::test]
async fn migrations_apply_once_and_a_stale_schema_is_refused() {
    for test_db in test_databases().await.unwrap() {
        let b = test_db.backend;
        let db = &test_db.db;
        type Directory = praxis_directory::store::migrations::Migrator;
        type Identity = praxis_identity::store::migrations::Migrator;
        let refused = praxis_store::prepare::<Directory>(db, false)
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("pending"), "{b}: {refused}");
        praxis_store::prepare::<Directory>(db, true).await.unwrap();
        praxis_store::migrate::<Directory>(db)
            .await
            .unwrap_or_else(|e| panic!("{b}: second run: {e}"));
        praxis_store::prepare::<Directory>(db, false)
            .await
            .unwrap_or_else(|e| panic!("{b}: {e}"));
        // Each service keeps its own migrations table, so two services may share one database.
        assert!(
            praxis_store::prepare::<Identity>(db, false).await.is_err(),
            "{b}"
        );
        praxis_store::migrate::<Identity>(db).await.unwrap();
        praxis_store::prepare::<Identity>(db, false).await.unwrap();
    }
}
