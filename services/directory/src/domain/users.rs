//! Users: creation and invitation (D2–D6, D10, D12, D13), kinds and memberships (D4–D9),
//! editing and removal (D11, D14). Every write is version-checked, so concurrent writers cannot
//! interleave, and moves the enterprise revision (D18).

use super::service::{self, normalize_email};
use super::*;
use crate::store::{NewInvitation, OutboxMessage, UserChange};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// A CreateUser request after decoding.
#[derive(Debug, Clone, Default)]
pub struct CreateUser {
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub kind: Option<UserKind>,
    pub memberships: Vec<Membership>,
    pub template_user_id: Option<UserId>,
    pub request_id: String,
    /// D15: the person to make a login for; email and names then come from the person.
    pub person_id: Option<String>,
}

pub struct Created {
    pub user: User,
    pub revision: i64,
    pub invitation_expires_at: Option<DateTime<Utc>>,
}

/// What ChangeUserKind asks for: the kind, and for practice-level kinds the practice (and,
/// for STAFF, the lines) the user holds it in.
#[derive(Debug, Clone)]
pub struct KindChange {
    pub kind: UserKind,
    pub practice_id: Option<PracticeId>,
    pub line_ids: Vec<LineId>,
}

/// A ChangeUserKind answer: the user, and the memberships the change ended (D5).
pub struct KindChanged {
    pub user: User,
    pub revision: i64,
    pub revoked: Vec<Membership>,
}

/// Names that may change through UpdateUser.
#[derive(Debug, Clone, Default)]
pub struct NameChange {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

pub const INVITATION_TOPIC: &str = "user.invitation";

/// The stored half of an activation token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `Some(version)` from an etag a client sent back, `None` when it sent none.
pub fn parse_etag(etag: &str) -> Result<Option<i64>, DomainError> {
    let trimmed = etag.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    trimmed
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| DomainError::invalid("etag", "not an etag this service issued"))
}

pub fn etag_of(version: i64) -> String {
    format!("\"{version}\"")
}

fn check_etag(user: &User, etag: Option<i64>) -> Result<(), DomainError> {
    match etag {
        Some(version) if version != user.version => {
            Err(DomainError::Aborted("the user changed since it was read"))
        }
        _ => Ok(()),
    }
}

impl Directory {
    /// The user, if the actor may see it and it is not deleted.
    pub(super) async fn visible_user(
        &self,
        actor: &Actor,
        id: &UserId,
    ) -> Result<User, DomainError> {
        let user = self
            .store
            .user(id)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        if !actor.reaches(&user.enterprise_id) || user.status == UserStatus::Deleted {
            return Err(DomainError::NotFound("user"));
        }
        Ok(user)
    }

    pub async fn get_user(&self, actor: &Actor, id: &UserId) -> Result<(User, i64), DomainError> {
        let user = self.visible_user(actor, id).await?;
        let revision = self.store.revision(&user.enterprise_id).await?;
        Ok((user, revision))
    }

    pub async fn find_user_by_email(
        &self,
        actor: &Actor,
        email: &str,
    ) -> Result<User, DomainError> {
        let email = normalize_email(email)?;
        let user = self
            .store
            .user_by_email(&email)
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        if !actor.reaches(&user.enterprise_id) || user.status == UserStatus::Deleted {
            return Err(DomainError::NotFound("user"));
        }
        Ok(user)
    }

