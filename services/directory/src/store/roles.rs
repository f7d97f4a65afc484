//! Roles (D16) and role bindings (D17).

use super::entities::{practice, resource, role, role_binding, user};
use super::users::MembershipRows;
use super::{AuditEntry, Store, storage};
use crate::domain::catalogue;
use crate::domain::roles::*;
use crate::domain::*;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder,
};

fn role_from(row: role::Model) -> Result<Role, DomainError> {
    let rules: RoleRules = serde_json::from_str(&row.rules)
        .map_err(|error| DomainError::Storage(format!("role {} rules: {error}", row.id)))?;
    Ok(Role {
        id: RoleId(row.id),
        enterprise_id: EnterpriseId(row.enterprise_id),
        display_name: row.display_name,
        description: row.description,
        parent_role_id: row.parent_role_id.map(RoleId),
        grants: rules.grants,
        denials: rules.denials,
        field_masks: rules.field_masks,
        built_in: false,
        version: row.version,
        created_at: row.created_at,
    })
}

fn binding_from(row: role_binding::Model) -> Result<RoleBinding, DomainError> {
    let scope = match (
        row.practice_id,
        row.location_id,
        row.resource_type,
        row.resource_id,
    ) {
        (_, _, Some(kind), Some(id)) => BindingScope::Resource { kind, id },
        (Some(practice), None, _, _) => BindingScope::Practice(PracticeId(practice)),
        (None, Some(location), _, _) => BindingScope::Location(ResourceId(location)),
        _ => BindingScope::Enterprise,
    };
    let weekly_window = row
        .weekly_window
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|error| DomainError::Storage(format!("binding {} window: {error}", row.id)))?;
    Ok(RoleBinding {
        id: row.id,
        enterprise_id: EnterpriseId(row.enterprise_id),
        user_id: UserId(row.user_id),
        role_id: RoleId(row.role_id),
        scope,
        valid_from: row.valid_from,
        valid_until: row.valid_until,
        weekly_window,
        created_at: row.created_at,
        source: row.source,
    })
}

/// The stored form of a binding.
pub(super) fn binding_row(binding: &RoleBinding) -> Result<role_binding::ActiveModel, DomainError> {
    let (practice_id, location_id) = match &binding.scope {
        BindingScope::Enterprise | BindingScope::Resource { .. } => (None, None),
        BindingScope::Practice(p) => (Some(p.0.clone()), None),
        BindingScope::Location(l) => (None, Some(l.0.clone())),
    };
    let (resource_type, resource_id) = match &binding.scope {
        BindingScope::Resource { kind, id } => (Some(kind.clone()), Some(id.clone())),
        _ => (None, None),
    };
    let window = binding
        .weekly_window
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|error| DomainError::Storage(error.to_string()))?;
    Ok(role_binding::ActiveModel {
        id: Set(binding.id.clone()),
        enterprise_id: Set(binding.enterprise_id.0.clone()),
        user_id: Set(binding.user_id.0.clone()),
        role_id: Set(binding.role_id.0.clone()),
        practice_id: Set(practice_id),
        location_id: Set(location_id),
        valid_from: Set(binding.valid_from),
        valid_until: Set(binding.valid_until),
        weekly_window: Set(window),
        created_at: Set(binding.created_at),
        source: Set(binding.source.clone()),
        resource_type: Set(resource_type),
        resource_id: Set(resource_id),
    })
}

fn rules_json(draft: &RoleDraft) -> Result<String, DomainError> {
    serde_json::to_string(&draft.rules).map_err(|error| DomainError::Storage(error.to_string()))
}

/// What a principal snapshot is made of, as the enterprise was at `revision`.
#[derive(Debug, PartialEq)]
pub struct PrincipalParts {
    pub user: User,
    pub bindings: Vec<RoleBinding>,
    /// Every role the bindings name and every ancestor of those.
    pub roles: std::collections::HashMap<RoleId, Role>,
    pub locations: Vec<(ResourceId, PracticeId, Option<String>)>,
    pub revision: i64,
}

