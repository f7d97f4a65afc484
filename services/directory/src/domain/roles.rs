//! Custom roles (D16) and role bindings (D17). Enterprise admins manage them; every member may
//! read them. Built-in templates are code, read-only, copied to be changed.

use super::catalogue::{self, built_in_role, built_in_roles, is_built_in};
use super::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleId(pub String);

impl std::fmt::Display for RoleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Permission {
    pub feature: String,
    pub action: String,
}

impl Permission {
    pub fn new(feature: &str, action: &str) -> Self {
        Self {
            feature: feature.to_owned(),
            action: action.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantScope {
    Own,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub permission: Permission,
    pub scope: GrantScope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMaskRule {
    pub resource_type: String,
    pub fields: Vec<String>,
}

/// What a role allows and hides; the part stored as one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleRules {
    pub grants: Vec<Grant>,
    pub denials: Vec<Permission>,
    pub field_masks: Vec<FieldMaskRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: RoleId,
    pub enterprise_id: EnterpriseId,
    pub display_name: String,
    pub description: String,
    pub parent_role_id: Option<RoleId>,
    pub grants: Vec<Grant>,
    pub denials: Vec<Permission>,
    pub field_masks: Vec<FieldMaskRule>,
    pub built_in: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

/// A role as a client proposes it.
#[derive(Debug, Clone, Default)]
pub struct RoleDraft {
    pub display_name: String,
    pub description: String,
    pub parent_role_id: Option<RoleId>,
    pub rules: RoleRules,
}

/// Which fields of a role an update changes.
#[derive(Debug, Clone, Default)]
pub struct RoleUpdate {
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `Some(None)` removes the parent.
    pub parent_role_id: Option<Option<RoleId>>,
    pub grants: Option<Vec<Grant>>,
    pub denials: Option<Vec<Permission>>,
    pub field_masks: Option<Vec<FieldMaskRule>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow {
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    pub start_minute: u16,
    pub end_minute: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingScope {
    Enterprise,
    Practice(PracticeId),
    Location(ResourceId),
    /// A4: one resource, for an explicit grant (`permission:<feature:action>` roles only).
    Resource {
        kind: String,
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    pub id: String,
    pub enterprise_id: EnterpriseId,
    pub user_id: UserId,
    pub role_id: RoleId,
    pub scope: BindingScope,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub weekly_window: Option<WeeklyWindow>,
    pub created_at: DateTime<Utc>,
    /// Set when a connector (an SSO connection, `sso:<id>`) manages the binding; admins' are `None`.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct BindingFilter {
    pub user_id: Option<UserId>,
    pub role_id: Option<RoleId>,
    pub practice_id: Option<PracticeId>,
    pub location_id: Option<ResourceId>,
}

/// Every catalogued permission named, each at most once.
fn check_rules(rules: &RoleRules, problems: &mut Vec<(String, String)>) {
    let mut granted = HashSet::new();
    for (index, grant) in rules.grants.iter().enumerate() {
        let p = &grant.permission;
        if !catalogue::knows(&p.feature, &p.action) {
            problems.push((
                format!("role.grants[{index}]"),
                format!(
                    "{}:{} is not in the permission catalogue",
                    p.feature, p.action
                ),
            ));
        } else if !granted.insert(p.clone()) {
            problems.push((
                format!("role.grants[{index}]"),
                format!("{}:{} granted twice", p.feature, p.action),
            ));
        }
    }
    for (index, denial) in rules.denials.iter().enumerate() {
        if !catalogue::knows(&denial.feature, &denial.action) {
            problems.push((
                format!("role.denials[{index}]"),
                format!(
                    "{}:{} is not in the permission catalogue",
                    denial.feature, denial.action
                ),
            ));
        }
    }
    for (index, mask) in rules.field_masks.iter().enumerate() {
        if mask.resource_type.trim().is_empty()
            || mask.fields.is_empty()
            || mask.fields.iter().any(|f| f.trim().is_empty())
        {
            problems.push((
                format!("role.field_masks[{index}]"),
                "a resource type and at least one field".to_owned(),
            ));
        }
    }
}

fn check_window(window: &WeeklyWindow) -> Result<(), DomainError> {
    let mut days = window.days.clone();
    days.sort_unstable();
    days.dedup();
    if days.is_empty()
        || days.len() != window.days.len()
        || days.iter().any(|d| !(1..=7).contains(d))
    {
        return Err(DomainError::invalid(
            "binding.weekly_window.days",
            "distinct ISO weekdays 1..7",
        ));
    }
    if window.start_minute >= window.end_minute || window.end_minute > 1440 {
        return Err(DomainError::invalid(
            "binding.weekly_window",
            "0 <= start_minute < end_minute <= 1440",
        ));
    }
    Ok(())
}

impl Directory {
    pub(super) async fn require_admin(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        what: &'static str,
    ) -> Result<(), DomainError> {
        if !actor.reaches(enterprise_id) {
            return Err(DomainError::NotFound("enterprise"));
        }
        let authority = self.authority(actor, enterprise_id).await?;
        // An active admin's own row names the enterprise (a foreign key), so it exists: one read
        // fewer on every admin's write. Anyone else hears NOT_FOUND for a missing enterprise
        // before PERMISSION_DENIED, as before.
        if matches!(authority, Authority::Admin) {
            return Ok(());
        }
        self.visible_enterprise(actor, enterprise_id).await?;
        if authority.administers() {
            Ok(())
        } else {
            Err(DomainError::PermissionDenied(what))
        }
    }

    /// A role as `enterprise_id` sees it: its own custom roles and the built-in templates.
    pub async fn get_role(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        id: &RoleId,
    ) -> Result<Role, DomainError> {
        self.visible_enterprise(actor, enterprise_id).await?;
        self.role_in(enterprise_id, id)
            .await?
            .ok_or(DomainError::NotFound("role"))
    }

    /// A custom role by id alone, if the actor may see it.
    pub async fn get_custom_role(&self, actor: &Actor, id: &RoleId) -> Result<Role, DomainError> {
        let role = self
            .store
            .role(id)
            .await?
            .ok_or(DomainError::NotFound("role"))?;
        if !actor.reaches(&role.enterprise_id) {
            return Err(DomainError::NotFound("role"));
        }
        Ok(role)
    }

    pub(super) async fn role_in(
        &self,
        enterprise_id: &EnterpriseId,
        id: &RoleId,
    ) -> Result<Option<Role>, DomainError> {
        if is_built_in(&id.0) {
            return Ok(built_in_role(enterprise_id, &id.0));
        }
        Ok(self
            .store
            .role(id)
            .await?
            .filter(|role| role.enterprise_id == *enterprise_id))
    }

    pub async fn list_roles(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<(Vec<Role>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        let mut roles = self.store.roles(enterprise_id).await?;
        roles.extend(built_in_roles(enterprise_id));
        Ok((roles, enterprise.revision))
    }

    /// The parent must be a role the enterprise sees, and making it the parent must not close a
    /// cycle.
    async fn check_parent(
        &self,
        enterprise_id: &EnterpriseId,
        role: Option<&RoleId>,
        parent: &RoleId,
    ) -> Result<(), DomainError> {
        let mut current = self.role_in(enterprise_id, parent).await?;
        if current.is_none() {
            return Err(DomainError::invalid(
                "role.parent_role_id",
                "no such role in this enterprise",
            ));
        }
        let mut seen = HashSet::new();
        while let Some(ancestor) = current {
            if Some(&ancestor.id) == role || !seen.insert(ancestor.id.clone()) {
                return Err(DomainError::precondition(
                    "ROLE_CYCLE",
                    "a role cannot inherit from itself",
                ));
            }
            current = match &ancestor.parent_role_id {
                Some(next) => self.role_in(enterprise_id, next).await?,
                None => None,
            };
        }
        Ok(())
    }

    pub async fn create_role(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        draft: RoleDraft,
        now: DateTime<Utc>,
    ) -> Result<(Role, i64), DomainError> {
        let mut problems = Vec::new();
        let name = service::display_name("role.display_name", &draft.display_name)
            .map_err(|e| flatten(e, &mut problems))
            .ok();
        if draft.description.chars().count() > 2000 {
            problems.push((
                "role.description".to_owned(),
                "at most 2000 characters".to_owned(),
            ));
        }
        check_rules(&draft.rules, &mut problems);
        let Some(name) = name.filter(|_| problems.is_empty()) else {
            return Err(DomainError::InvalidArgument(problems));
        };
        self.require_admin(
            actor,
            enterprise_id,
            "only enterprise admins manage roles (D16)",
        )
        .await?;
        if let Some(parent) = &draft.parent_role_id {
            self.check_parent(enterprise_id, None, parent).await?;
        }
        let draft = RoleDraft {
            display_name: name,
            ..draft
        };
        let audit = actor.audit(
            "role.create",
            format!("enterprise:{enterprise_id}"),
            serde_json::json!({"display_name": draft.display_name}),
            now,
        );
        self.store.insert_role(enterprise_id, &draft, &audit).await
    }

    pub async fn copy_role(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        source: &RoleId,
        display_name: &str,
        now: DateTime<Utc>,
    ) -> Result<(Role, i64), DomainError> {
        let source = self.get_role(actor, enterprise_id, source).await?;
        let name = if display_name.trim().is_empty() {
            format!("Copy of {}", source.display_name)
        } else {
            display_name.to_owned()
        };
        let draft = RoleDraft {
            display_name: name,
            description: source.description,
            parent_role_id: source.parent_role_id,
            rules: RoleRules {
                grants: source.grants,
                denials: source.denials,
                field_masks: source.field_masks,
            },
        };
        self.create_role(actor, enterprise_id, draft, now).await
    }

    pub async fn update_role(
        &self,
        actor: &Actor,
        id: &RoleId,
        update: RoleUpdate,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(Role, i64), DomainError> {
        if is_built_in(&id.0) {
            return Err(DomainError::precondition(
                "BUILT_IN_ROLE",
                "built-in templates are read-only; copy them (D16)",
            ));
        }
        let role = self.get_custom_role(actor, id).await?;
        self.require_admin(
            actor,
            &role.enterprise_id,
            "only enterprise admins manage roles (D16)",
        )
        .await?;
        if etag.is_some_and(|version| version != role.version) {
            return Err(DomainError::Aborted("the role changed since it was read"));
        }
        let mut problems = Vec::new();
        let display_name = match &update.display_name {
            Some(name) => service::display_name("role.display_name", name)
                .map_err(|e| flatten(e, &mut problems))
                .ok(),
            None => Some(role.display_name.clone()),
        };
        let rules = RoleRules {
            grants: update.grants.unwrap_or(role.grants),
            denials: update.denials.unwrap_or(role.denials),
            field_masks: update.field_masks.unwrap_or(role.field_masks),
        };
        check_rules(&rules, &mut problems);
        let Some(display_name) = display_name.filter(|_| problems.is_empty()) else {
            return Err(DomainError::InvalidArgument(problems));
        };
        let parent_role_id = update.parent_role_id.unwrap_or(role.parent_role_id);
        if let Some(parent) = &parent_role_id {
            self.check_parent(&role.enterprise_id, Some(&role.id), parent)
                .await?;
        }
        let draft = RoleDraft {
            display_name,
            description: update.description.unwrap_or(role.description),
            parent_role_id,
            rules,
        };
        let audit = actor.audit(
            "role.update",
            format!("role:{id}"),
            serde_json::json!({}),
            now,
        );
        self.store
            .update_role(&role.enterprise_id, id, role.version, &draft, &audit)
            .await
    }

    pub async fn delete_role(
        &self,
        actor: &Actor,
        id: &RoleId,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        if is_built_in(&id.0) {
            return Err(DomainError::precondition(
                "BUILT_IN_ROLE",
                "built-in templates cannot be deleted",
            ));
        }
        let role = self.get_custom_role(actor, id).await?;
        self.require_admin(
            actor,
            &role.enterprise_id,
            "only enterprise admins manage roles (D16)",
        )
        .await?;
        if etag.is_some_and(|version| version != role.version) {
            return Err(DomainError::Aborted("the role changed since it was read"));
        }
        let audit = actor.audit(
            "role.delete",
            format!("role:{id}"),
            serde_json::json!({}),
            now,
        );
        self.store
            .delete_role(&role.enterprise_id, id, &audit)
            .await
    }

    /// D17: a role for a user over the enterprise, a practice or a location.
    pub async fn create_binding(
        &self,
        actor: &Actor,
        binding: RoleBinding,
        now: DateTime<Utc>,
    ) -> Result<(RoleBinding, i64), DomainError> {
        let backwards = matches!((binding.valid_from, binding.valid_until), (Some(from), Some(until)) if from >= until);
        if backwards {
            return Err(DomainError::invalid(
                "binding.valid_until",
                "must be after valid_from",
            ));
        }
        if let Some(window) = &binding.weekly_window {
            check_window(window)?;
            if !matches!(binding.scope, BindingScope::Location(_)) {
                return Err(DomainError::invalid(
                    "binding.weekly_window",
                    "a weekly window follows a location's time zone; bind to a location (D17)",
                ));
            }
        }
        let user = self
            .store
            .user_standing(&binding.user_id)
            .await?
            .filter(|u| actor.reaches(&u.enterprise_id) && u.status != UserStatus::Deleted);
        let user = user.ok_or(DomainError::NotFound("user"))?;
        let enterprise_id = user.enterprise_id.clone();
        self.require_admin(
            actor,
            &enterprise_id,
            "only enterprise admins bind roles (D17)",
        )
        .await?;
        if self
            .role_in(&enterprise_id, &binding.role_id)
            .await?
            .is_none()
        {
            return Err(DomainError::invalid(
                "binding.role_id",
                "no such role in this enterprise",
            ));
        }
        match &binding.scope {
            BindingScope::Enterprise => {}
            BindingScope::Practice(practice_id) => {
                let practice = self.store.practice(practice_id).await?;
                if practice.is_none_or(|p| p.enterprise_id != enterprise_id) {
                    return Err(DomainError::invalid(
                        "binding.practice_id",
                        "no such practice in this enterprise",
                    ));
                }
            }
            BindingScope::Resource { .. } => {
                return Err(DomainError::invalid(
                    "binding.resource_id",
                    "grants on one resource are made with AccessService (A4)",
                ));
            }
            BindingScope::Location(location_id) => {
                let location = self.store.location(location_id).await?;
                if location.is_none_or(|(owner, _)| owner != enterprise_id) {
                    return Err(DomainError::invalid(
                        "binding.location_id",
                        "no such location in this enterprise",
                    ));
                }
            }
        }
        let binding = RoleBinding {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: enterprise_id.clone(),
            created_at: now,
            ..binding
        };
        let audit = actor.audit(
            "role_binding.create",
            format!("user:{}", binding.user_id),
            serde_json::json!({"role_id": binding.role_id.0, "binding_id": binding.id}),
            now,
        );
        let revision = self.store.insert_binding(&binding, &audit).await?;
        Ok((binding, revision))
    }

    pub async fn list_bindings(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        filter: &BindingFilter,
    ) -> Result<(Vec<RoleBinding>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        Ok((
            self.store.bindings(enterprise_id, filter).await?,
            enterprise.revision,
        ))
    }

    pub async fn delete_binding(
        &self,
        actor: &Actor,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let binding = self
            .store
            .binding(id)
            .await?
            .filter(|b| actor.reaches(&b.enterprise_id));
        let binding = binding.ok_or(DomainError::NotFound("role binding"))?;
        self.require_admin(
            actor,
            &binding.enterprise_id,
            "only enterprise admins bind roles (D17)",
        )
        .await?;
        let audit = actor.audit(
            "role_binding.delete",
            format!("user:{}", binding.user_id),
            serde_json::json!({"binding_id": id}),
            now,
        );
        self.store
            .delete_binding(&binding.enterprise_id, id, &audit)
            .await
    }
}

fn flatten(error: DomainError, problems: &mut Vec<(String, String)>) {
    match error {
        DomainError::InvalidArgument(list) => problems.extend(list),
        other => problems.push(("request".to_owned(), other.to_string())),
    }
}

/// A role and its ancestors, nearest first, from the roles at hand; a missing role ends the
/// chain (a binding to a role that is gone has an empty one).
fn chain_of(roles: &HashMap<RoleId, Role>, start: &RoleId) -> Vec<Role> {
    let mut chain: Vec<Role> = Vec::new();
    let mut next = Some(start.clone());
    while let Some(id) = next {
        if chain.iter().any(|role| role.id == id) {
            break;
        }
        let Some(role) = roles.get(&id) else {
            break;
        };
        next = role.parent_role_id.clone();
        chain.push(role.clone());
    }
    chain
}

/// Everything a decision needs about one principal (for authz), read at one revision.
#[derive(Debug, Clone)]
pub struct PrincipalSnapshot {
    pub user: User,
    /// Each binding with its role and the role's ancestors, nearest first.
    pub bindings: Vec<(RoleBinding, Vec<Role>)>,
    /// Every location of the enterprise: (location, its practice, its time zone).
    pub locations: Vec<(ResourceId, PracticeId, Option<String>)>,
    pub revision: i64,
}

impl Directory {
    /// A user may read their own snapshot, enterprise admins anyone's of their enterprise. The
    /// parts are read in one transaction, so the snapshot is what the enterprise was at
    /// `revision` however busy its writers are.
    pub async fn principal_snapshot(
        &self,
        actor: &Actor,
        user_id: &UserId,
    ) -> Result<PrincipalSnapshot, DomainError> {
        // Every read here on the snapshot connections: a cold Check waits for them, while
        // writers queued behind the enterprise's row lock may hold all of the main pool's.
        let reader = Directory {
            store: self.store.snapshot_reader(),
            ..self.clone()
        };
        reader.principal_snapshot_read(actor, user_id).await
    }

    async fn principal_snapshot_read(
        &self,
        actor: &Actor,
        user_id: &UserId,
    ) -> Result<PrincipalSnapshot, DomainError> {
        // Only the platform reaches past its own enterprise, so for everyone else the caller's
        // enterprise is the only one worth looking in (and a user of another one is not found
        // there): no query to learn the user's enterprise on authz's cold path.
        let enterprise_id = match actor {
            Actor::Caller(caller) if !actor.is_platform_admin() => {
                EnterpriseId(caller.enterprise_id.clone())
            }
            _ => self
                .store
                .user_standing(user_id)
                .await?
                .map(|standing| standing.enterprise_id)
                .ok_or(DomainError::NotFound("user"))?,
        };
        let own = matches!(actor, Actor::Caller(caller) if caller.user_id == user_id.0);
        // The checking service first: it needs no read of the caller's own user.
        if !own
            && !self.checks_for_authz(actor, &enterprise_id).await?
            && !self.authority(actor, &enterprise_id).await?.administers()
        {
            return Err(DomainError::PermissionDenied(
                "a user reads their own snapshot; admins and checking services anyone's",
            ));
        }
        let parts = self
            .store
            .principal_parts(&enterprise_id, user_id)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        let bindings = parts
            .bindings
            .into_iter()
            .map(|binding| {
                let chain = chain_of(&parts.roles, &binding.role_id);
                (binding, chain)
            })
            .collect();
        Ok(PrincipalSnapshot {
            user: parts.user,
            bindings,
            locations: parts.locations,
            revision: parts.revision,
        })
    }

    /// A service account of the enterprise holding `authz:check` through a binding valid now
    /// (and not denied it anywhere in its roles): authz asks about anyone for it (A1).
    async fn checks_for_authz(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<bool, DomainError> {
        let Actor::Caller(caller) = actor else {
            return Ok(false);
        };
        if caller.kind != UserKind::ServiceAccount.as_str()
            || caller.enterprise_id != enterprise_id.0
        {
            return Ok(false);
        }
        let wanted = Permission::new("authz", "check");
        let now = chrono::Utc::now();
        let filter = BindingFilter {
            user_id: Some(UserId(caller.user_id.clone())),
            ..BindingFilter::default()
        };
        let mut granted = false;
        for binding in self.store.bindings(enterprise_id, &filter).await? {
            let current = binding.valid_from.is_none_or(|from| from <= now)
                && binding.valid_until.is_none_or(|until| until > now)
                && binding.weekly_window.is_none()
                && matches!(binding.scope, BindingScope::Enterprise);
            for role in self.role_chain(enterprise_id, &binding.role_id).await? {
                if role.denials.contains(&wanted) {
                    return Ok(false);
                }
                granted |= current
                    && role
                        .grants
                        .iter()
                        .any(|g| g.permission == wanted && g.scope == GrantScope::All);
            }
        }
        Ok(granted)
    }

    async fn role_chain(
        &self,
        enterprise_id: &EnterpriseId,
        role_id: &RoleId,
    ) -> Result<Vec<Role>, DomainError> {
        let mut chain: Vec<Role> = Vec::new();
        let mut next = Some(role_id.clone());
        while let Some(id) = next {
            if chain.iter().any(|role| role.id == id) {
                break;
            }
            let Some(role) = self.role_in(enterprise_id, &id).await? else {
                break;
            };
            next = role.parent_role_id.clone();
            chain.push(role);
        }
        Ok(chain)
    }
}
