//! Changes to practices, lines and resources, each checked against what leans on it in the
//! same transaction as the change.

use super::entities::{
    line, membership, membership_filter, membership_line, practice, resource, role_binding,
};
use super::{AuditEntry, Store, line_from, resource_from, storage};
use crate::domain::*;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

impl Store {
    pub async fn line(&self, id: &LineId) -> Result<Option<(Line, PracticeId)>, DomainError> {
        let row = line::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(row.map(|row| {
            let practice = PracticeId(row.practice_id.clone());
            (line_from(row), practice)
        }))
    }

    pub async fn resource(
        &self,
        id: &ResourceId,
    ) -> Result<Option<(Resource, PracticeId)>, DomainError> {
        let row = resource::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(row.and_then(|row| {
            let practice = PracticeId(row.practice_id.clone());
            resource_from(row).map(|resource| (resource, practice))
        }))
    }

    /// Every location of the enterprise: (location, practice, time zone).
    pub async fn locations(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<(ResourceId, PracticeId, Option<String>)>, DomainError> {
        locations_in(&self.db, enterprise_id).await
    }

    pub async fn rename_practice(
        &self,
        enterprise_id: &EnterpriseId,
        id: &PracticeId,
        expected_version: i64,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<(Practice, i64), DomainError> {
        let txn = self.begin().await?;
        let updated = practice::Entity::update_many()
            .col_expr(
                practice::Column::Version,
                Expr::col(practice::Column::Version).add(1),
            )
            .col_expr(practice::Column::DisplayName, Expr::value(name))
            .filter(practice::Column::Id.eq(id.as_str()))
            .filter(practice::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(storage)?;
        if updated.rows_affected != 1 {
            return Err(DomainError::Aborted(
                "the practice changed since it was read",
            ));
        }
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let row = practice::Entity::find_by_id(id.as_str())
            .one(&txn)
            .await
            .map_err(storage)?;
        let practice =
            super::load_practice(&txn, row.ok_or(DomainError::NotFound("practice"))?).await?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((practice, revision))
    }

    pub async fn delete_practice(
        &self,
        enterprise_id: &EnterpriseId,
        id: &PracticeId,
        expected_version: i64,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let txn = self.begin().await?;
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let members = membership::Entity::find()
            .filter(membership::Column::PracticeId.eq(id.as_str()))
            .count(&txn)
            .await
            .map_err(storage)?;
        let locations: Vec<String> = resource::Entity::find()
            .filter(resource::Column::PracticeId.eq(id.as_str()))
            .all(&txn)
            .await
            .map_err(storage)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let bound = role_binding::Entity::find()
            .filter(
                Condition::any()
                    .add(role_binding::Column::PracticeId.eq(id.as_str()))
                    .add(role_binding::Column::LocationId.is_in(locations)),
            )
            .count(&txn)
            .await
            .map_err(storage)?;
        if members > 0 || bound > 0 {
            return Err(DomainError::precondition(
                "PRACTICE_IN_USE",
                format!("{members} users belong to the practice and {bound} role bindings name it"),
            ));
        }
        line::Entity::delete_many()
            .filter(line::Column::PracticeId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(storage)?;
        resource::Entity::delete_many()
            .filter(resource::Column::PracticeId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(storage)?;
        let deleted = practice::Entity::delete_many()
            .filter(practice::Column::Id.eq(id.as_str()))
            .filter(practice::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(storage)?;
        if deleted.rows_affected != 1 {
            return Err(DomainError::Aborted(
                "the practice changed since it was read",
            ));
        }
        self.commit(txn, enterprise_id, revision).await?;
        Ok(revision)
    }

    pub async fn update_line(
        &self,
        enterprise_id: &EnterpriseId,
        line: &Line,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let row = line::ActiveModel {
            id: Set(line.id.0.clone()),
            display_name: Set(line.display_name.clone()),
            phone_number: Set(line.phone_number.clone()),
            ..Default::default()
        };
        let written = self
            .write(enterprise_id, audit, async |txn| {
                line::Entity::update(row).exec(txn).await.map_err(storage)
            })
            .await?;
        Ok(written.1)
    }

    /// D6: refused when a STAFF membership holds this line alone.
    pub async fn delete_line(
        &self,
        enterprise_id: &EnterpriseId,
        id: &LineId,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let txn = self.begin().await?;
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let holders = membership_line::Entity::find()
            .filter(membership_line::Column::LineId.eq(id.as_str()))
            .all(&txn)
            .await
            .map_err(storage)?;
        let mut stranded = 0;
        for holder in &holders {
            let lines = membership_line::Entity::find()
                .filter(membership_line::Column::UserId.eq(holder.user_id.as_str()))
                .filter(membership_line::Column::PracticeId.eq(holder.practice_id.as_str()))
                .count(&txn)
                .await
                .map_err(storage)?;
            if lines <= 1 {
                stranded += 1;
            }
        }
        if stranded > 0 {
            return Err(DomainError::precondition(
                "LINE_IN_USE",
                format!(
                    "{stranded} STAFF members have no other line (D6); give them another line first"
                ),
            ));
        }
        membership_line::Entity::delete_many()
            .filter(membership_line::Column::LineId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(storage)?;
        line::Entity::delete_by_id(id.as_str())
            .exec(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok(revision)
    }

    pub async fn update_resource(
        &self,
        enterprise_id: &EnterpriseId,
        resource: &Resource,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let profile = resource
            .provider_profile
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|error| DomainError::Storage(error.to_string()))?;
        let row = resource::ActiveModel {
            id: Set(resource.id.0.clone()),
            display_name: Set(resource.display_name.clone()),
            time_zone: Set(resource.time_zone.clone()),
            profile: Set(profile),
            ..Default::default()
        };
        let written = self
            .write(enterprise_id, audit, async |txn| {
                resource::Entity::update(row)
                    .exec(txn)
                    .await
                    .map_err(storage)
            })
            .await?;
        Ok(written.1)
    }

    /// Resource filters are preferences and go with the resource; a binding scoped to it is a
    /// permission and keeps it.
    pub async fn delete_resource(
        &self,
        enterprise_id: &EnterpriseId,
        id: &ResourceId,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let txn = self.begin().await?;
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let bound = role_binding::Entity::find()
            .filter(role_binding::Column::LocationId.eq(id.as_str()))
            .count(&txn)
            .await
            .map_err(storage)?;
        if bound > 0 {
            return Err(DomainError::precondition(
                "RESOURCE_IN_USE",
                format!("{bound} role bindings are scoped to this location"),
            ));
        }
        membership_filter::Entity::delete_many()
            .filter(membership_filter::Column::ResourceId.eq(id.as_str()))
            .exec(&txn)
            .await
            .map_err(storage)?;
        resource::Entity::delete_by_id(id.as_str())
            .exec(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok(revision)
    }
}

/// Every location of the enterprise, read on `db` (a connection or a transaction).
pub(super) async fn locations_in<C: sea_orm::ConnectionTrait>(
    db: &C,
    enterprise_id: &EnterpriseId,
) -> Result<Vec<(ResourceId, PracticeId, Option<String>)>, DomainError> {
    Ok(location_rows(db, enterprise_id)
        .await?
        .into_iter()
        .map(|row| {
            (
                ResourceId(row.id),
                PracticeId(row.practice_id),
                row.time_zone,
            )
        })
        .collect())
}

/// The enterprise's locations, by id.
pub(super) async fn location_rows<C: sea_orm::ConnectionTrait>(
    db: &C,
    enterprise_id: &EnterpriseId,
) -> Result<Vec<resource::Model>, DomainError> {
    // One query: this is on authz's cold path, where each trip to the database shows.
    let practices = sea_orm::sea_query::Query::select()
        .column(practice::Column::Id)
        .from(practice::Entity)
        .and_where(practice::Column::EnterpriseId.eq(enterprise_id.as_str()))
        .to_owned();
    resource::Entity::find()
        .filter(resource::Column::PracticeId.in_subquery(practices))
        .filter(resource::Column::Kind.eq(ResourceKind::Location.as_str()))
        .order_by_asc(resource::Column::Id)
        .all(db)
        .await
        .map_err(storage)
}