/// The snapshot's parts from its rows: every role the bindings name and every ancestor, built-in
/// templates from the catalogue.
fn parts_from(
    enterprise_id: &EnterpriseId,
    rows: PrincipalRows,
) -> Result<Option<PrincipalParts>, DomainError> {
    let Some(user) = rows.user else {
        return Ok(None);
    };
    let Some(user) = super::users::users_with(vec![user], rows.memberships)?.pop() else {
        return Ok(None);
    };
    let bindings = rows
        .bindings
        .into_iter()
        .map(binding_from)
        .collect::<Result<Vec<_>, _>>()?;
    let mut stored: std::collections::HashMap<String, role::Model> = rows
        .roles
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    let mut roles = std::collections::HashMap::new();
    let mut wanted: Vec<RoleId> = bindings.iter().map(|b| b.role_id.clone()).collect();
    while let Some(id) = wanted.pop() {
        if roles.contains_key(&id) {
            continue;
        }
        let role = if catalogue::is_built_in(&id.0) {
            catalogue::built_in_role(enterprise_id, &id.0)
        } else {
            stored.remove(&id.0).map(role_from).transpose()?
        };
        if let Some(role) = role {
            wanted.extend(role.parent_role_id.clone());
            roles.insert(id, role);
        }
    }
    let locations = rows
        .locations
        .into_iter()
        .map(|row| {
            (
                ResourceId(row.id),
                PracticeId(row.practice_id),
                row.time_zone,
            )
        })
        .collect();
    Ok(Some(PrincipalParts {
        user,
        bindings,
        roles,
        locations,
        revision: rows.revision,
    }))
}

/// The rows a principal snapshot is made of, as stored: the user (when of the enterprise), their
/// memberships and bindings, the stored roles those bindings name with every stored ancestor
/// (built-in templates are code), and the enterprise's locations.
#[derive(Debug, Default, serde::Deserialize)]
struct PrincipalRows {
    revision: i64,
    user: Option<user::Model>,
    #[serde(flatten)]
    memberships: MembershipRows,
    bindings: Vec<role_binding::Model>,
    roles: Vec<role::Model>,
    locations: Vec<resource::Model>,
}

/// All of `PrincipalRows` in one statement on PostgreSQL, so one trip to the database and,
/// being one statement, one snapshot of it (a cold Check waits for this). Orders as the
/// portable reading does.
const PRINCIPAL_ROWS_AT_ONCE: &str = r#"
WITH RECURSIVE chain(id) AS (
    SELECT role_id FROM role_bindings WHERE enterprise_id = $1 AND user_id = $2
  UNION
    SELECT r.parent_role_id FROM roles r JOIN chain c ON r.id = c.id
    WHERE r.enterprise_id = $1 AND r.parent_role_id IS NOT NULL
),
u AS (SELECT * FROM users WHERE id = $2 AND enterprise_id = $1),
m AS (SELECT * FROM memberships WHERE user_id IN (SELECT id FROM u))
SELECT json_build_object(
    'revision', e.revision,
    'user', (SELECT row_to_json(u) FROM u),
    'memberships', (SELECT coalesce(json_agg(m ORDER BY m.practice_id), '[]') FROM m),
    'staff_lines', (SELECT coalesce(json_agg(x ORDER BY x.line_id), '[]')
        FROM membership_lines x WHERE x.user_id IN (SELECT id FROM u)),
    'filters', (SELECT coalesce(json_agg(x ORDER BY x.resource_id), '[]')
        FROM membership_filters x WHERE x.user_id IN (SELECT id FROM u)),
    'practice_lines', (SELECT coalesce(json_agg(l ORDER BY l.id), '[]')
        FROM lines l WHERE l.practice_id IN (SELECT practice_id FROM m)),
    'bindings', (SELECT coalesce(json_agg(b ORDER BY b.id), '[]')
        FROM role_bindings b WHERE b.enterprise_id = $1 AND b.user_id IN (SELECT id FROM u)),
    'roles', (SELECT coalesce(json_agg(r ORDER BY r.id), '[]')
        FROM roles r WHERE r.enterprise_id = $1 AND r.id IN (SELECT id FROM chain)),
    'locations', (SELECT coalesce(json_agg(r ORDER BY r.id), '[]')
        FROM resources r WHERE r.kind = $3
        AND r.practice_id IN (SELECT id FROM practices WHERE enterprise_id = $1))
)::text AS parts
FROM enterprises e WHERE e.id = $1
"#;

impl Store {
    /// The parts of a principal snapshot, at one revision however many writers commit
    /// meanwhile: on PostgreSQL one statement, elsewhere the portable reading.
    pub async fn principal_parts(
        &self,
        enterprise_id: &EnterpriseId,
        user_id: &UserId,
    ) -> Result<Option<PrincipalParts>, DomainError> {
        let rows = match self.db.get_database_backend() {
            sea_orm::DbBackend::Postgres => {
                self.principal_rows_at_once(enterprise_id, user_id).await?
            }
            _ => self.principal_rows(enterprise_id, user_id).await?,
        };
        parts_from(enterprise_id, rows)
    }

    /// `principal_parts` read the portable way, whatever the database: tests hold
    /// PostgreSQL's one statement to this reading's answer.
    pub async fn principal_parts_read_apart(
        &self,
        enterprise_id: &EnterpriseId,
        user_id: &UserId,
    ) -> Result<Option<PrincipalParts>, DomainError> {
        let rows = self.principal_rows(enterprise_id, user_id).await?;
        parts_from(enterprise_id, rows)
    }

