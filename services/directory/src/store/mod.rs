//! The directory's storage: sea-orm queries and transactions behind plain methods. Database
//! errors become domain errors here, so nothing above sees sea-orm.

mod access;
pub mod audit;
pub mod entities;
mod ldap;
pub mod migrations;
mod persons;
mod roles;
mod structure;
mod sync;
mod users;

pub use audit::{AuditEntry, BrokenLink};
pub use roles::PrincipalParts;
pub use users::{NewInvitation, OutboxMessage, UserChange, UserStanding};

use crate::domain::policy::EnterprisePolicy;
use crate::domain::service::EnterpriseChange;
use crate::domain::*;
use chrono::{DateTime, Utc};
use entities::{email_domain, enterprise, line, practice, resource};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    ExprTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    /// The connections principal snapshots are read on (authz's cold Check waits for them):
    /// apart from the writers', which may all be held by transactions queued behind one
    /// enterprise's row lock. The same pool as `db` unless `with_snapshot_reads` says otherwise.
    snapshot_reads: DatabaseConnection,
    /// Every committed write's (enterprise, revision), for whoever keeps caches fresh (A8).
    revisions: tokio::sync::broadcast::Sender<(EnterpriseId, i64)>,
}

/// For domain code that runs queries inside a store transaction (the alert rules).
pub(crate) fn storage_error(error: DbErr) -> DomainError {
    storage(error)
}