    pub async fn list_users(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<(Page<User>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        let page = self.store.list_users(enterprise_id, filter, page).await?;
        Ok((page, enterprise.revision))
    }

    /// Creates a user directly, without D10 or an invitation: the operator's path (bootstrap,
    /// demo data). The email's domain must still be the enterprise's (D2).
    pub async fn seed_user(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        new_user: NewUser,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        if !matches!(actor, Actor::Operator) {
            return Err(DomainError::PermissionDenied(
                "seeding users is an operator action",
            ));
        }
        let new_user = NewUser {
            email: normalize_email(&new_user.email)?,
            ..new_user
        };
        self.visible_enterprise(actor, enterprise_id).await?;
        self.check_email_domain(enterprise_id, &new_user.email)
            .await?;
        let memberships = self
            .checked_memberships(
                enterprise_id,
                new_user.kind,
                new_user.memberships,
                "memberships",
            )
            .await?;
        let new_user = NewUser {
            memberships,
            ..new_user
        };
        let (user, revision, _) = self
            .store
            .insert_user(
                enterprise_id,
                &new_user,
                UserStatus::Active,
                None,
                None,
                &actor.audit(
                    "user.create",
                    format!("user:{}", new_user.email),
                    serde_json::json!({"kind": new_user.kind.as_str()}),
                    now,
                ),
            )
            .await?;
        Ok((user, revision))
    }

    /// D3–D6, D10, D12, D13: creates a user and invites them with a single-use activation link.
    pub async fn create_user(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        request: CreateUser,
        now: DateTime<Utc>,
    ) -> Result<Created, DomainError> {
        let mut request = request;
        if let Some(person_id) = &request.person_id {
            let person = self.get_person(actor, person_id).await?;
            if person.enterprise_id != *enterprise_id {
                return Err(DomainError::NotFound("person"));
            }
            if person.user_id.is_some() {
                return Err(DomainError::precondition(
                    "PERSON_HAS_LOGIN",
                    "this person has a login already (D15)",
                ));
            }
            let named = normalize_email(&request.email).ok();
            if !request.email.trim().is_empty() && named.as_deref() != Some(person.email.as_str()) {
                return Err(DomainError::invalid(
                    "email",
                    "the person's email is used; leave it empty or the same (D15)",
                ));
            }
            request.email = person.email;
            request.given_name = person.given_name;
            request.family_name = person.family_name;
        }
        let mut problems = Vec::new();
        let email = normalize_email(&request.email)
            .map_err(|e| problems.push(e))
            .ok();
        let given_name = service::display_name("given_name", &request.given_name)
            .map_err(|e| problems.push(e))
            .ok();
        let family_name = service::display_name("family_name", &request.family_name)
            .map_err(|e| problems.push(e))
            .ok();
        let request_id = service::request_id(&request.request_id)
            .map_err(|e| problems.push(e))
            .ok()
            .flatten();
        if request.kind.is_none() {
            problems.push(DomainError::invalid("kind", "required"));
        }
        if request.kind == Some(UserKind::ServiceAccount) {
            problems.push(DomainError::invalid(
                "kind",
                "service accounts are made with CreateServiceAccount (I7)",
            ));
        }
        if request.template_user_id.is_some() && !request.memberships.is_empty() {
            problems.push(DomainError::invalid(
                "memberships",
                "give a template user or memberships, not both (D12)",
            ));
        }
        let (Some(email), Some(given_name), Some(family_name), Some(kind), true) = (
            email,
            given_name,
            family_name,
            request.kind,
            problems.is_empty(),
        ) else {
            return Err(merge(problems));
        };

        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        let memberships = match &request.template_user_id {
            Some(template_id) => {
                self.template_memberships(actor, enterprise_id, template_id, kind)
                    .await?
            }
            None => request.memberships,
        };
        let memberships = self
            .checked_memberships(enterprise_id, kind, memberships, "memberships")
            .await?;
        let practices: Vec<&PracticeId> = memberships.iter().map(|m| &m.practice_id).collect();
        self.authority(actor, enterprise_id).await?.may_create(
            enterprise.user_creation_min_access,
            kind,
            &practices,
        )?;
        self.check_email_domain(enterprise_id, &email).await?;

        let token = new_token();
        let expires_at = now + self.settings.invitation_ttl;
        let payload = serde_json::json!({
            "email": email,
            "given_name": given_name,
            "activation_url": format!("{}?token={token}", self.settings.invitation_url),
            "expires_at": expires_at.to_rfc3339(),
        });
        let invitation = NewInvitation {
            token_hash: token_hash(&token),
            expires_at,
        };
        let message = OutboxMessage {
            topic: INVITATION_TOPIC,
            recipient: email.clone(),
            payload: payload.to_string(),
        };
        let new_user = NewUser {
            email,
            given_name,
            family_name,
            kind,
            memberships,
            person_id: request.person_id.clone(),
        };
        let (user, revision, created) = self
            .store
            .insert_user(
                enterprise_id,
                &new_user,
                UserStatus::Invited,
                request_id,
                Some((invitation, message)),
                &actor.audit(
                    "user.create",
                    format!("user:{}", new_user.email),
                    serde_json::json!({"kind": new_user.kind.as_str()}),
                    now,
                ),
            )
            .await?;
        Ok(Created {
            user,
            revision,
            invitation_expires_at: created.then_some(expires_at),
        })
    }

    /// D12: a STAFF user's lines and resource filters, for a new STAFF user.
    async fn template_memberships(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        template_id: &UserId,
        kind: UserKind,
    ) -> Result<Vec<Membership>, DomainError> {
        let template = self.visible_user(actor, template_id).await?;
        if template.enterprise_id != *enterprise_id {
            return Err(DomainError::NotFound("user"));
        }
        if template.kind != UserKind::Staff || kind != UserKind::Staff {
            return Err(DomainError::precondition(
                "TEMPLATE_NOT_STAFF",
                "templates copy a STAFF user into a STAFF user (D12)",
            ));
        }
        Ok(template.memberships)
    }

    /// Memberships as `kind` must hold them: none for enterprise-level kinds (D8); at least one
    /// for practice-level kinds; STAFF name at least one line of the practice (D6); MANAGER and
    /// ADVANCED_STAFF name none, holding every line (D7); resource filters of the same practice.
    pub(super) async fn checked_memberships(
        &self,
        enterprise_id: &EnterpriseId,
        kind: UserKind,
        memberships: Vec<Membership>,
        field: &str,
    ) -> Result<Vec<Membership>, DomainError> {
        if kind.is_enterprise_level() {
            return if memberships.is_empty() {
                Ok(memberships)
            } else {
                Err(DomainError::invalid(
                    field,
                    "enterprise-level users reach every practice (D8); give no memberships",
                ))
            };
        }
        if memberships.is_empty() {
            return Err(DomainError::invalid(
                field,
                "practice-level users need at least one practice membership",
            ));
        }
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let mut checked = Vec::with_capacity(memberships.len());
        for (index, membership) in memberships.into_iter().enumerate() {
            let at = format!("{field}[{index}]");
            if !seen.insert(membership.practice_id.clone()) {
                problems.push((
                    format!("{at}.practice_id"),
                    "practice listed twice".to_owned(),
                ));
                continue;
            }
            let practice = match self.store.practice(&membership.practice_id).await? {
                Some(practice) if practice.enterprise_id == *enterprise_id => practice,
                _ => {
                    problems.push((
                        format!("{at}.practice_id"),
                        "no such practice in this enterprise".to_owned(),
                    ));
                    continue;
                }
            };
            let mut line_ids = membership.line_ids;
            line_ids.sort();
            line_ids.dedup();
            match kind {
                UserKind::Staff if line_ids.is_empty() => {
                    problems.push((
                        format!("{at}.line_ids"),
                        "a STAFF membership needs at least one line (D6)".to_owned(),
                    ));
                }
                UserKind::Staff => {
                    if let Some(stranger) = line_ids
                        .iter()
                        .find(|id| !practice.lines.iter().any(|line| &line.id == *id))
                    {
                        problems.push((
                            format!("{at}.line_ids"),
                            format!("line {stranger} is not a line of this practice"),
                        ));
                    }
                }
                _ if !line_ids.is_empty() => problems.push((
                    format!("{at}.line_ids"),
                    "MANAGER and ADVANCED_STAFF hold every line of the practice (D7); name none"
                        .to_owned(),
                )),
                _ => {}
            }
            let mut filters = membership.resource_filter_ids;
            filters.sort();
            filters.dedup();
            if let Some(stranger) = filters
                .iter()
                .find(|id| !practice.resources.iter().any(|r| &r.id == *id))
            {
                problems.push((
                    format!("{at}.resource_filter_ids"),
                    format!("resource {stranger} does not belong to this practice (D6)"),
                ));
            }
            let line_ids = if kind == UserKind::Staff {
                line_ids
            } else {
                Vec::new()
            };
            checked.push(Membership {
                practice_id: membership.practice_id,
                line_ids,
                resource_filter_ids: filters,
            });
        }
        if problems.is_empty() {
            Ok(checked)
        } else {
            Err(DomainError::InvalidArgument(problems))
        }
    }

    /// The user as the actor may change it: visible, not deleted, and within the actor's D11 rights.
    async fn managed_user(
        &self,
        actor: &Actor,
        id: &UserId,
    ) -> Result<(User, Enterprise, Authority), DomainError> {
        let user = self.visible_user(actor, id).await?;
        let enterprise = self.visible_enterprise(actor, &user.enterprise_id).await?;
        let authority = self.authority(actor, &user.enterprise_id).await?;
        authority.may_manage(enterprise.user_creation_min_access, &user)?;
        Ok((user, enterprise, authority))
    }

    /// D5, D9: a new kind, and the memberships that go with it, in one transaction.
    pub async fn change_user_kind(
        &self,
        actor: &Actor,
        id: &UserId,
        wanted: KindChange,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<KindChanged, DomainError> {
        let KindChange {
            kind,
            practice_id,
            line_ids,
        } = wanted;
        let (user, enterprise, authority) = self.managed_user(actor, id).await?;
        check_etag(&user, etag)?;
        if user.kind == UserKind::ServiceAccount || kind == UserKind::ServiceAccount {
            return Err(DomainError::precondition(
                "SERVICE_ACCOUNT_KIND",
                "service accounts and people do not change into each other (I7)",
            ));
        }
        if user.kind == kind {
            return Err(DomainError::precondition(
                "KIND_UNCHANGED",
                format!("the user already is {}", kind.as_str()),
            ));
        }
        let memberships = if kind.is_enterprise_level() {
            if practice_id.is_some() || !line_ids.is_empty() {
                return Err(DomainError::invalid(
                    "practice_id",
                    "enterprise-level users reach every practice (D8); name none",
                ));
            }
            Vec::new()
        } else {
            let Some(practice_id) = practice_id else {
                return Err(DomainError::invalid(
                    "practice_id",
                    "the practice the user holds the new kind in",
                ));
            };
            if kind == UserKind::Staff && line_ids.is_empty() {
                return Err(DomainError::invalid(
                    "line_ids",
                    "a change to STAFF names at least one line (D5)",
                ));
            }
            // Resource filters are view preferences: they survive where the practice does.
            let kept_filters = user
                .memberships
                .iter()
                .find(|m| m.practice_id == practice_id)
                .map(|m| m.resource_filter_ids.clone())
                .unwrap_or_default();
            let wanted = Membership {
                practice_id,
                line_ids,
                resource_filter_ids: kept_filters,
            };
            self.checked_memberships(&user.enterprise_id, kind, vec![wanted], "practice_id")
                .await?
        };
        let practices: Vec<&PracticeId> = memberships.iter().map(|m| &m.practice_id).collect();
        authority.may_create(enterprise.user_creation_min_access, kind, &practices)?;
        let revoked: Vec<Membership> = user
            .memberships
            .iter()
            .filter(|old| {
                !memberships
                    .iter()
                    .any(|new| new.practice_id == old.practice_id)
            })
            .cloned()
            .collect();
        let change = UserChange {
            kind: Some(kind),
            memberships: Some(memberships),
            ..UserChange::default()
        };
        let (user, revision) = self
            .write_user(actor, &user, change, "user.change_kind", now)
            .await?;
        Ok(KindChanged {
            user,
            revision,
            revoked,
        })
    }

    /// D4: a membership of the user's own kind, in another practice.
    pub async fn add_membership(
        &self,
        actor: &Actor,
        id: &UserId,
        kind: UserKind,
        membership: Membership,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let (user, enterprise, authority) = self.managed_user(actor, id).await?;
        check_etag(&user, etag)?;
        if kind != user.kind {
            return Err(DomainError::precondition(
                "USER_KIND_MISMATCH",
                format!(
                    "the user is {} in every practice; change their kind instead (D4)",
                    user.kind.as_str()
                ),
            ));
        }
        if user.kind.is_enterprise_level() {
            return Err(DomainError::precondition(
                "ENTERPRISE_LEVEL_USER",
                "enterprise-level users reach every practice (D8)",
            ));
        }
        if user
            .memberships
            .iter()
            .any(|m| m.practice_id == membership.practice_id)
        {
            return Err(DomainError::AlreadyExists("membership in this practice"));
        }
        let added = self
            .checked_memberships(&user.enterprise_id, kind, vec![membership], "membership")
            .await?;
        let practices: Vec<&PracticeId> = added.iter().map(|m| &m.practice_id).collect();
        authority.may_create(enterprise.user_creation_min_access, kind, &practices)?;
        let mut memberships = user.memberships.clone();
        memberships.extend(added);
        let change = UserChange {
            memberships: Some(stored_form(user.kind, memberships)),
            ..UserChange::default()
        };
        self.write_user(actor, &user, change, "user.membership.add", now)
            .await
    }

    pub async fn remove_membership(
        &self,
        actor: &Actor,
        id: &UserId,
        practice_id: &PracticeId,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let (user, _, _) = self.managed_user(actor, id).await?;
        check_etag(&user, etag)?;
        if !user
            .memberships
            .iter()
            .any(|m| &m.practice_id == practice_id)
        {
            return Err(DomainError::NotFound("membership"));
        }
        if user.memberships.len() == 1 {
            return Err(DomainError::precondition(
                "LAST_MEMBERSHIP",
                "a practice-level user keeps at least one practice; disable or delete the user instead",
            ));
        }
        let memberships = user
            .memberships
            .iter()
            .filter(|m| &m.practice_id != practice_id)
            .cloned()
            .collect();
        let change = UserChange {
            memberships: Some(stored_form(user.kind, memberships)),
            ..UserChange::default()
        };
        self.write_user(actor, &user, change, "user.membership.remove", now)
            .await
    }

    /// D6: a STAFF membership's lines, and any membership's resource filters.
    pub async fn update_membership(
        &self,
        actor: &Actor,
        id: &UserId,
        membership: Membership,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let (user, _, _) = self.managed_user(actor, id).await?;
        check_etag(&user, etag)?;
        if !user
            .memberships
            .iter()
            .any(|m| m.practice_id == membership.practice_id)
        {
            return Err(DomainError::NotFound("membership"));
        }
        let updated = self
            .checked_memberships(
                &user.enterprise_id,
                user.kind,
                vec![membership],
                "membership",
            )
            .await?;
        let memberships = user
            .memberships
            .iter()
            .map(|m| {
                updated
                    .iter()
                    .find(|u| u.practice_id == m.practice_id)
                    .cloned()
                    .unwrap_or_else(|| m.clone())
            })
            .collect();
        let change = UserChange {
            memberships: Some(stored_form(user.kind, memberships)),
            ..UserChange::default()
        };
        self.write_user(actor, &user, change, "user.membership.update", now)
            .await
    }

    /// Names, by field mask; users may change their own, D11 decides for others.
    pub async fn update_names(
        &self,
        actor: &Actor,
        id: &UserId,
        names: NameChange,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let given_name = names
            .given_name
            .as_deref()
            .map(|n| service::display_name("user.given_name", n))
            .transpose()?;
        let family_name = names
            .family_name
            .as_deref()
            .map(|n| service::display_name("user.family_name", n))
            .transpose()?;
        let user = self.visible_user(actor, id).await?;
        let is_self = matches!(actor, Actor::Caller(caller) if caller.user_id == user.id.0);
        if !is_self {
            self.managed_user(actor, id).await?;
        }
        check_etag(&user, etag)?;
        let change = UserChange {
            given_name,
            family_name,
            ..UserChange::default()
        };
        self.write_user(actor, &user, change, "user.update", now)
            .await
    }

    /// D14: the user and their data stay; login is blocked (identity ends their sessions).
    pub async fn disable_user(
        &self,
        actor: &Actor,
        id: &UserId,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let (user, _, _) = self.managed_user(actor, id).await?;
        check_etag(&user, etag)?;
        refuse_self(actor, &user, "disable")?;
        if user.status == UserStatus::Disabled {
            return Err(DomainError::precondition(
                "ALREADY_DISABLED",
                "the user is disabled already",
            ));
        }
        let change = UserChange {
            status: Some(UserStatus::Disabled),
            ..UserChange::default()
        };
        self.write_user(actor, &user, change, "user.disable", now)
            .await
    }

    pub async fn enable_user(
        &self,
        actor: &Actor,
        id: &UserId,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let (user, _, _) = self.managed_user(actor, id).await?;
        check_etag(&user, etag)?;
        if user.status != UserStatus::Disabled {
            return Err(DomainError::precondition(
                "NOT_DISABLED",
                "only a disabled user can be enabled",
            ));
        }
        let change = UserChange {
            status: Some(UserStatus::Active),
            ..UserChange::default()
        };
        self.write_user(actor, &user, change, "user.enable", now)
            .await
    }

    /// D14: a tombstone that only enterprise admins leave; the email stays taken and the
    /// audit history stays attached to the id.
    pub async fn delete_user(
        &self,
        actor: &Actor,
        id: &UserId,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let user = self.visible_user(actor, id).await?;
        if !self
            .authority(actor, &user.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins delete users (D14)",
            ));
        }
        check_etag(&user, etag)?;
        refuse_self(actor, &user, "delete")?;
        let change = UserChange {
            status: Some(UserStatus::Deleted),
            memberships: Some(Vec::new()),
            deleted_at: Some(now),
            ..UserChange::default()
        };
        let (_, revision) = self
            .write_user(actor, &user, change, "user.delete", now)
            .await?;
        Ok(revision)
    }
}

