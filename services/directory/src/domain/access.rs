//! Access beyond roles (A4, A5): explicit grants on one resource, elevation with separation of
//! duties, and break-glass. Each becomes a role binding with an end, so authz decides with it
//! like with any other at the next revision, and it stops counting at its expiry without anyone
//! acting.

use super::audit::IncomingEvent;
use super::catalogue::{knows, permission_role_id};
use super::roles::{BindingFilter, BindingScope, Permission, RoleBinding, RoleId};
use super::*;
use crate::store::AuditEntry;
use crate::store::entities::{break_glass_use, elevation_request};
use chrono::{DateTime, Duration, Utc};

pub const GRANT_SOURCE: &str = "grant";
const LONGEST_ELEVATION_MINUTES: i32 = 14 * 24 * 60;
const MAX_ID_LENGTH: usize = 200;

/// Where an elevation request stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElevationState {
    Pending,
    Active,
    Expired,
    Rejected,
}

pub fn elevation_state(request: &elevation_request::Model, now: DateTime<Utc>) -> ElevationState {
    match request.status.as_str() {
        "PENDING" => ElevationState::Pending,
        "REJECTED" => ElevationState::Rejected,
        _ if request.expires_at.is_some_and(|t| t > now) => ElevationState::Active,
        _ => ElevationState::Expired,
    }
}

fn caller_of(actor: &Actor) -> Result<&praxis_runtime::Caller, DomainError> {
    match actor {
        Actor::Caller(caller) if !caller.user_id.is_empty() && !caller.enterprise_id.is_empty() => {
            Ok(caller)
        }
        _ => Err(DomainError::PermissionDenied(
            "only a user of an enterprise acts for themselves here",
        )),
    }
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Operator => "operator".to_owned(),
        Actor::Caller(caller) => caller.user_id.clone(),
    }
}

fn justification(field: &str, text: &str) -> Result<String, DomainError> {
    let text = text.trim();
    if text.chars().count() < 10 || text.chars().count() > 1000 {
        return Err(DomainError::invalid(field, "10 to 1000 characters"));
    }
    Ok(text.to_owned())
}

/// Service accounts' emails are in a domain that cannot receive mail or be allowlisted (D2).
pub const SERVICE_ACCOUNT_DOMAIN: &str = "service-accounts.invalid";

impl Directory {
    /// I7: a service account: a principal without a password, holding only the roles bound to
    /// it, for integrations that authenticate with API keys.
    pub async fn create_service_account(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        display_name: &str,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let name = super::service::display_name("display_name", display_name)?;
        self.require_admin(
            actor,
            enterprise_id,
            "only enterprise admins create service accounts (I7)",
        )
        .await?;
        let new_user = NewUser {
            email: format!(
                "sa-{}@{SERVICE_ACCOUNT_DOMAIN}",
                uuid::Uuid::now_v7().simple()
            ),
            given_name: name,
            family_name: "Service account".to_owned(),
            kind: UserKind::ServiceAccount,
            memberships: Vec::new(),
            person_id: None,
        };
        let audit = actor.audit(
            "service_account.create",
            format!("user:{}", new_user.email),
            serde_json::json!({"display_name": new_user.given_name}),
            now,
        );
        let (user, revision, _) = self
            .store
            .insert_user(
                enterprise_id,
                &new_user,
                UserStatus::Active,
                None,
                None,
                &audit,
            )
            .await?;
        Ok((user, revision))
    }

