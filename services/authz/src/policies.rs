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
use std::sync::Arc;
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
/// every `max_staleness`, and rebuilt when it moved.
pub struct Books {
    store: PolicyStore,
    model: Arc<Model>,
    cache: moka::sync::Cache<String, CachedBook>,
    max_staleness: Duration,
}

impl Books {
    pub fn new(store: PolicyStore, model: Arc<Model>, max_staleness: Duration) -> Self {
        Self {
            store,
            model,
            cache: moka::sync::Cache::new(10_000),
            max_staleness,
        }
    }

    pub fn invalidate(&self, enterprise_id: &str) {
        self.cache.invalidate(enterprise_id);
    }

    pub async fn book(&self, enterprise_id: &str) -> Result<Arc<PolicyBook>, BookError> {
        let cached = self.cache.get(enterprise_id);
        if let Some(cached) = &cached
            && cached.checked.elapsed() < self.max_staleness
        {
            return Ok(cached.book.clone());
        }
        let revision = self.store.revision(enterprise_id).await?;
        if let Some(cached) = cached.filter(|c| c.revision == revision) {
            self.cache.insert(
                enterprise_id.to_owned(),
                CachedBook {
                    checked: Instant::now(),
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
        self.cache.insert(
            enterprise_id.to_owned(),
            CachedBook {
                book: book.clone(),
                revision,
                checked: Instant::now(),
            },
        );
        Ok(book)
    }
}