impl Directory {
    /// A version-checked, audited write of one user.
    async fn write_user(
        &self,
        actor: &Actor,
        user: &User,
        change: UserChange,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(User, i64), DomainError> {
        let audit = actor.audit(
            action,
            format!("user:{}", user.id),
            serde_json::json!({}),
            now,
        );
        self.store
            .update_user(&user.id, user.version, change, &audit)
            .await
    }
}

/// Memberships as stored: lines only for STAFF (the others hold every line, D7).
fn stored_form(kind: UserKind, memberships: Vec<Membership>) -> Vec<Membership> {
    memberships
        .into_iter()
        .map(|m| Membership {
            line_ids: if kind == UserKind::Staff {
                m.line_ids
            } else {
                Vec::new()
            },
            ..m
        })
        .collect()
}

fn refuse_self(actor: &Actor, user: &User, what: &str) -> Result<(), DomainError> {
    match actor {
        Actor::Caller(caller) if caller.user_id == user.id.0 => Err(DomainError::precondition(
            "SELF_ACTION",
            format!("users cannot {what} themselves"),
        )),
        _ => Ok(()),
    }
}

fn merge(problems: Vec<DomainError>) -> DomainError {
    let mut all = Vec::new();
    for problem in problems {
        match problem {
            DomainError::InvalidArgument(list) => all.extend(list),
            other => return other,
        }
    }
    DomainError::InvalidArgument(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_round_trip_and_garbage_is_invalid() {
        assert_eq!(parse_etag(&etag_of(7)).ok().flatten(), Some(7));
        assert_eq!(parse_etag("").ok().flatten(), None);
        assert!(parse_etag("\"seven\"").is_err());
    }

    #[test]
    fn d13_only_a_hash_of_the_token_is_kept() {
        let token = new_token();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&token).map(|b| b.len()).ok(),
            Some(32)
        );
        let hash = token_hash(&token);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&token));
        assert_ne!(token, new_token());
    }

    #[test]
    fn d10_min_access_levels() {
        assert!(MinAccess::Staff.admits(UserKind::Staff));
        assert!(!MinAccess::Manager.admits(UserKind::AdvancedStaff));
        assert!(MinAccess::Manager.admits(UserKind::Manager));
        assert!(!MinAccess::Enterprise.admits(UserKind::Manager));
        assert!(MinAccess::Enterprise.admits(UserKind::EnterpriseAdmin));
    }
}

