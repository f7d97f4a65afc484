//! I6: users an SSO login creates on first sight and keeps in step with the identity provider
//! (just-in-time provisioning). The connector, not a person, is the actor in the audit trail,
//! and it manages only the role bindings it made itself.

use super::roles::{BindingFilter, BindingScope, RoleBinding, RoleId};
use super::service::{self, normalize_email};
use super::users::{AccountKey, AccountView, identity_only};
use super::*;
use crate::store::{AuditEntry, UserChange};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// What a connection's mapping says about one person.
#[derive(Debug, Clone)]
pub struct Provision {
    pub enterprise_id: EnterpriseId,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    /// `None`: an existing user keeps their kind and memberships; nobody new is created. The
    /// roles are reconciled either way.
    pub kind: Option<UserKind>,
    pub memberships: Vec<Membership>,
    /// Roles over one practice, or the enterprise (`None`).
    pub roles: Vec<(RoleId, Option<PracticeId>)>,
    /// `sso:<connection id>`.
    pub source: String,
}

pub struct Provisioned {
    pub account: AccountView,
    pub created: bool,
    pub revision: i64,
}

const MAX_SOURCE_LENGTH: usize = 128;

/// What provisioning did to the user, for connectors that report counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

impl Directory {
    /// Creates the user (ACTIVE: the identity provider vouched for the email) or brings an
    /// existing one in line with the mapping. Disabled users stay disabled (D14): a corporate
    /// login does not undo an admin's decision.
    pub async fn provision_user(
        &self,
        actor: &Actor,
        request: Provision,
        now: DateTime<Utc>,
    ) -> Result<Provisioned, DomainError> {
        identity_only(actor)?;
        let source = request.source.trim().to_owned();
        if !source.starts_with("sso:") || source.len() <= 4 || source.len() > MAX_SOURCE_LENGTH {
            return Err(DomainError::invalid("source", "sso:<connection id>"));
        }
        let (user, revision, outcome) = self.provision(&source, request, now).await?;
        let account = self
            .account(actor, AccountKey::UserId(user.id.clone()))
            .await?
            .ok_or(DomainError::NotFound("user"))?;
        Ok(Provisioned {
            account,
            created: outcome == Outcome::Created,
            revision,
        })
    }

    /// What SSO and SCIM provisioning share: `source` (`sso:<connection>`, `scim:<enterprise>`)
    /// is the actor of every change and owns the role bindings it makes.
    pub(crate) async fn provision(
        &self,
        source: &str,
        request: Provision,
        now: DateTime<Utc>,
    ) -> Result<(User, i64, Outcome), DomainError> {
        let source = source.to_owned();
        let via = source.split(':').next().unwrap_or_default().to_owned();
        if request.kind == Some(UserKind::ServiceAccount) {
            return Err(DomainError::invalid(
                "kind",
                "provisioning makes people, not service accounts",
            ));
        }
        let email = normalize_email(&request.email)?;
        let given_name = fallback_name(&request.given_name, &email);
        let given_name = service::display_name("given_name", &given_name)?;
        let family_name =
            service::display_name("family_name", &fallback_name(&request.family_name, "-"))?;
        let enterprise_id = request.enterprise_id.clone();
        self.visible_enterprise(&Actor::Operator, &enterprise_id)
            .await?;
        self.check_email_domain(&enterprise_id, &email).await?;
        let audit = |action: &'static str, target: String, details: serde_json::Value| {
            AuditEntry::write(source.clone(), action, target, details, now)
        };