    /// A4: "`user` may `permission` on resource (`kind`, `id`) until `until`", by an admin.
    pub async fn grant_resource_access(
        &self,
        actor: &Actor,
        user_id: &UserId,
        permission: &str,
        resource: (&str, &str),
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(RoleBinding, i64), DomainError> {
        let mut problems = Vec::new();
        let permission = match permission.trim().split_once(':') {
            Some((feature, action)) if knows(feature, action) => {
                Some(Permission::new(feature, action))
            }
            _ => {
                problems.push((
                    "permission".to_owned(),
                    "a catalogued feature:action".to_owned(),
                ));
                None
            }
        };
        let (kind, id) = (resource.0.trim(), resource.1.trim());
        if kind.is_empty() || kind.len() > MAX_ID_LENGTH || kind.contains([':', '@']) {
            problems.push((
                "resource_type".to_owned(),
                "a resource type without ':' or '@'".to_owned(),
            ));
        }
        if id.is_empty() || id.len() > MAX_ID_LENGTH {
            problems.push(("resource_id".to_owned(), "required".to_owned()));
        }
        if until.is_some_and(|t| t <= now) {
            problems.push(("expire_time".to_owned(), "must be in the future".to_owned()));
        }
        let (Some(permission), true) = (permission, problems.is_empty()) else {
            return Err(DomainError::InvalidArgument(problems));
        };
        let user = self.visible_user(actor, user_id).await?;
        self.require_admin(
            actor,
            &user.enterprise_id,
            "only enterprise admins grant access to one resource (A4)",
        )
        .await?;
        let binding = RoleBinding {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: user.enterprise_id.clone(),
            user_id: user.id.clone(),
            role_id: RoleId(permission_role_id(&permission)),
            scope: BindingScope::Resource {
                kind: kind.to_owned(),
                id: id.to_owned(),
            },
            valid_from: None,
            valid_until: until,
            weekly_window: None,
            created_at: now,
            source: Some(GRANT_SOURCE.to_owned()),
        };
        let audit = actor.audit(
            "access.grant",
            format!("user:{}", user.id),
            serde_json::json!({
                "grant_id": binding.id,
                "permission": format!("{}:{}", permission.feature, permission.action),
                "resource": format!("{kind}:{id}"),
                "until": until.map(|t| t.to_rfc3339()),
            }),
            now,
        );
        let revision = self.store.insert_binding(&binding, &audit).await?;
        Ok((binding, revision))
    }

    pub async fn revoke_resource_access(
        &self,
        actor: &Actor,
        grant_id: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let binding = self
            .store
            .binding(grant_id.trim())
            .await?
            .filter(|b| actor.reaches(&b.enterprise_id))
            .filter(|b| b.source.as_deref() == Some(GRANT_SOURCE))
            .ok_or(DomainError::NotFound("resource grant"))?;
        self.require_admin(
            actor,
            &binding.enterprise_id,
            "only enterprise admins revoke grants (A4)",
        )
        .await?;
        let audit = actor.audit(
            "access.revoke",
            format!("user:{}", binding.user_id),
            serde_json::json!({"grant_id": binding.id}),
            now,
        );
        self.store
            .delete_binding(&binding.enterprise_id, &binding.id, &audit)
            .await
    }

    /// Admins see every grant of the enterprise; others only their own.
    pub async fn list_resource_grants(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        user_id: Option<UserId>,
        resource: (Option<&str>, Option<&str>),
    ) -> Result<(Vec<RoleBinding>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        let admin = self.authority(actor, enterprise_id).await?.administers();
        let user_id = match (admin, actor) {
            (true, _) => user_id,
            (false, Actor::Caller(caller)) => Some(UserId(caller.user_id.clone())),
            (false, Actor::Operator) => user_id,
        };
        let filter = BindingFilter {
            user_id,
            ..BindingFilter::default()
        };
        let grants = self
            .store
            .bindings(enterprise_id, &filter)
            .await?
            .into_iter()
            .filter(|b| b.source.as_deref() == Some(GRANT_SOURCE))
            .filter(|b| match &b.scope {
                BindingScope::Resource { kind, id } => {
                    resource.0.is_none_or(|k| k == kind) && resource.1.is_none_or(|i| i == id)
                }
                _ => false,
            })
            .collect();
        Ok((grants, enterprise.revision))
    }

    /// A5: the caller asks for `role_id` (over a practice, or the enterprise) for a while.
    pub async fn request_elevation(
        &self,
        actor: &Actor,
        role_id: &RoleId,
        practice_id: Option<PracticeId>,
        duration_minutes: i32,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<elevation_request::Model, DomainError> {
        let caller = caller_of(actor)?;
        let enterprise_id = EnterpriseId(caller.enterprise_id.clone());
        let mut problems = Vec::new();
        if !(1..=LONGEST_ELEVATION_MINUTES).contains(&duration_minutes) {
            problems.push((
                "duration_minutes".to_owned(),
                "1 minute to 14 days".to_owned(),
            ));
        }
        let reason = justification("justification", reason)
            .map_err(|e| problems.push(("justification".to_owned(), e.to_string())))
            .ok();
        if self.role_in(&enterprise_id, role_id).await?.is_none() {
            problems.push((
                "role_id".to_owned(),
                "no such role in this enterprise".to_owned(),
            ));
        }
        if let Some(practice_id) = &practice_id {
            let practice = self.store.practice(practice_id).await?;
            if practice.is_none_or(|p| p.enterprise_id != enterprise_id) {
                problems.push((
                    "practice_id".to_owned(),
                    "no such practice in this enterprise".to_owned(),
                ));
            }
        }
        let (Some(reason), true) = (reason, problems.is_empty()) else {
            return Err(DomainError::InvalidArgument(problems));
        };
        let user = self
            .visible_user(actor, &UserId(caller.user_id.clone()))
            .await?;
        if user.status != UserStatus::Active {
            return Err(DomainError::precondition(
                "USER_NOT_ACTIVE",
                "only active users ask for elevation",
            ));
        }
        let request = elevation_request::Model {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: enterprise_id.0.clone(),
            user_id: user.id.0.clone(),
            role_id: role_id.0.clone(),
            practice_id: practice_id.map(|p| p.0),
            duration_minutes,
            justification: reason,
            status: "PENDING".to_owned(),
            requested_at: now,
            decided_by: None,
            decided_at: None,
            decision_note: None,
            binding_id: None,
            expires_at: None,
        };
        let audit = actor.audit(
            "elevation.request",
            format!("user:{}", user.id),
            serde_json::json!({
                "elevation_id": request.id,
                "role_id": request.role_id,
                "practice_id": request.practice_id,
                "duration_minutes": duration_minutes,
                "justification": request.justification,
            }),
            now,
        );
        self.store.insert_elevation(&request, &audit).await?;
        Ok(request)
    }

    /// A5: an admin other than the requester approves (the role binding starts now and ends
    /// after the asked duration) or rejects.
    pub async fn decide_elevation(
        &self,
        actor: &Actor,
        elevation_id: &str,
        approve: bool,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<(elevation_request::Model, i64), DomainError> {
        let request = self
            .store
            .elevation(elevation_id.trim())
            .await?
            .filter(|r| actor.reaches(&EnterpriseId(r.enterprise_id.clone())))
            .ok_or(DomainError::NotFound("elevation request"))?;
        let enterprise_id = EnterpriseId(request.enterprise_id.clone());
        self.require_admin(
            actor,
            &enterprise_id,
            "only enterprise admins decide elevation requests (A5)",
        )
        .await?;
        if matches!(actor, Actor::Caller(caller) if caller.user_id == request.user_id) {
            return Err(DomainError::precondition(
                "SELF_APPROVAL",
                "a request is decided by someone other than the requester (separation of duties)",
            ));
        }
        if request.status != "PENDING" {
            return Err(DomainError::precondition(
                "ELEVATION_DECIDED",
                format!("the request is {} already", request.status.to_lowercase()),
            ));
        }
        let role_id = RoleId(request.role_id.clone());
        if approve && self.role_in(&enterprise_id, &role_id).await?.is_none() {
            return Err(DomainError::precondition(
                "ROLE_GONE",
                "the role asked for no longer exists; reject the request",
            ));
        }
        let decider = actor_name(actor);
        let mut decided = elevation_request::Model {
            status: if approve { "APPROVED" } else { "REJECTED" }.to_owned(),
            decided_by: Some(decider),
            decided_at: Some(now),
            decision_note: Some(note.trim().chars().take(1000).collect()),
            ..request.clone()
        };
        let binding = approve.then(|| RoleBinding {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: enterprise_id.clone(),
            user_id: UserId(request.user_id.clone()),
            role_id: RoleId(request.role_id.clone()),
            scope: match &request.practice_id {
                Some(p) => BindingScope::Practice(PracticeId(p.clone())),
                None => BindingScope::Enterprise,
            },
            valid_from: Some(now),
            valid_until: Some(now + Duration::minutes(i64::from(request.duration_minutes))),
            weekly_window: None,
            created_at: now,
            source: Some(format!("elevation:{}", request.id)),
        });
        if let Some(binding) = &binding {
            decided.binding_id = Some(binding.id.clone());
            decided.expires_at = binding.valid_until;
        }
        let audit = actor.audit(
            if approve {
                "elevation.approve"
            } else {
                "elevation.reject"
            },
            format!("user:{}", request.user_id),
            serde_json::json!({
                "elevation_id": request.id,
                "role_id": request.role_id,
                "binding_id": decided.binding_id,
                "until": decided.expires_at.map(|t| t.to_rfc3339()),
                "note": decided.decision_note,
            }),
            now,
        );
        let revision = self
            .store
            .decide_elevation(&decided, binding.as_ref(), &audit)
            .await?;
        Ok((decided, revision))
    }

    /// Admins see the enterprise's requests; others their own. `state` filters.
    pub async fn list_elevations(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        state: Option<ElevationState>,
        now: DateTime<Utc>,
    ) -> Result<Vec<elevation_request::Model>, DomainError> {
        self.visible_enterprise(actor, enterprise_id).await?;
        let admin = self.authority(actor, enterprise_id).await?.administers();
        let own = match (admin, actor) {
            (false, Actor::Caller(caller)) => Some(caller.user_id.clone()),
            _ => None,
        };
        Ok(self
            .store
            .elevations(enterprise_id, own.as_deref())
            .await?
            .into_iter()
            .filter(|r| state.is_none_or(|s| elevation_state(r, now) == s))
            .collect())
    }

    /// A5: a designated user takes the emergency role over the enterprise at once, for at most
    /// the policy's minutes. The use raises a break-glass alert (AU4) and waits for review.
    pub async fn invoke_break_glass(
        &self,
        actor: &Actor,
        reason: &str,
        minutes: i32,
        now: DateTime<Utc>,
    ) -> Result<(break_glass_use::Model, i64), DomainError> {
        let caller = caller_of(actor)?;
        let enterprise_id = EnterpriseId(caller.enterprise_id.clone());
        let enterprise = self.visible_enterprise(actor, &enterprise_id).await?;
        let policy = &enterprise.policy.break_glass;
        if !policy.user_ids.contains(&caller.user_id) {
            return Err(DomainError::PermissionDenied(
                "you are not designated for break-glass access (A5)",
            ));
        }
        let reason = justification("justification", reason)?;
        let longest = i32::try_from(policy.minutes()).unwrap_or(60);
        let minutes = match minutes {
            0 => longest,
            n if (1..=longest).contains(&n) => n,
            _ => {
                return Err(DomainError::invalid(
                    "duration_minutes",
                    format!("1 to {longest} minutes (the enterprise's policy)"),
                ));
            }
        };
        let role_id = RoleId(policy.role().to_owned());
        if self.role_in(&enterprise_id, &role_id).await?.is_none() {
            return Err(DomainError::precondition(
                "BREAK_GLASS_ROLE_MISSING",
                "the policy's break-glass role does not exist",
            ));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let until = now + Duration::minutes(i64::from(minutes));
        let binding = RoleBinding {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id: enterprise_id.clone(),
            user_id: UserId(caller.user_id.clone()),
            role_id: role_id.clone(),
            scope: BindingScope::Enterprise,
            valid_from: Some(now),
            valid_until: Some(until),
            weekly_window: None,
            created_at: now,
            source: Some(format!("break-glass:{id}")),
        };
        let used = break_glass_use::Model {
            id,
            enterprise_id: enterprise_id.0.clone(),
            user_id: caller.user_id.clone(),
            role_id: role_id.0,
            justification: reason,
            started_at: now,
            expires_at: until,
            binding_id: binding.id.clone(),
            reviewed_by: None,
            reviewed_at: None,
            review_note: None,
        };
        let details = serde_json::json!({
            "use_id": used.id,
            "role_id": used.role_id,
            "binding_id": binding.id,
            "until": until.to_rfc3339(),
            "justification": used.justification,
        });
        let audit = actor.audit(
            "role_binding.create",
            format!("user:{}", caller.user_id),
            serde_json::json!({"via": "break-glass", "use_id": used.id, "binding_id": binding.id}),
            now,
        );
        let revision = self
            .store
            .insert_break_glass(&used, &binding, &audit)
            .await?;
        // The use itself goes through the trail's alert rules, so the break-glass alert fires.
        let event = IncomingEvent {
            enterprise_id: enterprise_id.0.clone(),
            entry: AuditEntry::write(
                format!("user:{}", caller.user_id),
                "break_glass.invoke",
                format!("user:{}", caller.user_id),
                details,
                now,
            ),
        };
        if let Err(error) = self.append_events(&Actor::Operator, vec![event], now).await {
            tracing::error!(%error, use_id = %used.id, "break-glass use not recorded as an alert");
        }
        Ok((used, revision))
    }

    /// A5: an admin other than the user who broke the glass records their review.
    pub async fn review_break_glass(
        &self,
        actor: &Actor,
        use_id: &str,
        note: &str,
        now: DateTime<Utc>,
    ) -> Result<break_glass_use::Model, DomainError> {
        let note = note.trim();
        if note.is_empty() || note.chars().count() > 2000 {
            return Err(DomainError::invalid("note", "1 to 2000 characters"));
        }
        let used = self
            .store
            .break_glass_use(use_id.trim())
            .await?
            .filter(|u| actor.reaches(&EnterpriseId(u.enterprise_id.clone())))
            .ok_or(DomainError::NotFound("break-glass use"))?;
        self.require_admin(
            actor,
            &EnterpriseId(used.enterprise_id.clone()),
            "only enterprise admins review break-glass uses (A5)",
        )
        .await?;
        if matches!(actor, Actor::Caller(caller) if caller.user_id == used.user_id) {
            return Err(DomainError::precondition(
                "SELF_REVIEW",
                "a break-glass use is reviewed by someone other than its user",
            ));
        }
        if used.reviewed_by.is_some() {
            return Err(DomainError::precondition(
                "ALREADY_REVIEWED",
                "this use was reviewed already",
            ));
        }
        let reviewed = break_glass_use::Model {
            reviewed_by: Some(actor_name(actor)),
            reviewed_at: Some(now),
            review_note: Some(note.to_owned()),
            ..used
        };
        let audit = actor.audit(
            "break_glass.review",
            format!("user:{}", reviewed.user_id),
            serde_json::json!({"use_id": reviewed.id, "note": reviewed.review_note}),
            now,
        );
        self.store.review_break_glass(&reviewed, &audit).await?;
        Ok(reviewed)
    }

    /// Admins only: the enterprise's uses, or those nobody reviewed yet.
    pub async fn list_break_glass_uses(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        unreviewed_only: bool,
    ) -> Result<Vec<break_glass_use::Model>, DomainError> {
        self.require_admin(
            actor,
            enterprise_id,
            "only enterprise admins list break-glass uses (A5)",
        )
        .await?;
        self.store
            .break_glass_uses(enterprise_id, unreviewed_only)
            .await
    }
}