/// The subject and kind of the service token identity signs for itself to read accounts.
pub const IDENTITY_SERVICE_SUBJECT: &str = "service:identity";
pub const SERVICE_KIND: &str = "SERVICE";

pub enum AccountKey {
    Email(String),
    UserId(UserId),
}

/// What identity needs to authenticate a user.
#[derive(Debug, Clone)]
pub struct AccountView {
    pub user: User,
    pub policy: super::policy::EnterprisePolicy,
    pub role_ids: Vec<super::roles::RoleId>,
}

pub(super) fn identity_only(actor: &Actor) -> Result<(), DomainError> {
    match actor {
        Actor::Operator => Ok(()),
        Actor::Caller(caller)
            if caller.kind == SERVICE_KIND && caller.user_id == IDENTITY_SERVICE_SUBJECT =>
        {
            Ok(())
        }
        Actor::Caller(_) => Err(DomainError::PermissionDenied(
            "only the identity service reads accounts",
        )),
    }
}

impl Directory {
    /// The account behind an email or a user id: the user (not deleted), their enterprise's
    /// policy and their roles. For identity only.
    pub async fn account(
        &self,
        actor: &Actor,
        key: AccountKey,
    ) -> Result<Option<AccountView>, DomainError> {
        identity_only(actor)?;
        let user = match key {
            AccountKey::Email(email) => {
                let email = normalize_email(&email)?;
                self.store.user_by_email(&email).await?
            }
            AccountKey::UserId(id) => self.store.user(&id).await?,
        };
        let Some(user) = user.filter(|u| u.status != UserStatus::Deleted) else {
            return Ok(None);
        };
        let Some(enterprise) = self.store.enterprise(&user.enterprise_id).await? else {
            return Ok(None);
        };
        let filter = super::roles::BindingFilter {
            user_id: Some(user.id.clone()),
            ..Default::default()
        };
        let role_ids = self
            .store
            .bindings(&user.enterprise_id, &filter)
            .await?
            .into_iter()
            .map(|binding| binding.role_id)
            .collect();
        Ok(Some(AccountView {
            user,
            policy: enterprise.policy,
            role_ids,
        }))
    }