        let existing = self.store.user_by_email(&email).await?;
        let (user, revision, outcome) = match existing {
            Some(user) if user.enterprise_id != enterprise_id => {
                return Err(DomainError::precondition(
                    "EMAIL_IN_OTHER_ENTERPRISE",
                    "a user with this email belongs to another enterprise",
                ));
            }
            Some(user) if user.status == UserStatus::Deleted => {
                return Err(DomainError::precondition(
                    "USER_DELETED",
                    "this user was deleted; an admin must restore or recreate them",
                ));
            }
            Some(user) => {
                let mut change = UserChange::default();
                if user.given_name != given_name {
                    change.given_name = Some(given_name.clone());
                }
                if user.family_name != family_name {
                    change.family_name = Some(family_name.clone());
                }
                if user.status == UserStatus::Invited {
                    change.status = Some(UserStatus::Active);
                }
                if let Some(kind) = request.kind {
                    let wanted = self
                        .checked_memberships(
                            &enterprise_id,
                            kind,
                            request.memberships.clone(),
                            "memberships",
                        )
                        .await?;
                    if kind != user.kind || !same_access(kind, &user.memberships, &wanted) {
                        change.kind = Some(kind);
                        change.memberships = Some(keep_filters(&user.memberships, wanted));
                    }
                }
                if is_empty(&change) {
                    let revision = self.store.revision(&enterprise_id).await?;
                    (user, revision, Outcome::Unchanged)
                } else {
                    let entry = audit(
                        "user.update",
                        format!("user:{}", user.id),
                        serde_json::json!({"via": via, "kind": change.kind.map(|k| k.as_str())}),
                    );
                    let (user, revision) = self
                        .store
                        .update_user(&user.id, user.version, change, &entry)
                        .await?;
                    (user, revision, Outcome::Updated)
                }
            }
            None => {
                let Some(kind) = request.kind else {
                    return Err(DomainError::precondition(
                        "NO_MAPPING",
                        "the connection's rules give this person no kind; an admin must create them",
                    ));
                };
                let memberships = self
                    .checked_memberships(
                        &enterprise_id,
                        kind,
                        request.memberships.clone(),
                        "memberships",
                    )
                    .await?;
                let new_user = NewUser {
                    email: email.clone(),
                    given_name,
                    family_name,
                    kind,
                    memberships,
                    person_id: None,
                };
                let entry = audit(
                    "user.create",
                    format!("user:{email}"),
                    serde_json::json!({"via": via, "kind": kind.as_str()}),
                );
                let (user, revision, _) = self
                    .store
                    .insert_user(
                        &enterprise_id,
                        &new_user,
                        UserStatus::Active,
                        None,
                        None,
                        &entry,
                    )
                    .await?;
                (user, revision, Outcome::Created)
            }
        };

