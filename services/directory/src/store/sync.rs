//! Directory sync: SCIM tokens, each written with the audit entry that records it.

use super::entities::{scim_resource, scim_settings, scim_token};
use super::*;

impl Store {
    pub async fn insert_scim_token(
        &self,
        token: &scim_token::Model,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let row: scim_token::ActiveModel = token.clone().into();
        let enterprise_id = EnterpriseId(token.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            scim_token::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn scim_token(&self, id: &str) -> Result<Option<scim_token::Model>, DomainError> {
        scim_token::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(storage)
    }

    pub async fn scim_token_by_prefix(
        &self,
        prefix: &str,
    ) -> Result<Option<scim_token::Model>, DomainError> {
        scim_token::Entity::find()
            .filter(scim_token::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(storage)
    }

    /// An enterprise's tokens, oldest first.
    pub async fn scim_tokens(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<scim_token::Model>, DomainError> {
        scim_token::Entity::find()
            .filter(scim_token::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(scim_token::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(storage)
    }

    /// Marks a token revoked unless it already is; false when it already was.
    pub async fn revoke_scim_token(
        &self,
        token: &scim_token::Model,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, DomainError> {
        let enterprise_id = EnterpriseId(token.enterprise_id.clone());
        let id = token.id.clone();
        let result = self
            .write(&enterprise_id, audit, async |txn| {
                let updated = scim_token::Entity::update_many()
                    .col_expr(scim_token::Column::RevokedAt, Expr::value(Some(now)))
                    .filter(scim_token::Column::Id.eq(id.as_str()))
                    .filter(scim_token::Column::RevokedAt.is_null())
                    .exec(txn)
                    .await
                    .map_err(storage)?;
                if updated.rows_affected == 0 {
                    // Nothing to record: roll the audit entry back with it.
                    return Err(DomainError::precondition(
                        "SCIM_TOKEN_REVOKED",
                        "this SCIM token is already revoked",
                    ));
                }
                Ok(())
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(DomainError::FailedPrecondition {
                reason: "SCIM_TOKEN_REVOKED",
                ..
            }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Records a use; at most one write a minute per token, so busy syncs do not write on
    /// every request.
    pub async fn touch_scim_token(&self, id: &str, now: DateTime<Utc>) -> Result<(), DomainError> {
        let stale = now - chrono::Duration::minutes(1);
        scim_token::Entity::update_many()
            .col_expr(scim_token::Column::LastUsedAt, Expr::value(Some(now)))
            .filter(scim_token::Column::Id.eq(id))
            .filter(
                sea_orm::Condition::any()
                    .add(scim_token::Column::LastUsedAt.is_null())
                    .add(scim_token::Column::LastUsedAt.lt(stale)),
            )
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(storage)
    }

    pub async fn insert_scim_resource(
        &self,
        row: &scim_resource::Model,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let active: scim_resource::ActiveModel = row.clone().into();
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            scim_resource::Entity::insert(active)
                .exec_without_returning(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn scim_resource(
        &self,
        enterprise_id: &EnterpriseId,
        resource_type: &str,
        id: &str,
    ) -> Result<Option<scim_resource::Model>, DomainError> {
        scim_resource::Entity::find_by_id(id)
            .filter(scim_resource::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .filter(scim_resource::Column::ResourceType.eq(resource_type))
            .one(&self.db)
            .await
            .map_err(storage)
    }

    /// An enterprise's resources of one type, oldest first.
    pub async fn scim_resources(
        &self,
        enterprise_id: &EnterpriseId,
        resource_type: &str,
    ) -> Result<Vec<scim_resource::Model>, DomainError> {
        scim_resource::Entity::find()
            .filter(scim_resource::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .filter(scim_resource::Column::ResourceType.eq(resource_type))
            .order_by_asc(scim_resource::Column::CreatedAt)
            .order_by_asc(scim_resource::Column::Id)
            .all(&self.db)
            .await
            .map_err(storage)
    }

    /// Stores `row` over the version `expected` (ABORTED when another write came first).
    pub async fn update_scim_resource(
        &self,
        row: &scim_resource::Model,
        expected: i64,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            let updated = scim_resource::Entity::update_many()
                .col_expr(
                    scim_resource::Column::NameKey,
                    Expr::value(row.name_key.clone()),
                )
                .col_expr(
                    scim_resource::Column::ExternalId,
                    Expr::value(row.external_id.clone()),
                )
                .col_expr(scim_resource::Column::Body, Expr::value(row.body.clone()))
                .col_expr(scim_resource::Column::Version, Expr::value(row.version))
                .col_expr(
                    scim_resource::Column::UpdatedAt,
                    Expr::value(row.updated_at),
                )
                .filter(scim_resource::Column::Id.eq(row.id.as_str()))
                .filter(scim_resource::Column::Version.eq(expected))
                .exec(txn)
                .await
                .map_err(storage)?;
            if updated.rows_affected != 1 {
                return Err(DomainError::Aborted("the resource changed meanwhile"));
            }
            Ok(())
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn delete_scim_resource(
        &self,
        row: &scim_resource::Model,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        self.write(&enterprise_id, audit, async |txn| {
            scim_resource::Entity::delete_by_id(row.id.as_str())
                .exec(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn scim_group_rules(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Option<String>, DomainError> {
        Ok(scim_settings::Entity::find_by_id(enterprise_id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?
            .map(|row| row.group_rules))
    }

    pub async fn put_scim_group_rules(
        &self,
        enterprise_id: &EnterpriseId,
        rules: String,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let row = scim_settings::ActiveModel {
            enterprise_id: Set(enterprise_id.0.clone()),
            group_rules: Set(rules),
            updated_at: Set(now),
        };
        self.write(enterprise_id, audit, async |txn| {
            scim_settings::Entity::insert(row)
                .on_conflict(
                    sea_orm::sea_query::OnConflict::column(scim_settings::Column::EnterpriseId)
                        .update_columns([
                            scim_settings::Column::GroupRules,
                            scim_settings::Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }
}