fn storage(error: DbErr) -> DomainError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => DomainError::AlreadyExists("record"),
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            DomainError::NotFound("referenced record")
        }
        _ => DomainError::Storage(error.to_string()),
    }
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            snapshot_reads: db.clone(),
            db,
            revisions: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Principal snapshots read on `pool` instead of the writers' connections.
    pub fn with_snapshot_reads(mut self, pool: DatabaseConnection) -> Self {
        self.snapshot_reads = pool;
        self
    }

    /// This store reading on the snapshot connections, for what authz's Checks wait on (a
    /// snapshot, with whatever shows the caller may read it, and the enterprise's revision).
    /// Reads only: a write through it would take a snapshot connection for as long as it
    /// queued behind the enterprise's row lock.
    pub(crate) fn snapshot_reader(&self) -> Store {
        Store {
            db: self.snapshot_reads.clone(),
            snapshot_reads: self.snapshot_reads.clone(),
            revisions: self.revisions.clone(),
        }
    }

    /// Committed revisions, as they happen.
    pub fn revisions(&self) -> tokio::sync::broadcast::Receiver<(EnterpriseId, i64)> {
        self.revisions.subscribe()
    }

    /// Runs `change` and records the write (revision and audit event) in one transaction, then
    /// commits and announces it; the frame every simple write shares.
    async fn write<T>(
        &self,
        enterprise_id: &EnterpriseId,
        audit: &AuditEntry,
        change: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, DomainError>,
    ) -> Result<(T, i64), DomainError> {
        let txn = self.begin().await?;
        // The revision first: its row lock then queues the enterprise's writers before any of
        // them takes the foreign-key share locks their inserts put on the same row, which on
        // PostgreSQL would pile the waiting writers into ever larger multixacts.
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let value = change(&txn).await?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((value, revision))
    }

    /// Commits a write and announces the revision it produced; nobody hears of a revision
    /// that did not commit.
    async fn commit(
        &self,
        txn: DatabaseTransaction,
        enterprise_id: &EnterpriseId,
        revision: i64,
    ) -> Result<(), DomainError> {
        txn.commit().await.map_err(storage)?;
        // No listener is fine: then nothing caches on the strength of these announcements.
        let _ = self.revisions.send((enterprise_id.clone(), revision));
        Ok(())
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    async fn begin(&self) -> Result<DatabaseTransaction, DomainError> {
        self.db.begin().await.map_err(storage)
    }

    /// D18: every write moves the enterprise revision forward and appends its audit event,
    /// inside the write's transaction; returns the new revision.
    async fn record_write(
        txn: &DatabaseTransaction,
        enterprise_id: &EnterpriseId,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        // One round trip for the bump and the revision it made: every writer of the enterprise
        // queues behind this row lock until commit, so each trip under it is paid by them all.
        let revision = enterprise::Entity::update_many()
            .col_expr(
                enterprise::Column::Revision,
                Expr::col(enterprise::Column::Revision).add(1),
            )
            .filter(enterprise::Column::Id.eq(enterprise_id.as_str()))
            .exec_with_returning(txn)
            .await
            .map_err(storage)?
            .first()
            .map(|row| row.revision)
            .ok_or(DomainError::NotFound("enterprise"))?;
        audit::append(txn, enterprise_id.as_str(), audit).await?;
        Ok(revision)
    }

    // === enterprises ===

    pub async fn insert_enterprise(
        &self,
        display_name: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Enterprise, DomainError> {
        if let Some(request_id) = request_id {
            let existing = enterprise::Entity::find()
                .filter(enterprise::Column::CreateRequestId.eq(request_id))
                .one(&self.db)
                .await
                .map_err(storage)?;
            if let Some(existing) = existing {
                return Ok(enterprise_from(existing));
            }
        }
        let row = enterprise::ActiveModel {
            id: Set(EnterpriseId::generate().0),
            display_name: Set(display_name.to_owned()),
            revision: Set(1),
            user_creation_min_access: Set(MinAccess::Staff.as_str().to_owned()),
            policy: Set(policy_json(&EnterprisePolicy::default())?),
            create_request_id: Set(request_id.map(str::to_owned)),
            created_at: Set(now),
        };
        let txn = self.begin().await?;
        let inserted = enterprise::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(storage)?;
        let enterprise = enterprise_from(inserted);
        audit::append(&txn, enterprise.id.as_str(), audit).await?;
        self.commit(txn, &enterprise.id, enterprise.revision)
            .await?;
        Ok(enterprise)
    }

    /// Every enterprise id (the inactivity sweep walks them).
    pub async fn enterprise_ids(&self) -> Result<Vec<EnterpriseId>, DomainError> {
        let rows = enterprise::Entity::find()
            .order_by_asc(enterprise::Column::Id)
            .all(&self.db)
            .await
            .map_err(storage)?;
        Ok(rows.into_iter().map(|row| EnterpriseId(row.id)).collect())
    }

    pub async fn enterprise(&self, id: &EnterpriseId) -> Result<Option<Enterprise>, DomainError> {
        let row = enterprise::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(row.map(enterprise_from))
    }

    // === practices ===

    /// Creates a practice, or returns the one an earlier call with the same request id made.
    pub async fn insert_practice(
        &self,
        enterprise_id: &EnterpriseId,
        display_name: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(Practice, i64), DomainError> {
        let txn = self.begin().await?;
        if let Some(request_id) = request_id {
            let existing = practice::Entity::find()
                .filter(practice::Column::EnterpriseId.eq(enterprise_id.as_str()))
                .filter(practice::Column::CreateRequestId.eq(request_id))
                .one(&txn)
                .await
                .map_err(storage)?;
            if let Some(existing) = existing {
                let revision = revision_of(&txn, enterprise_id).await?;
                let practice = load_practice(&txn, existing).await?;
                return Ok((practice, revision));
            }
        }
        // The revision before the inserts (see `write`); a replay above changes nothing.
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let row = practice::ActiveModel {
            id: Set(PracticeId::generate().0),
            enterprise_id: Set(enterprise_id.0.clone()),
            display_name: Set(display_name.to_owned()),
            create_request_id: Set(request_id.map(str::to_owned)),
            created_at: Set(now),
            version: Set(1),
        };
        let inserted = practice::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(storage)?;
        let practice = load_practice(&txn, inserted).await?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((practice, revision))
    }

    pub async fn insert_line(
        &self,
        enterprise_id: &EnterpriseId,
        practice_id: &PracticeId,
        display_name: &str,
        phone_number: &str,
        audit: &AuditEntry,
    ) -> Result<(Line, i64), DomainError> {
        self.write(enterprise_id, audit, async |txn| {
            let row = line::ActiveModel {
                id: Set(LineId::generate().0),
                practice_id: Set(practice_id.0.clone()),
                display_name: Set(display_name.to_owned()),
                phone_number: Set(phone_number.to_owned()),
            };
            let inserted = line::Entity::insert(row)
                .exec_with_returning(txn)
                .await
                .map_err(storage)?;
            Ok(line_from(inserted))
        })
        .await
    }

    pub async fn insert_resource(
        &self,
        enterprise_id: &EnterpriseId,
        practice_id: &PracticeId,
        kind: ResourceKind,
        display_name: &str,
        time_zone: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(Resource, i64), DomainError> {
        let row = resource::ActiveModel {
            id: Set(ResourceId::generate().0),
            practice_id: Set(practice_id.0.clone()),
            kind: Set(kind.as_str().to_owned()),
            display_name: Set(display_name.to_owned()),
            time_zone: Set(time_zone.map(str::to_owned)),
            profile: Set(None),
        };
        let (inserted, revision) = self
            .write(enterprise_id, audit, async |txn| {
                resource::Entity::insert(row)
                    .exec_with_returning(txn)
                    .await
                    .map_err(storage)
            })
            .await?;
        let resource = resource_from(inserted)
            .ok_or_else(|| DomainError::Storage("unknown resource kind".into()))?;
        Ok((resource, revision))
    }

    pub async fn practice(&self, id: &PracticeId) -> Result<Option<Practice>, DomainError> {
        let row = practice::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        match row {
            Some(row) => Ok(Some(load_practice(&self.db, row).await?)),
            None => Ok(None),
        }
    }

    pub async fn list_practices(
        &self,
        enterprise_id: &EnterpriseId,
        page: &PageRequest,
    ) -> Result<Page<Practice>, DomainError> {
        let mut query = practice::Entity::find()
            .filter(practice::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(practice::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = &page.after {
            query = query.filter(practice::Column::Id.gt(after.as_str()));
        }
        let rows = query.all(&self.db).await.map_err(storage)?;
        let (rows, next_after) = split_page(rows, page.size, |row| row.id.clone());
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            items.push(load_practice(&self.db, row).await?);
        }
        Ok(Page { items, next_after })
    }

    pub async fn revision(&self, enterprise_id: &EnterpriseId) -> Result<i64, DomainError> {
        revision_of(&self.db, enterprise_id).await
    }

    /// Changes an enterprise's settings if `expected_revision` is still current (its etag).
    pub async fn update_enterprise(
        &self,
        id: &EnterpriseId,
        expected_revision: Option<i64>,
        change: &EnterpriseChange,
        audit: &AuditEntry,
    ) -> Result<Enterprise, DomainError> {
        let txn = self.begin().await?;
        let current = enterprise::Entity::find_by_id(id.as_str())
            .one(&txn)
            .await
            .map_err(storage)?;
        let current = current.ok_or(DomainError::NotFound("enterprise"))?;
        if expected_revision.is_some_and(|revision| revision != current.revision) {
            return Err(DomainError::Aborted("enterprise changed since it was read"));
        }
        let mut update = enterprise::Entity::update_many()
            .col_expr(
                enterprise::Column::Revision,
                Expr::col(enterprise::Column::Revision).add(1),
            )
            .filter(enterprise::Column::Id.eq(id.as_str()))
            .filter(enterprise::Column::Revision.eq(current.revision));
        if let Some(name) = &change.display_name {
            update = update.col_expr(enterprise::Column::DisplayName, Expr::value(name.as_str()));
        }
        if let Some(policy) = &change.policy {
            update = update.col_expr(
                enterprise::Column::Policy,
                Expr::value(policy_json(policy)?),
            );
        }
        if let Some(min_access) = change.min_access {
            update = update.col_expr(
                enterprise::Column::UserCreationMinAccess,
                Expr::value(min_access.as_str()),
            );
        }
        let updated = update.exec(&txn).await.map_err(storage)?;
        if updated.rows_affected != 1 {
            return Err(DomainError::Aborted("enterprise changed concurrently"));
        }
        audit::append(&txn, id.as_str(), audit).await?;
        let row = enterprise::Entity::find_by_id(id.as_str())
            .one(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, id, current.revision + 1).await?;
        row.map(enterprise_from)
            .ok_or(DomainError::NotFound("enterprise"))
    }

    // === email domains (D2) ===

    pub async fn insert_email_domain(
        &self,
        enterprise_id: &EnterpriseId,
        domain: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(EmailDomain, i64), DomainError> {
        let row = email_domain::ActiveModel {
            domain: Set(domain.to_owned()),
            enterprise_id: Set(enterprise_id.0.clone()),
            created_at: Set(now),
        };
        self.write(enterprise_id, audit, async |txn| {
            let inserted = email_domain::Entity::insert(row)
                .exec_with_returning(txn)
                .await
                .map_err(|error| match storage(error) {
                    DomainError::AlreadyExists(_) => DomainError::AlreadyExists("email domain"),
                    other => other,
                })?;
            Ok(email_domain_from(inserted))
        })
        .await
    }

    /// The enterprise owning `domain`, if any.
    pub async fn email_domain(&self, domain: &str) -> Result<Option<EmailDomain>, DomainError> {
        let row = email_domain::Entity::find_by_id(domain)
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(row.map(email_domain_from))
    }

    pub async fn delete_email_domain(
        &self,
        enterprise_id: &EnterpriseId,
        domain: &str,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let written = self
            .write(enterprise_id, audit, async |txn| {
                let deleted = email_domain::Entity::delete_many()
                    .filter(email_domain::Column::Domain.eq(domain))
                    .filter(email_domain::Column::EnterpriseId.eq(enterprise_id.as_str()))
                    .exec(txn)
                    .await
                    .map_err(storage)?;
                if deleted.rows_affected == 0 {
                    return Err(DomainError::NotFound("email domain"));
                }
                Ok(())
            })
            .await?;
        Ok(written.1)
    }

    pub async fn list_email_domains(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<EmailDomain>, DomainError> {
        let rows = email_domain::Entity::find()
            .filter(email_domain::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(email_domain::Column::Domain)
            .all(&self.db)
            .await
            .map_err(storage)?;
        Ok(rows.into_iter().map(email_domain_from).collect())
    }
}

/// `%`, `_` and `\` in a search are literal characters, never wildcards.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

fn split_page<T>(
    mut rows: Vec<T>,
    size: u64,
    id: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if rows.len() > size {
        rows.truncate(size);
        let next = rows.last().map(id);
        (rows, next)
    } else {
        (rows, None)
    }
}

async fn revision_of<C: sea_orm::ConnectionTrait>(
    db: &C,
    enterprise_id: &EnterpriseId,
) -> Result<i64, DomainError> {
    let row = enterprise::Entity::find_by_id(enterprise_id.as_str())
        .one(db)
        .await
        .map_err(storage)?;
    row.map(|row| row.revision)
        .ok_or(DomainError::NotFound("enterprise"))
}

async fn load_practice<C: sea_orm::ConnectionTrait>(
    db: &C,
    row: practice::Model,
) -> Result<Practice, DomainError> {
    let lines = line::Entity::find()
        .filter(line::Column::PracticeId.eq(row.id.as_str()))
        .order_by_asc(line::Column::Id)
        .all(db)
        .await
        .map_err(storage)?;
    let resources = resource::Entity::find()
        .filter(resource::Column::PracticeId.eq(row.id.as_str()))
        .order_by_asc(resource::Column::Id)
        .all(db)
        .await
        .map_err(storage)?;
    Ok(Practice {
        id: PracticeId(row.id),
        enterprise_id: EnterpriseId(row.enterprise_id),
        display_name: row.display_name,
        lines: lines.into_iter().map(line_from).collect(),
        resources: resources.into_iter().filter_map(resource_from).collect(),
        created_at: row.created_at,
        version: row.version,
    })
}

fn enterprise_from(row: enterprise::Model) -> Enterprise {
    Enterprise {
        id: EnterpriseId(row.id),
        display_name: row.display_name,
        revision: row.revision,
        // Written only from MinAccess::as_str; an unknown value is the strictest reading.
        user_creation_min_access: MinAccess::parse(&row.user_creation_min_access)
            .unwrap_or(MinAccess::Enterprise),
        // Written only by policy_json; unreadable means damaged, and the defaults are safe.
        policy: serde_json::from_str(&row.policy).unwrap_or_else(|error| {
            tracing::error!(%error, "unreadable enterprise policy; serving the defaults");
            EnterprisePolicy::default()
        }),
        created_at: row.created_at,
    }
}

fn policy_json(policy: &EnterprisePolicy) -> Result<String, DomainError> {
    serde_json::to_string(policy).map_err(|error| DomainError::Storage(error.to_string()))
}

fn email_domain_from(row: email_domain::Model) -> EmailDomain {
    EmailDomain {
        domain: row.domain,
        enterprise_id: EnterpriseId(row.enterprise_id),
        created_at: row.created_at,
    }
}

fn line_from(row: line::Model) -> Line {
    Line {
        id: LineId(row.id),
        display_name: row.display_name,
        phone_number: row.phone_number,
    }
}

fn resource_from(row: resource::Model) -> Option<Resource> {
    Some(Resource {
        id: ResourceId(row.id),
        kind: ResourceKind::parse(&row.kind)?,
        display_name: row.display_name,
        time_zone: row.time_zone,
        // Written only from ProviderProfile; unreadable means damaged, shown as none.
        provider_profile: row
            .profile
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}
