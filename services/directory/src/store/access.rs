//! Elevation requests and break-glass uses (A5), each written in one transaction with the role
//! binding it creates and the audit entry that records it.

use super::entities::{break_glass_use, elevation_request, role_binding};
use super::roles::binding_row;
use super::*;
use crate::domain::roles::RoleBinding;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

impl Store {
    pub async fn insert_elevation(
        &self,
        request: &elevation_request::Model,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let row: elevation_request::ActiveModel = request.clone().into();
        let enterprise_id = EnterpriseId(request.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            elevation_request::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn elevation(
        &self,
        id: &str,
    ) -> Result<Option<elevation_request::Model>, DomainError> {
        elevation_request::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(storage)
    }

    /// An enterprise's requests, newest first; only `user_id`'s when given.
    pub async fn elevations(
        &self,
        enterprise_id: &EnterpriseId,
        user_id: Option<&str>,
    ) -> Result<Vec<elevation_request::Model>, DomainError> {
        let mut query = elevation_request::Entity::find()
            .filter(elevation_request::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_desc(elevation_request::Column::RequestedAt);
        if let Some(user_id) = user_id {
            query = query.filter(elevation_request::Column::UserId.eq(user_id));
        }
        query.all(&self.db).await.map_err(storage)
    }

    /// Records a decision on a request still pending (ABORTED if someone decided first), with
    /// the binding an approval makes.
    pub async fn decide_elevation(
        &self,
        decided: &elevation_request::Model,
        binding: Option<&RoleBinding>,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let binding = binding.map(binding_row).transpose()?;
        let enterprise_id = EnterpriseId(decided.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            let updated = elevation_request::Entity::update_many()
                .col_expr(
                    elevation_request::Column::Status,
                    Expr::value(decided.status.clone()),
                )
                .col_expr(
                    elevation_request::Column::DecidedBy,
                    Expr::value(decided.decided_by.clone()),
                )
                .col_expr(
                    elevation_request::Column::DecidedAt,
                    Expr::value(decided.decided_at),
                )
                .col_expr(
                    elevation_request::Column::DecisionNote,
                    Expr::value(decided.decision_note.clone()),
                )
                .col_expr(
                    elevation_request::Column::BindingId,
                    Expr::value(decided.binding_id.clone()),
                )
                .col_expr(
                    elevation_request::Column::ExpiresAt,
                    Expr::value(decided.expires_at),
                )
                .filter(elevation_request::Column::Id.eq(decided.id.as_str()))
                .filter(elevation_request::Column::Status.eq("PENDING"))
                .exec(txn)
                .await
                .map_err(storage)?;
            if updated.rows_affected == 0 {
                return Err(DomainError::Aborted("the request was decided already"));
            }
            if let Some(row) = binding {
                role_binding::Entity::insert(row)
                    .exec_without_returning(txn)
                    .await
                    .map_err(storage)?;
            }
            Ok(())
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn insert_break_glass(
        &self,
        used: &break_glass_use::Model,
        binding: &RoleBinding,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let binding = binding_row(binding)?;
        let row: break_glass_use::ActiveModel = used.clone().into();
        let enterprise_id = EnterpriseId(used.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            role_binding::Entity::insert(binding)
                .exec_without_returning(txn)
                .await
                .map_err(storage)?;
            break_glass_use::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn break_glass_use(
        &self,
        id: &str,
    ) -> Result<Option<break_glass_use::Model>, DomainError> {
        break_glass_use::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(storage)
    }

    pub async fn break_glass_uses(
        &self,
        enterprise_id: &EnterpriseId,
        unreviewed_only: bool,
    ) -> Result<Vec<break_glass_use::Model>, DomainError> {
        let mut query = break_glass_use::Entity::find()
            .filter(break_glass_use::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_desc(break_glass_use::Column::StartedAt);
        if unreviewed_only {
            query = query.filter(break_glass_use::Column::ReviewedBy.is_null());
        }
        query.all(&self.db).await.map_err(storage)
    }

    /// Records the review of a use nobody reviewed yet (ABORTED otherwise).
    pub async fn review_break_glass(
        &self,
        reviewed: &break_glass_use::Model,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let enterprise_id = EnterpriseId(reviewed.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            let updated = break_glass_use::Entity::update_many()
                .col_expr(
                    break_glass_use::Column::ReviewedBy,
                    Expr::value(reviewed.reviewed_by.clone()),
                )
                .col_expr(
                    break_glass_use::Column::ReviewedAt,
                    Expr::value(reviewed.reviewed_at),
                )
                .col_expr(
                    break_glass_use::Column::ReviewNote,
                    Expr::value(reviewed.review_note.clone()),
                )
                .filter(break_glass_use::Column::Id.eq(reviewed.id.as_str()))
                .filter(break_glass_use::Column::ReviewedBy.is_null())
                .exec(txn)
                .await
                .map_err(storage)?;
            if updated.rows_affected == 0 {
                return Err(DomainError::Aborted("this use was reviewed already"));
            }
            Ok(())
        })
        .await
        .map(|((), revision)| revision)
    }
}
