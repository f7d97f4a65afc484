//! The directory's storage: sea-orm queries and transactions behind plain methods. Database
//! errors become domain errors here, so nothing above sees sea-orm.

pub mod entities;
pub mod migrations;

use crate::domain::*;
use chrono::{DateTime, Utc};
use entities::{enterprise, line, membership_line, practice, resource, user};
use sea_orm::sea_query::{Expr, Func, LikeExpr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, TransactionTrait,
};
use std::collections::BTreeMap;

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
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
        Self { db }
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    async fn begin(&self) -> Result<DatabaseTransaction, DomainError> {
        self.db.begin().await.map_err(storage)
    }

    /// D18: every write moves the enterprise revision forward, inside the write's transaction.
    async fn bump_revision(
        txn: &DatabaseTransaction,
        enterprise_id: &EnterpriseId,
    ) -> Result<i64, DomainError> {
        let updated = enterprise::Entity::update_many()
            .col_expr(
                enterprise::Column::Revision,
                Expr::col(enterprise::Column::Revision).add(1),
            )
            .filter(enterprise::Column::Id.eq(enterprise_id.as_str()))
            .exec(txn)
            .await
            .map_err(storage)?;
        if updated.rows_affected != 1 {
            return Err(DomainError::NotFound("enterprise"));
        }
        let row = enterprise::Entity::find_by_id(enterprise_id.as_str())
            .one(txn)
            .await
            .map_err(storage)?;
        row.map(|row| row.revision)
            .ok_or(DomainError::NotFound("enterprise"))
    }

    // === enterprises ===

    pub async fn insert_enterprise(
        &self,
        display_name: &str,
        request_id: Option<&str>,
        now: DateTime<Utc>,
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
            create_request_id: Set(request_id.map(str::to_owned)),
            created_at: Set(now),
        };
        let inserted = enterprise::Entity::insert(row)
            .exec_with_returning(&self.db)
            .await
            .map_err(storage)?;
        Ok(enterprise_from(inserted))
    }

    pub async fn enterprise(&self, id: &EnterpriseId) -> Result<Option<Enterprise>, DomainError> {
        let row = enterprise::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(row.map(enterprise_from))
    }

    pub async fn enterprise_by_name(
        &self,
        display_name: &str,
    ) -> Result<Option<Enterprise>, DomainError> {
        let row = enterprise::Entity::find()
            .filter(enterprise::Column::DisplayName.eq(display_name))
            .order_by_asc(enterprise::Column::Id)
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
        let row = practice::ActiveModel {
            id: Set(PracticeId::generate().0),
            enterprise_id: Set(enterprise_id.0.clone()),
            display_name: Set(display_name.to_owned()),
            create_request_id: Set(request_id.map(str::to_owned)),
            created_at: Set(now),
        };
        let inserted = practice::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(storage)?;
        let revision = Self::bump_revision(&txn, enterprise_id).await?;
        let practice = load_practice(&txn, inserted).await?;
        txn.commit().await.map_err(storage)?;
        Ok((practice, revision))
    }

    pub async fn insert_line(
        &self,
        enterprise_id: &EnterpriseId,
        practice_id: &PracticeId,
        display_name: &str,
        phone_number: &str,
    ) -> Result<(Line, i64), DomainError> {
        let txn = self.begin().await?;
        let row = line::ActiveModel {
            id: Set(LineId::generate().0),
            practice_id: Set(practice_id.0.clone()),
            display_name: Set(display_name.to_owned()),
            phone_number: Set(phone_number.to_owned()),
        };
        let inserted = line::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(storage)?;
        let revision = Self::bump_revision(&txn, enterprise_id).await?;
        txn.commit().await.map_err(storage)?;
        Ok((line_from(inserted), revision))
    }

    pub async fn insert_resource(
        &self,
        enterprise_id: &EnterpriseId,
        practice_id: &PracticeId,
        kind: ResourceKind,
        display_name: &str,
        time_zone: Option<&str>,
    ) -> Result<(Resource, i64), DomainError> {
        let txn = self.begin().await?;
        let row = resource::ActiveModel {
            id: Set(ResourceId::generate().0),
            practice_id: Set(practice_id.0.clone()),
            kind: Set(kind.as_str().to_owned()),
            display_name: Set(display_name.to_owned()),
            time_zone: Set(time_zone.map(str::to_owned)),
        };
        let inserted = resource::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(storage)?;
        let revision = Self::bump_revision(&txn, enterprise_id).await?;
        txn.commit().await.map_err(storage)?;
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

    // === users ===

    pub async fn insert_user(
        &self,
        enterprise_id: &EnterpriseId,
        new_user: &NewUser,
        status: UserStatus,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let txn = self.begin().await?;
        let id = UserId::generate();
        let row = user::ActiveModel {
            id: Set(id.0.clone()),
            enterprise_id: Set(enterprise_id.0.clone()),
            email: Set(new_user.email.clone()),
            given_name: Set(new_user.given_name.clone()),
            family_name: Set(new_user.family_name.clone()),
            kind: Set(new_user.kind.as_str().to_owned()),
            status: Set(status.as_str().to_owned()),
            created_at: Set(now),
        };
        let inserted = user::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(|error| match storage(error) {
                DomainError::AlreadyExists(_) => DomainError::AlreadyExists("user with this email"),
                other => other,
            })?;
        let mut membership_rows = Vec::new();
        for membership in &new_user.memberships {
            let line_ids: Vec<String> = if membership.line_ids.is_empty() {
                vec![String::new()]
            } else {
                membership
                    .line_ids
                    .iter()
                    .map(|line| line.0.clone())
                    .collect()
            };
            for line_id in line_ids {
                membership_rows.push(membership_line::ActiveModel {
                    user_id: Set(id.0.clone()),
                    practice_id: Set(membership.practice_id.0.clone()),
                    line_id: Set(line_id),
                });
            }
        }
        if !membership_rows.is_empty() {
            membership_line::Entity::insert_many(membership_rows)
                .exec(&txn)
                .await
                .map_err(storage)?;
        }
        let revision = Self::bump_revision(&txn, enterprise_id).await?;
        let mut users = attach_memberships(&txn, vec![inserted]).await?;
        txn.commit().await.map_err(storage)?;
        users
            .pop()
            .map(|user| (user, revision))
            .ok_or(DomainError::NotFound("user"))
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>, DomainError> {
        let row = user::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(attach_memberships(&self.db, row.into_iter().collect())
            .await?
            .pop())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, DomainError> {
        let row = user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(attach_memberships(&self.db, row.into_iter().collect())
            .await?
            .pop())
    }

    pub async fn list_users(
        &self,
        enterprise_id: &EnterpriseId,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<User>, DomainError> {
        let mut query = user::Entity::find()
            .filter(user::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(user::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = &page.after {
            query = query.filter(user::Column::Id.gt(after.as_str()));
        }
        if let Some(kind) = filter.kind {
            query = query.filter(user::Column::Kind.eq(kind.as_str()));
        }
        if let Some(practice_id) = &filter.practice_id {
            // D8: enterprise-level users reach every practice, without membership rows.
            let members = Query::select()
                .column(membership_line::Column::UserId)
                .from(membership_line::Entity)
                .and_where(membership_line::Column::PracticeId.eq(practice_id.as_str()))
                .to_owned();
            let enterprise_level: Vec<&str> = UserKind::ALL
                .iter()
                .filter(|kind| kind.is_enterprise_level())
                .map(|kind| kind.as_str())
                .collect();
            query = query.filter(
                Condition::any()
                    .add(user::Column::Id.in_subquery(members))
                    .add(user::Column::Kind.is_in(enterprise_level)),
            );
        }
        if let Some(text) = &filter.query {
            let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
            let matches = |column: user::Column| {
                Expr::expr(Func::lower(Expr::col(column)))
                    .like(LikeExpr::new(pattern.as_str()).escape('\\'))
            };
            query = query.filter(
                Condition::any()
                    .add(matches(user::Column::Email))
                    .add(matches(user::Column::GivenName))
                    .add(matches(user::Column::FamilyName)),
            );
        }
        let rows = query.all(&self.db).await.map_err(storage)?;
        let (rows, next_after) = split_page(rows, page.size, |row| row.id.clone());
        let items = attach_memberships(&self.db, rows).await?;
        Ok(Page { items, next_after })
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
    })
}

async fn attach_memberships<C: sea_orm::ConnectionTrait>(
    db: &C,
    rows: Vec<user::Model>,
) -> Result<Vec<User>, DomainError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let membership_rows = membership_line::Entity::find()
        .filter(membership_line::Column::UserId.is_in(ids))
        .order_by_asc(membership_line::Column::PracticeId)
        .order_by_asc(membership_line::Column::LineId)
        .all(db)
        .await
        .map_err(storage)?;
    let mut by_user: BTreeMap<String, BTreeMap<String, Vec<LineId>>> = BTreeMap::new();
    for row in membership_rows {
        let lines = by_user
            .entry(row.user_id)
            .or_default()
            .entry(row.practice_id)
            .or_default();
        if !row.line_id.is_empty() {
            lines.push(LineId(row.line_id));
        }
    }
    rows.into_iter()
        .map(|row| {
            let memberships = by_user
                .remove(&row.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(practice_id, line_ids)| Membership {
                    practice_id: PracticeId(practice_id),
                    line_ids,
                })
                .collect();
            let kind = UserKind::parse(&row.kind)
                .ok_or_else(|| DomainError::Storage(format!("unknown kind {}", row.kind)))?;
            let status = UserStatus::parse(&row.status)
                .ok_or_else(|| DomainError::Storage(format!("unknown status {}", row.status)))?;
            Ok(User {
                id: UserId(row.id),
                enterprise_id: EnterpriseId(row.enterprise_id),
                email: row.email,
                given_name: row.given_name,
                family_name: row.family_name,
                kind,
                status,
                memberships,
                created_at: row.created_at,
            })
        })
        .collect()
}

fn enterprise_from(row: enterprise::Model) -> Enterprise {
    Enterprise {
        id: EnterpriseId(row.id),
        display_name: row.display_name,
        revision: row.revision,
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
    })
}
