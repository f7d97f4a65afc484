//! Custom Cedar policies per enterprise (A7): stored in authz's database, compiled into the
//! enterprise's policy book, and the books cached in process. A stored policy that no longer
//! compiles makes the enterprise's decisions fail rather than be taken without it.

use crate::book::{PolicyBook, compile_custom};
use crate::model::Model;
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod custom_policy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "custom_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub description: String,
        pub text: String,
        pub version: i64,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod policy_revision {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "policy_revisions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        pub revision: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Clone)]
pub struct StoredPolicy {
    pub enterprise_id: String,
    pub id: String,
    pub description: String,
    pub text: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

impl From<custom_policy::Model> for StoredPolicy {
    fn from(row: custom_policy::Model) -> Self {
        Self {
            enterprise_id: row.enterprise_id,
            id: row.id,
            description: row.description,
            text: row.text,
            version: row.version,
            updated_at: row.updated_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the policy changed since it was read")]
    Conflict,
    #[error("policy not found")]
    NotFound,
    #[error("{0}")]
    Storage(#[from] DbErr),
}

#[derive(Clone)]
pub struct PolicyStore {
    db: DatabaseConnection,
}

async fn bump<C: sea_orm::ConnectionTrait>(db: &C, enterprise_id: &str) -> Result<(), DbErr> {
    let current = policy_revision::Entity::find_by_id(enterprise_id)
        .one(db)
        .await?
        .map_or(0, |row| row.revision);
    policy_revision::Entity::insert(policy_revision::ActiveModel {
        enterprise_id: Set(enterprise_id.to_owned()),
        revision: Set(current + 1),
    })
    .on_conflict(
        OnConflict::column(policy_revision::Column::EnterpriseId)
            .update_column(policy_revision::Column::Revision)
            .to_owned(),
    )
    .exec(db)
    .await?;
    Ok(())
}

impl PolicyStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn list(&self, enterprise_id: &str) -> Result<Vec<StoredPolicy>, DbErr> {
        Ok(custom_policy::Entity::find()
            .filter(custom_policy::Column::EnterpriseId.eq(enterprise_id))
            .order_by_asc(custom_policy::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    pub async fn get(&self, enterprise_id: &str, id: &str) -> Result<Option<StoredPolicy>, DbErr> {
        Ok(
            custom_policy::Entity::find_by_id((enterprise_id.to_owned(), id.to_owned()))
                .one(&self.db)
                .await?
                .map(Into::into),
        )
    }

    /// Creates the policy, or replaces it when `expected_version` is the stored version.
    pub async fn put(
        &self,
        enterprise_id: &str,
        id: &str,
        description: &str,
        text: &str,
        expected_version: Option<i64>,
        record: crate::audit::Record,
    ) -> Result<StoredPolicy, StoreError> {
        let txn = self.db.begin().await?;
        let existing = custom_policy::Entity::find_by_id((enterprise_id.to_owned(), id.to_owned()))
            .one(&txn)
            .await?;
        let version = match (&existing, expected_version) {
            (None, None) => 1,
            (Some(row), Some(expected)) if row.version == expected => row.version + 1,
            _ => return Err(StoreError::Conflict),
        };
        let row = custom_policy::ActiveModel {
            enterprise_id: Set(enterprise_id.to_owned()),
            id: Set(id.to_owned()),
            description: Set(description.to_owned()),
            text: Set(text.to_owned()),
            version: Set(version),
            updated_at: Set(Utc::now()),
        };
        let saved = if existing.is_some() {
            custom_policy::Entity::update(row).exec(&txn).await?
        } else {
            custom_policy::Entity::insert(row)
                .exec_with_returning(&txn)
                .await?
        };
        bump(&txn, enterprise_id).await?;
        let mut record = record;
        record.details["version"] = version.into();
        crate::audit::write(&txn, record).await?;
        txn.commit().await?;
        Ok(saved.into())
    }

    pub async fn delete(
        &self,
        enterprise_id: &str,
        id: &str,
        expected_version: Option<i64>,
        record: crate::audit::Record,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        let existing = custom_policy::Entity::find_by_id((enterprise_id.to_owned(), id.to_owned()))
            .one(&txn)
            .await?
            .ok_or(StoreError::NotFound)?;
        if expected_version.is_some_and(|expected| expected != existing.version) {
            return Err(StoreError::Conflict);
        }
        custom_policy::Entity::delete_by_id((enterprise_id.to_owned(), id.to_owned()))
            .exec(&txn)
            .await?;
        bump(&txn, enterprise_id).await?;
        crate::audit::write(&txn, record).await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn revision(&self, enterprise_id: &str) -> Result<i64, DbErr> {
        Ok(policy_revision::Entity::find_by_id(enterprise_id)
            .one(&self.db)
            .await?
            .map_or(0, |row| row.revision))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("custom policies unreadable: {0}")]
    Storage(#[from] DbErr),
    #[error("stored custom policy {id} no longer compiles: {problems}")]
    Stale { id: String, problems: String },
    #[error("{0}")]
    Build(#[from] crate::book::BookError),
}

#[derive(Clone)]
struct CachedBook {
    book: Arc<PolicyBook>,
    revision: i64,
    checked: Instant,
}

/// Compiled books per enterprise; a book is confirmed against the stored revision at most
/// every `max_staleness`, and rebuilt when it moved. Past half of `max_staleness` the first call
/// to notice confirms it in the background, so calls do not wait for the database while it
/// answers.
pub struct Books {
    store: PolicyStore,
    model: Arc<Model>,
    cache: moka::sync::Cache<String, CachedBook>,
    max_staleness: Duration,
    /// Enterprises whose book is being confirmed in the background, or whose last confirmation
    /// in the background failed (the calls load it themselves once it has expired).
    confirming: Mutex<HashSet<String>>,
    /// Moves on every invalidation: a book read before one is not cached after it. Held while
    /// caching, so an invalidation cannot fall between the comparison and the insert.
    generation: Mutex<u64>,
}

impl Books {
    pub fn new(store: PolicyStore, model: Arc<Model>, max_staleness: Duration) -> Self {
        Self {
            store,
            model,
            cache: moka::sync::Cache::new(10_000),
            max_staleness,
            confirming: Mutex::new(HashSet::new()),
            generation: Mutex::new(0),
        }
    }

    pub fn invalidate(&self, enterprise_id: &str) {
        let mut generation = self.generation();
        *generation += 1;
        self.cache.invalidate(enterprise_id);
    }

    fn generation(&self) -> std::sync::MutexGuard<'_, u64> {
        self.generation
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn book(self: &Arc<Self>, enterprise_id: &str) -> Result<Arc<PolicyBook>, BookError> {
        let cached = self.cache.get(enterprise_id);
        if let Some(cached) = &cached {
            let age = cached.checked.elapsed();
            if age < self.max_staleness {
                if age >= self.max_staleness / 2 {
                    self.confirm_ahead(enterprise_id);
                }
                return Ok(cached.book.clone());
            }
        }
        self.load(enterprise_id, cached).await
    }

    fn confirm_ahead(self: &Arc<Self>, enterprise_id: &str) {
        let started = self
            .confirming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(enterprise_id.to_owned());
        if !started {
            return;
        }
        let books = self.clone();
        let enterprise_id = enterprise_id.to_owned();
        tokio::spawn(async move {
            let cached = books.cache.get(&enterprise_id);
            if let Err(error) = books.load(&enterprise_id, cached).await {
                // The next call past `max_staleness` loads it itself and answers the error.
                tracing::warn!(%error, "policy book not confirmed ahead of time");
            }
        });
    }

    /// Confirms `cached` against the stored revision, or builds the book again.
    async fn load(
        &self,
        enterprise_id: &str,
        cached: Option<CachedBook>,
    ) -> Result<Arc<PolicyBook>, BookError> {
        let generation = *self.generation();
        let checked = Instant::now();
        let revision = self.store.revision(enterprise_id).await?;
        if let Some(cached) = cached.filter(|c| c.revision == revision) {
            self.keep(
                enterprise_id,
                generation,
                CachedBook {
                    checked,
                    ..cached.clone()
                },
            );
            return Ok(cached.book);
        }
        let mut custom = Vec::new();
        for stored in self.store.list(enterprise_id).await? {
            let policies =
                compile_custom(&self.model, &stored.id, &stored.text).map_err(|problems| {
                    BookError::Stale {
                        id: stored.id.clone(),
                        problems: problems
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; "),
                    }
                })?;
            custom.extend(policies);
        }
        let book = Arc::new(PolicyBook::build(&self.model, custom)?);
        self.keep(
            enterprise_id,
            generation,
            CachedBook {
                book: book.clone(),
                revision,
                checked,
            },
        );
        Ok(book)
    }

    /// Caches `book` unless an invalidation came after it was read (a policy written since).
    fn keep(&self, enterprise_id: &str, generation: u64, book: CachedBook) {
        self.confirming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(enterprise_id);
        let current = self.generation();
        if *current == generation {
            self.cache.insert(enterprise_id.to_owned(), book);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Books over a fresh SQLite file, trusted for `max_staleness`.
    async fn books(max_staleness: Duration) -> (Arc<Books>, PolicyStore) {
        let file = std::env::temp_dir().join(format!("praxis-books-{}.db", uuid::Uuid::new_v4()));
        let db = praxis_store::connect(&format!("sqlite://{}?mode=rwc", file.display()))
            .await
            .expect("sqlite");
        praxis_store::migrate::<crate::migrations::Migrator>(&db)
            .await
            .expect("migrations");
        let store = PolicyStore::new(db);
        let model = Arc::new(Model::load().expect("model"));
        let books = Arc::new(Books::new(store.clone(), model, max_staleness));
        (books, store)
    }

    fn record() -> crate::audit::Record {
        crate::audit::Record {
            enterprise_id: "e-1".into(),
            actor: "u-admin".into(),
            action: "authz.policy.put",
            target: "policy:p-1".into(),
            outcome: "SUCCESS",
            ip: None,
            details: serde_json::json!({}),
        }
    }

    /// A8: a policy another replica wrote (no invalidation here) is read in the background once
    /// half of the staleness bound has passed, without any call waiting for the database.
    #[tokio::test]
    async fn a8_books_are_confirmed_ahead_of_their_expiry() {
        let (books, store) = books(Duration::from_millis(400)).await;
        let first = books.book("e-1").await.expect("book");
        store
            .put(
                "e-1",
                "p-1",
                "",
                "forbid (principal, action == Praxis::Action::\"patients:export\", resource);",
                None,
                record(),
            )
            .await
            .expect("put");
        // Within the bound and before half of it: the book held, nothing asked.
        let held = books.book("e-1").await.expect("book");
        assert!(Arc::ptr_eq(&first, &held));
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Past half: still the book held, and the stored revision is read in the background.
        let held = books.book("e-1").await.expect("book");
        assert!(Arc::ptr_eq(&first, &held));
        let mut revision = 0;
        for _ in 0..200 {
            revision = books.cache.get("e-1").map_or(0, |cached| cached.revision);
            if revision == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(revision, 1, "the new policy was not read ahead");
        let renewed = books.book("e-1").await.expect("book");
        assert!(!Arc::ptr_eq(&first, &renewed));
    }

    /// A book read before an invalidation is not cached after it: the policy written meanwhile
    /// would otherwise be missing for up to the staleness bound.
    #[tokio::test]
    async fn a_book_read_before_an_invalidation_is_not_kept() {
        let (books, _store) = books(Duration::from_secs(60)).await;
        let book = books.book("e-1").await.expect("book");
        books.invalidate("e-1");
        let before = *books.generation();
        books.invalidate("e-1");
        books.keep(
            "e-1",
            before,
            CachedBook {
                book,
                revision: 0,
                checked: Instant::now(),
            },
        );
        assert!(books.cache.get("e-1").is_none());
    }
}