    /// The user an activation token (D13) belongs to, if it is unexpired and unused; with
    /// `spend`, the token is used up and the user becomes ACTIVE. For identity only.
    pub async fn redeem_invitation(
        &self,
        actor: &Actor,
        token: &str,
        spend: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, DomainError> {
        identity_only(actor)?;
        let hash = token_hash(token.trim());
        let Some(user_id) = self.store.invitation_user(&hash, now).await? else {
            return Ok(None);
        };
        if !spend {
            return Ok(Some(user_id));
        }
        let Some(user) = self.store.user(&user_id).await? else {
            return Ok(None);
        };
        if user.status != UserStatus::Invited {
            return Ok(None);
        }
        let audit = actor.audit(
            "user.activate",
            format!("user:{}", user.id.0),
            serde_json::json!({"via": "invitation"}),
            now,
        );
        Ok(self
            .store
            .redeem_invitation(&hash, &user, &audit)
            .await?
            .then_some(user_id))
    }

    /// Of `user_ids`, those who may no longer log in (disabled, deleted or unknown), so
    /// identity can end their sessions (D14). For identity only.
    pub async fn inactive_accounts(
        &self,
        actor: &Actor,
        user_ids: &[String],
    ) -> Result<Vec<String>, DomainError> {
        identity_only(actor)?;
        let capable = self.store.login_capable(user_ids).await?;
        Ok(user_ids
            .iter()
            .filter(|id| !capable.contains(*id))
            .cloned()
            .collect())
    }

    /// Records a successful login (D19); an invited user who logged in becomes active (D13).
    /// For identity only.
    pub async fn record_login(
        &self,
        actor: &Actor,
        user_id: &UserId,
        at: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        identity_only(actor)?;
        self.store.record_login(user_id, at).await?;
        let Some(user) = self.store.user(user_id).await? else {
            return Ok(());
        };
        if user.status == UserStatus::Invited {
            // Identity gives invited users tokens only after they changed the temporary
            // password an admin set: the account is theirs now (D13).
            let audit = actor.audit(
                "user.activate",
                format!("user:{}", user.id.0),
                serde_json::json!({"via": "temporary_password"}),
                at,
            );
            self.store.activate_by_login(&user, &audit).await?;
        }
        Ok(())
    }
}