    async fn principal_rows_at_once(
        &self,
        enterprise_id: &EnterpriseId,
        user_id: &UserId,
    ) -> Result<PrincipalRows, DomainError> {
        let statement = sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            PRINCIPAL_ROWS_AT_ONCE,
            [
                enterprise_id.as_str().into(),
                user_id.as_str().into(),
                ResourceKind::Location.as_str().into(),
            ],
        );
        let row = self
            .db
            .query_one_raw(statement)
            .await
            .map_err(storage)?
            .ok_or(DomainError::NotFound("enterprise"))?;
        let text: String = row.try_get("", "parts").map_err(storage)?;
        serde_json::from_str(&text)
            .map_err(|error| DomainError::Storage(format!("principal rows: {error}")))
    }

    /// The rows query by query in one transaction (repeatable read on PostgreSQL; SQLite's
    /// transactions are serializable). Stored roles are read one level of every chain per query.
    async fn principal_rows(
        &self,
        enterprise_id: &EnterpriseId,
        user_id: &UserId,
    ) -> Result<PrincipalRows, DomainError> {
        use sea_orm::{AccessMode, DbBackend, IsolationLevel, TransactionTrait};
        let txn = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                self.db
                    .begin_with_config(
                        Some(IsolationLevel::RepeatableRead),
                        Some(AccessMode::ReadOnly),
                    )
                    .await
            }
            _ => self.db.begin().await,
        }
        .map_err(storage)?;
        let revision = super::revision_of(&txn, enterprise_id).await?;
        let user = user::Entity::find_by_id(user_id.as_str())
            .one(&txn)
            .await
            .map_err(storage)?
            .filter(|row| row.enterprise_id == enterprise_id.0);
        let Some(user) = user else {
            txn.commit().await.map_err(storage)?;
            return Ok(PrincipalRows {
                revision,
                ..PrincipalRows::default()
            });
        };
        let memberships = super::users::membership_rows(&txn, vec![user.id.clone()]).await?;
        let bindings = role_binding::Entity::find()
            .filter(role_binding::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .filter(role_binding::Column::UserId.eq(user_id.as_str()))
            .order_by_asc(role_binding::Column::Id)
            .all(&txn)
            .await
            .map_err(storage)?;
        let stored = |id: &String| !catalogue::is_built_in(id);
        let mut roles = Vec::new();
        let mut asked = std::collections::BTreeSet::new();
        let mut wanted: std::collections::BTreeSet<String> = bindings
            .iter()
            .map(|b| b.role_id.clone())
            .filter(stored)
            .collect();
        while !wanted.is_empty() {
            asked.extend(wanted.iter().cloned());
            let found = role::Entity::find()
                .filter(role::Column::EnterpriseId.eq(enterprise_id.as_str()))
                .filter(role::Column::Id.is_in(wanted))
                .order_by_asc(role::Column::Id)
                .all(&txn)
                .await
                .map_err(storage)?;
            wanted = found
                .iter()
                .filter_map(|role| role.parent_role_id.clone())
                .filter(|parent| stored(parent) && !asked.contains(parent))
                .collect();
            roles.extend(found);
        }
        let locations = super::structure::location_rows(&txn, enterprise_id).await?;
        txn.commit().await.map_err(storage)?;
        Ok(PrincipalRows {
            revision,
            user: Some(user),
            memberships,
            bindings,
            roles,
            locations,
        })
    }

    pub async fn role(&self, id: &RoleId) -> Result<Option<Role>, DomainError> {
        let row = role::Entity::find_by_id(id.0.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        row.map(role_from).transpose()
    }

    pub async fn roles(&self, enterprise_id: &EnterpriseId) -> Result<Vec<Role>, DomainError> {
        let rows = role::Entity::find()
            .filter(role::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(role::Column::Id)
            .all(&self.db)
            .await
            .map_err(storage)?;
        rows.into_iter().map(role_from).collect()
    }

    pub async fn insert_role(
        &self,
        enterprise_id: &EnterpriseId,
        draft: &RoleDraft,
        audit: &AuditEntry,
    ) -> Result<(Role, i64), DomainError> {
        let txn = self.begin().await?;
        // The revision first (see `write`).
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let row = role::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            enterprise_id: Set(enterprise_id.0.clone()),
            display_name: Set(draft.display_name.clone()),
            description: Set(draft.description.clone()),
            parent_role_id: Set(draft.parent_role_id.as_ref().map(|p| p.0.clone())),
            rules: Set(rules_json(draft)?),
            version: Set(1),
            created_at: Set(audit.time),
        };
        let inserted = role::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((role_from(inserted)?, revision))
    }

    pub async fn update_role(
        &self,
        enterprise_id: &EnterpriseId,
        id: &RoleId,
        expected_version: i64,
        draft: &RoleDraft,
        audit: &AuditEntry,
    ) -> Result<(Role, i64), DomainError> {
        let txn = self.begin().await?;
        let updated = role::Entity::update_many()
            .col_expr(
                role::Column::Version,
                Expr::col(role::Column::Version).add(1),
            )
            .col_expr(
                role::Column::DisplayName,
                Expr::value(draft.display_name.as_str()),
            )
            .col_expr(
                role::Column::Description,
                Expr::value(draft.description.as_str()),
            )
            .col_expr(
                role::Column::ParentRoleId,
                Expr::value(draft.parent_role_id.as_ref().map(|p| p.0.clone())),
            )
            .col_expr(role::Column::Rules, Expr::value(rules_json(draft)?))
            .filter(role::Column::Id.eq(id.0.as_str()))
            .filter(role::Column::Version.eq(expected_version))
            .exec(&txn)
            .await
            .map_err(storage)?;
        if updated.rows_affected != 1 {
            return Err(DomainError::Aborted("the role changed since it was read"));
        }
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let row = role::Entity::find_by_id(id.0.as_str())
            .one(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((
            role_from(row.ok_or(DomainError::NotFound("role"))?)?,
            revision,
        ))
    }

    /// Refused while a binding or a child role uses the role; checked in the deleting
    /// transaction so a concurrent bind cannot slip in unseen on SQLite, and is caught by the
    /// revision row lock on PostgreSQL.
    pub async fn delete_role(
        &self,
        enterprise_id: &EnterpriseId,
        id: &RoleId,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let txn = self.begin().await?;
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let bound = role_binding::Entity::find()
            .filter(role_binding::Column::RoleId.eq(id.0.as_str()))
            .count(&txn)
            .await
            .map_err(storage)?;
        let children = role::Entity::find()
            .filter(role::Column::ParentRoleId.eq(id.0.as_str()))
            .count(&txn)
            .await
            .map_err(storage)?;
        if bound > 0 || children > 0 {
            return Err(DomainError::precondition(
                "ROLE_IN_USE",
                format!("{bound} bindings and {children} child roles use this role"),
            ));
        }
        role::Entity::delete_by_id(id.0.as_str())
            .exec(&txn)
            .await
            .map_err(storage)?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok(revision)
    }

    /// A location's enterprise, and the location itself.
    pub async fn location(
        &self,
        id: &ResourceId,
    ) -> Result<Option<(EnterpriseId, ResourceId)>, DomainError> {
        let Some(row) = resource::Entity::find_by_id(id.0.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        if row.kind != ResourceKind::Location.as_str() {
            return Ok(None);
        }
        let owner = practice::Entity::find_by_id(row.practice_id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(owner.map(|p| (EnterpriseId(p.enterprise_id), ResourceId(row.id))))
    }

    pub async fn insert_binding(
        &self,
        binding: &RoleBinding,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let row = binding_row(binding)?;
        self.write(&binding.enterprise_id, audit, async |txn| {
            role_binding::Entity::insert(row)
                .exec_without_returning(txn)
                .await
                .map(|_| ())
                .map_err(storage)
        })
        .await
        .map(|((), revision)| revision)
    }

    pub async fn binding(&self, id: &str) -> Result<Option<RoleBinding>, DomainError> {
        let row = role_binding::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .map_err(storage)?;
        row.map(binding_from).transpose()
    }

    pub async fn bindings(
        &self,
        enterprise_id: &EnterpriseId,
        filter: &BindingFilter,
    ) -> Result<Vec<RoleBinding>, DomainError> {
        let mut query = role_binding::Entity::find()
            .filter(role_binding::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(role_binding::Column::Id);
        if let Some(user) = &filter.user_id {
            query = query.filter(role_binding::Column::UserId.eq(user.as_str()));
        }
        if let Some(role) = &filter.role_id {
            query = query.filter(role_binding::Column::RoleId.eq(role.0.as_str()));
        }
        if let Some(practice) = &filter.practice_id {
            query = query.filter(role_binding::Column::PracticeId.eq(practice.as_str()));
        }
        if let Some(location) = &filter.location_id {
            query = query.filter(role_binding::Column::LocationId.eq(location.as_str()));
        }
        let rows = query.all(&self.db).await.map_err(storage)?;
        rows.into_iter().map(binding_from).collect()
    }

    pub async fn delete_binding(
        &self,
        enterprise_id: &EnterpriseId,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<i64, DomainError> {
        let written = self
            .write(enterprise_id, audit, async |txn| {
                let deleted = role_binding::Entity::delete_by_id(id)
                    .exec(txn)
                    .await
                    .map_err(storage)?;
                if deleted.rows_affected == 0 {
                    return Err(DomainError::NotFound("role binding"));
                }
                Ok(())
            })
            .await?;
        Ok(written.1)
    }
}
