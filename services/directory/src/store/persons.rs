//! D15: person records.

use super::entities::{person, user};
use super::{AuditEntry, Store, split_page, storage};
use crate::domain::persons::{Person, PersonDraft};
use crate::domain::*;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect,
};

fn person_from(row: person::Model) -> Person {
    Person {
        id: row.id,
        enterprise_id: EnterpriseId(row.enterprise_id),
        email: row.email,
        given_name: row.given_name,
        family_name: row.family_name,
        phone_number: row.phone_number,
        user_id: row.user_id.map(UserId),
        version: row.version,
        created_at: row.created_at,
    }
}

impl Store {
    pub async fn insert_person(
        &self,
        enterprise_id: &EnterpriseId,
        draft: &PersonDraft,
        audit: &AuditEntry,
    ) -> Result<(Person, i64), DomainError> {
        let txn = self.begin().await?;
        // The revision first (see `write`).
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let row = person::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            enterprise_id: Set(enterprise_id.0.clone()),
            email: Set(draft.email.clone()),
            given_name: Set(draft.given_name.clone()),
            family_name: Set(draft.family_name.clone()),
            phone_number: Set(draft.phone_number.clone()),
            user_id: Set(None),
            version: Set(1),
            created_at: Set(audit.time),
        };
        let inserted = person::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(|error| match storage(error) {
                DomainError::AlreadyExists(_) => {
                    DomainError::AlreadyExists("person with this email")
                }
                other => other,
            })?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((person_from(inserted), revision))
    }

    pub async fn person(&self, id: &str) -> Result<Option<Person>, DomainError> {
        let row = person::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(row.map(person_from))
    }

    pub async fn list_persons(
        &self,
        enterprise_id: &EnterpriseId,
        page: &PageRequest,
    ) -> Result<Page<Person>, DomainError> {
        let mut query = person::Entity::find()
            .filter(person::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(person::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = &page.after {
            query = query.filter(person::Column::Id.gt(after.as_str()));
        }
        let rows = query.all(&self.db).await.map_err(storage)?;
        let (rows, next_after) = split_page(rows, page.size, |row| row.id.clone());
        Ok(Page {
            items: rows.into_iter().map(person_from).collect(),
            next_after,
        })
    }

    /// Names and phone of a person, and of the login made from them (the person owns them).
    pub async fn update_person(
        &self,
        person: &Person,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> Result<(Person, i64), DomainError> {
        let txn = self.begin().await?;
        let updated = person::Entity::update_many()
            .col_expr(
                person::Column::Version,
                Expr::col(person::Column::Version).add(1),
            )
            .col_expr(
                person::Column::GivenName,
                Expr::value(person.given_name.as_str()),
            )
            .col_expr(
                person::Column::FamilyName,
                Expr::value(person.family_name.as_str()),
            )
            .col_expr(
                person::Column::PhoneNumber,
                Expr::value(person.phone_number.clone()),
            )
            .filter(person::Column::Id.eq(person.id.as_str()))
            .filter(person::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(storage)?;
        if updated.rows_affected != 1 {
            return Err(DomainError::Aborted("the person changed since it was read"));
        }
        if let Some(user_id) = &person.user_id {
            user::Entity::update_many()
                .col_expr(
                    user::Column::Version,
                    Expr::col(user::Column::Version).add(1),
                )
                .col_expr(
                    user::Column::GivenName,
                    Expr::value(person.given_name.as_str()),
                )
                .col_expr(
                    user::Column::FamilyName,
                    Expr::value(person.family_name.as_str()),
                )
                .filter(user::Column::Id.eq(user_id.as_str()))
                .exec(&txn)
                .await
                .map_err(storage)?;
        }
        let revision = Self::record_write(&txn, &person.enterprise_id, audit).await?;
        let row = person::Entity::find_by_id(person.id.as_str())
            .one(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, &person.enterprise_id, revision).await?;
        Ok((
            person_from(row.ok_or(DomainError::NotFound("person"))?),
            revision,
        ))
    }
}

/// Links a new login to its person, in the creating transaction; refused if the person has
/// one already (checked again here, where it cannot race).
pub(super) async fn link_person(
    txn: &DatabaseTransaction,
    person_id: &str,
    user_id: &UserId,
) -> Result<(), DomainError> {
    let linked = person::Entity::update_many()
        .col_expr(person::Column::UserId, Expr::value(user_id.as_str()))
        .col_expr(
            person::Column::Version,
            Expr::col(person::Column::Version).add(1),
        )
        .filter(person::Column::Id.eq(person_id))
        .filter(person::Column::UserId.is_null())
        .exec(txn)
        .await
        .map_err(storage)?;
    if linked.rows_affected != 1 {
        return Err(DomainError::precondition(
            "PERSON_HAS_LOGIN",
            "this person has a login already (D15)",
        ));
    }
    Ok(())
}