        // Roles follow the identity provider's groups on every login, also down to none.
        match self
            .reconcile_bindings(&user, &source, &via, &request.roles, &audit, now)
            .await?
        {
            Some(revision) if outcome == Outcome::Unchanged => {
                Ok((user, revision, Outcome::Updated))
            }
            Some(revision) => Ok((user, revision, outcome)),
            None => Ok((user, revision, outcome)),
        }
    }

    /// A connector's disable or enable of a user (D14), audited with the connector as actor.
    pub(super) async fn set_status_for_connector(
        &self,
        connector: &str,
        user: &User,
        status: UserStatus,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let action = if status == UserStatus::Disabled {
            "user.disable"
        } else {
            "user.enable"
        };
        let audit = AuditEntry::write(
            connector.to_owned(),
            action,
            format!("user:{}", user.id),
            details,
            now,
        );
        let change = UserChange {
            status: Some(status),
            ..UserChange::default()
        };
        self.store
            .update_user(&user.id, user.version, change, &audit)
            .await
            .map(|_| ())
    }

    /// Whether the user's last disable or enable in the audit trail was a disable by
    /// `connector`: only then may the connector enable them again (an admin's decision
    /// stands). Past retention nothing is known, and nothing is undone.
    pub(super) async fn last_disabled_by(
        &self,
        user: &User,
        connector: &str,
    ) -> Result<bool, DomainError> {
        let query = crate::store::audit::EventQuery {
            enterprise_id: user.enterprise_id.0.clone(),
            action_prefix: Some("user.".into()),
            target_type: Some("user".into()),
            target_id: Some(user.id.0.clone()),
            ..Default::default()
        };
        let mut before = None;
        // Newest first; a user's own history is short, but is read in pages all the same.
        loop {
            let page = self.store.list_events(&query, before, 100).await?;
            if let Some(last) = page
                .iter()
                .find(|event| matches!(event.action.as_str(), "user.disable" | "user.enable"))
            {
                return Ok(last.action == "user.disable" && last.actor == connector);
            }
            match page.last() {
                Some(event) if page.len() == 100 => before = Some(event.seq),
                _ => return Ok(false),
            }
        }
    }

    /// The enterprise's allowlisted email domains (an SSO connection serves only these) and
    /// whether it requires SSO, for identity.
    pub async fn enterprise_domains(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<(Vec<String>, bool), DomainError> {
        identity_only(actor)?;
        let enterprise = self
            .visible_enterprise(&Actor::Operator, enterprise_id)
            .await?;
        let (domains, _) = self
            .list_email_domains(&Actor::Operator, enterprise_id)
            .await?;
        Ok((
            domains.into_iter().map(|d| d.domain).collect(),
            enterprise.policy.sso_required,
        ))
    }

    /// Adds the bindings the mapping gives and `source` does not hold yet, and removes those
    /// `source` made that it no longer gives. Returns the last revision written, if any.
    async fn reconcile_bindings(
        &self,
        user: &User,
        source: &str,
        via: &str,
        wanted: &[(RoleId, Option<PracticeId>)],
        audit: &impl Fn(&'static str, String, serde_json::Value) -> AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, DomainError> {
        let enterprise_id = &user.enterprise_id;
        let mut problems = Vec::new();
        let mut wanted_set = BTreeSet::new();
        for (index, (role_id, practice_id)) in wanted.iter().enumerate() {
            if self.role_in(enterprise_id, role_id).await?.is_none() {
                problems.push((
                    format!("roles[{index}].role_id"),
                    "no such role in this enterprise".to_owned(),
                ));
                continue;
            }
            if let Some(practice_id) = practice_id {
                let practice = self.store.practice(practice_id).await?;
                if practice.is_none_or(|p| p.enterprise_id != *enterprise_id) {
                    problems.push((
                        format!("roles[{index}].practice_id"),
                        "no such practice in this enterprise".to_owned(),
                    ));
                    continue;
                }
            }
            wanted_set.insert((role_id.0.clone(), practice_id.as_ref().map(|p| p.0.clone())));
        }
        if !problems.is_empty() {
            return Err(DomainError::InvalidArgument(problems));
        }
        let filter = BindingFilter {
            user_id: Some(user.id.clone()),
            ..BindingFilter::default()
        };
        let held: Vec<RoleBinding> = self
            .store
            .bindings(enterprise_id, &filter)
            .await?
            .into_iter()
            .filter(|b| b.source.as_deref() == Some(source))
            .collect();
        let key = |b: &RoleBinding| {
            let practice = match &b.scope {
                BindingScope::Practice(p) => Some(p.0.clone()),
                _ => None,
            };
            (b.role_id.0.clone(), practice)
        };
        let held_keys: BTreeSet<_> = held.iter().map(key).collect();
        let mut revision = None;
        for binding in held.iter().filter(|b| !wanted_set.contains(&key(b))) {
            let entry = audit(
                "role_binding.delete",
                format!("user:{}", user.id),
                serde_json::json!({"binding_id": binding.id, "role_id": binding.role_id.0, "via": via}),
            );
            revision = Some(
                self.store
                    .delete_binding(enterprise_id, &binding.id, &entry)
                    .await?,
            );
        }
        for (role_id, practice_id) in wanted_set.iter().filter(|k| !held_keys.contains(*k)) {
            let binding = RoleBinding {
                id: uuid::Uuid::now_v7().to_string(),
                enterprise_id: enterprise_id.clone(),
                user_id: user.id.clone(),
                role_id: RoleId(role_id.clone()),
                scope: match practice_id {
                    Some(p) => BindingScope::Practice(PracticeId(p.clone())),
                    None => BindingScope::Enterprise,
                },
                valid_from: None,
                valid_until: None,
                weekly_window: None,
                created_at: now,
                source: Some(source.to_owned()),
            };
            let entry = audit(
                "role_binding.create",
                format!("user:{}", user.id),
                serde_json::json!({"binding_id": binding.id, "role_id": role_id, "via": via}),
            );
            revision = Some(self.store.insert_binding(&binding, &entry).await?);
        }
        Ok(revision)
    }
}

/// Identity providers do not always send names; the directory needs one.
fn fallback_name(given: &str, fallback: &str) -> String {
    if given.trim().is_empty() {
        fallback.split('@').next().unwrap_or(fallback).to_owned()
    } else {
        given.to_owned()
    }
}

/// Whether the memberships reach the same practices (and, for STAFF, the same lines).
fn same_access(kind: UserKind, held: &[Membership], wanted: &[Membership]) -> bool {
    let shape = |list: &[Membership]| -> BTreeSet<(String, Vec<String>)> {
        list.iter()
            .map(|m| {
                let mut lines: Vec<String> = if kind == UserKind::Staff {
                    m.line_ids.iter().map(|l| l.0.clone()).collect()
                } else {
                    Vec::new()
                };
                lines.sort();
                (m.practice_id.0.clone(), lines)
            })
            .collect()
    };
    shape(held) == shape(wanted)
}

/// Resource filters are view preferences (D6): they survive where the practice does.
fn keep_filters(held: &[Membership], wanted: Vec<Membership>) -> Vec<Membership> {
    wanted
        .into_iter()
        .map(|mut m| {
            if m.resource_filter_ids.is_empty()
                && let Some(old) = held.iter().find(|h| h.practice_id == m.practice_id)
            {
                m.resource_filter_ids = old.resource_filter_ids.clone();
            }
            m
        })
        .collect()
}

fn is_empty(change: &UserChange) -> bool {
    change.kind.is_none()
        && change.status.is_none()
        && change.given_name.is_none()
        && change.family_name.is_none()
        && change.memberships.is_none()
        && change.deleted_at.is_none()
}
