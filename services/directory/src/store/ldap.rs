//! Directory sync over LDAP: the connection (written with its audit entry) and the bookkeeping
//! of a run (lease, last report, which user each entry became), which is not a change to the
//! directory and so is written plainly.

use super::entities::{ldap_link, ldap_sync};
use super::*;
use sea_orm::sea_query::OnConflict;

impl Store {
    pub async fn ldap_sync(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Option<ldap_sync::Model>, DomainError> {
        ldap_sync::Entity::find_by_id(enterprise_id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)
    }

    /// Creates or replaces the connection; a `None` secret keeps the stored one.
    pub async fn put_ldap_sync(
        &self,
        row: ldap_sync::Model,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        let mut columns = vec![
            ldap_sync::Column::Settings,
            ldap_sync::Column::IntervalMinutes,
            ldap_sync::Column::NextRunAt,
            ldap_sync::Column::UpdatedAt,
        ];
        if row.bind_secret.is_some() {
            columns.push(ldap_sync::Column::BindSecret);
        }
        let active: ldap_sync::ActiveModel = row.into();
        self.write(&enterprise_id, audit, async |txn| {
            ldap_sync::Entity::insert(active)
                .on_conflict(
                    OnConflict::column(ldap_sync::Column::EnterpriseId)
                        .update_columns(columns)
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

    /// Removes the connection and its links; the users stay as they are.
    pub async fn delete_ldap_sync(
        &self,
        enterprise_id: &EnterpriseId,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let id = enterprise_id.0.clone();
        self.write(enterprise_id, audit, async |txn| {
            ldap_link::Entity::delete_many()
                .filter(ldap_link::Column::EnterpriseId.eq(id.as_str()))
                .exec(txn)
                .await
                .map_err(storage)?;
            let deleted = ldap_sync::Entity::delete_by_id(id.as_str())
                .exec(txn)
                .await
                .map_err(storage)?;
            if deleted.rows_affected == 0 {
                return Err(DomainError::NotFound("LDAP sync"));
            }
            Ok(())
        })
        .await
        .map(|((), revision)| revision)
    }

    /// Enterprises whose scheduled run is due and not held by a run.
    pub async fn due_ldap_syncs(&self, now: DateTime<Utc>) -> Result<Vec<String>, DomainError> {
        ldap_sync::Entity::find()
            .filter(ldap_sync::Column::NextRunAt.lte(now))
            .filter(
                ldap_sync::Column::LeaseUntil
                    .is_null()
                    .or(ldap_sync::Column::LeaseUntil.lt(now)),
            )
            .all(&self.db)
            .await
            .map_err(storage)
            .map(|rows| rows.into_iter().map(|row| row.enterprise_id).collect())
    }

    /// Takes the connection for one run until `until`; false when another run holds it.
    pub async fn lease_ldap_sync(
        &self,
        enterprise_id: &EnterpriseId,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, DomainError> {
        let updated = ldap_sync::Entity::update_many()
            .col_expr(ldap_sync::Column::LeaseUntil, Expr::value(Some(until)))
            .filter(ldap_sync::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .filter(
                ldap_sync::Column::LeaseUntil
                    .is_null()
                    .or(ldap_sync::Column::LeaseUntil.lt(now)),
            )
            .exec(&self.db)
            .await
            .map_err(storage)?;
        Ok(updated.rows_affected == 1)
    }

    /// Records a run's report, lets go of the lease and sets the next scheduled run.
    pub async fn finish_ldap_sync(
        &self,
        enterprise_id: &EnterpriseId,
        report: String,
        next_run_at: Option<DateTime<Utc>>,
    ) -> Result<(), DomainError> {
        ldap_sync::Entity::update_many()
            .col_expr(ldap_sync::Column::LastRun, Expr::value(Some(report)))
            .col_expr(
                ldap_sync::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(ldap_sync::Column::NextRunAt, Expr::value(next_run_at))
            .filter(ldap_sync::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .exec(&self.db)
            .await
            .map(|_| ())
            .map_err(storage)
    }

    pub async fn ldap_links(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<ldap_link::Model>, DomainError> {
        ldap_link::Entity::find()
            .filter(ldap_link::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .all(&self.db)
            .await
            .map_err(storage)
    }

    pub async fn put_ldap_link(&self, link: ldap_link::Model) -> Result<(), DomainError> {
        let active: ldap_link::ActiveModel = link.into();
        ldap_link::Entity::insert(active)
            .on_conflict(
                OnConflict::columns([ldap_link::Column::EnterpriseId, ldap_link::Column::UserId])
                    .update_columns([
                        ldap_link::Column::EntryId,
                        ldap_link::Column::Dn,
                        ldap_link::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
            .map_err(storage)
    }
}
