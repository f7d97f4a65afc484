//! Directory sync: how SCIM Users and Groups become Praxis users. An enterprise's group rules
//! say which SCIM groups give which kind, practices and roles; after every SCIM write the users
//! it touches are provisioned like SSO logins are (the source `scim:<enterprise>` is the actor
//! and owns the role bindings it makes), and deactivated or deleted ones are disabled (D14).

use super::provisioning::Provision;
use super::roles::RoleId;
use super::sync::{ScimClient, ScimResource, ScimType};
use super::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One rule: members of `group` get `kind`, these practices (and lines) and roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRule {
    /// The group's displayName, lowercased.
    pub group: String,
    pub kind: String,
    pub practice_ids: Vec<String>,
    pub line_ids: Vec<String>,
    pub role_ids: Vec<String>,
}

const MAX_RULES: usize = 100;

/// What group rules give one person.
#[derive(Debug, Default)]
pub(super) struct RuleAccess {
    pub kind: Option<UserKind>,
    pub memberships: Vec<Membership>,
    pub roles: Vec<(RoleId, Option<PracticeId>)>,
}

fn source(enterprise_id: &EnterpriseId) -> String {
    format!("scim:{}", enterprise_id.0)
}

fn string_at<'a>(body: &'a serde_json::Value, pointer: &str) -> Option<&'a str> {
    body.pointer(pointer).and_then(serde_json::Value::as_str)
}

/// The email a SCIM User is provisioned under: its userName, when that is an email.
pub(super) fn scim_email(body: &serde_json::Value) -> Option<String> {
    string_at(body, "/userName")
        .map(|name| name.trim().to_lowercase())
        .filter(|name| name.contains('@'))
}

pub(super) fn member_ids(group: &ScimResource) -> BTreeSet<String> {
    group
        .body
        .get("members")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| member.get("value").and_then(serde_json::Value::as_str))
        .map(str::to_owned)
        .collect()
}

impl Directory {
    /// The memberships a rule gives, each practice with the rule's lines that are its own.
    async fn rule_memberships(&self, rule: &GroupRule) -> Result<Vec<Membership>, DomainError> {
        let mut memberships = Vec::new();
        for practice_id in &rule.practice_ids {
            let id = PracticeId(practice_id.clone());
            let lines = match self.store.practice(&id).await? {
                Some(practice) => practice
                    .lines
                    .iter()
                    .filter(|line| rule.line_ids.contains(&line.id.0))
                    .map(|line| line.id.clone())
                    .collect(),
                None => Vec::new(),
            };
            memberships.push(Membership::new(id, lines));
        }
        Ok(memberships)
    }

    /// Rules as given, each checked against the directory: a kind of person, practices
    /// (and lines) of the enterprise that suit the kind, roles of the enterprise. Group names
    /// are kept lowercased.
    pub(super) async fn checked_group_rules(
        &self,
        enterprise_id: &EnterpriseId,
        rules: Vec<GroupRule>,
        field: &str,
    ) -> Result<Vec<GroupRule>, DomainError> {
        if rules.len() > MAX_RULES {
            return Err(DomainError::invalid(field, format!("at most {MAX_RULES}")));
        }
        let mut problems = Vec::new();
        let mut cleaned = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            let at = format!("{field}[{index}]");
            let group = rule.group.trim().to_lowercase();
            if group.is_empty() {
                problems.push((format!("{at}.group"), "a group's name".to_owned()));
            }
            let kind = match UserKind::parse(&rule.kind) {
                Some(kind) if kind != UserKind::ServiceAccount => kind,
                _ => {
                    problems.push((format!("{at}.kind"), "a kind of person".to_owned()));
                    continue;
                }
            };
            let rule = GroupRule { group, ..rule };
            let memberships = self.rule_memberships(&rule).await?;
            if let Err(DomainError::InvalidArgument(found)) = self
                .checked_memberships(
                    enterprise_id,
                    kind,
                    memberships,
                    &format!("{at}.practice_ids"),
                )
                .await
            {
                problems.extend(found);
            }
            for (r, role_id) in rule.role_ids.iter().enumerate() {
                if self
                    .role_in(enterprise_id, &RoleId(role_id.clone()))
                    .await?
                    .is_none()
                {
                    problems.push((
                        format!("{at}.role_ids[{r}]"),
                        "no such role in this enterprise".to_owned(),
                    ));
                }
            }
            cleaned.push(rule);
        }
        if !problems.is_empty() {
            return Err(DomainError::InvalidArgument(problems));
        }
        Ok(cleaned)
    }

    /// What the rules give someone in the groups `names` (lowercased): the kind of the first
    /// rule that matches, and the practices, lines and roles of every matching rule of that
    /// kind. `matches` says whether a rule's group is one of the names.
    pub(super) async fn access_from_rules(
        &self,
        rules: &[GroupRule],
        matches: impl Fn(&GroupRule) -> bool,
    ) -> Result<RuleAccess, DomainError> {
        let matched: Vec<&GroupRule> = rules.iter().filter(|rule| matches(rule)).collect();
        let kind = matched.first().and_then(|rule| UserKind::parse(&rule.kind));
        let mut access = RuleAccess {
            kind,
            ..RuleAccess::default()
        };
        for rule in matched
            .iter()
            .filter(|rule| Some(rule.kind.as_str()) == kind.map(UserKind::as_str))
        {
            for membership in self.rule_memberships(rule).await? {
                match access
                    .memberships
                    .iter_mut()
                    .find(|m| m.practice_id == membership.practice_id)
                {
                    Some(held) => {
                        for line in membership.line_ids {
                            if !held.line_ids.contains(&line) {
                                held.line_ids.push(line);
                            }
                        }
                    }
                    None => access.memberships.push(membership),
                }
            }
            for role_id in &rule.role_ids {
                if rule.practice_ids.is_empty() {
                    access.roles.push((RoleId(role_id.clone()), None));
                }
                for practice_id in &rule.practice_ids {
                    access.roles.push((
                        RoleId(role_id.clone()),
                        Some(PracticeId(practice_id.clone())),
                    ));
                }
            }
        }
        access.roles.sort();
        access.roles.dedup();
        Ok(access)
    }

    /// Replaces the enterprise's rules, after checking each against the directory.
    pub async fn set_scim_group_rules(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        rules: Vec<GroupRule>,
        now: DateTime<Utc>,
    ) -> Result<Vec<GroupRule>, DomainError> {
        self.administered(actor, enterprise_id).await?;
        let cleaned = self
            .checked_group_rules(enterprise_id, rules, "rules")
            .await?;
        let text = serde_json::to_string(&cleaned)
            .map_err(|error| DomainError::Storage(error.to_string()))?;
        let audit = actor.audit(
            "scim.rules.set",
            format!("enterprise:{}", enterprise_id.0),
            serde_json::json!({"rules": cleaned.len()}),
            now,
        );
        self.store
            .put_scim_group_rules(enterprise_id, text, now, &audit)
            .await?;
        // New rules apply to everyone SCIM already keeps, not only at their next change.
        let client = ScimClient {
            enterprise_id: enterprise_id.clone(),
            token_id: String::new(),
        };
        let everyone = self
            .scim_list(&client, ScimType::User)
            .await?
            .into_iter()
            .map(|user| user.id)
            .collect();
        self.reconcile_scim_users(&client, everyone, now).await?;
        Ok(cleaned)
    }

    pub async fn get_scim_group_rules(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<GroupRule>, DomainError> {
        self.administered(actor, enterprise_id).await?;
        self.group_rules(enterprise_id).await
    }

    async fn group_rules(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<GroupRule>, DomainError> {
        match self.store.scim_group_rules(enterprise_id).await? {
            Some(text) => serde_json::from_str(&text)
                .map_err(|error| DomainError::Storage(format!("SCIM group rules: {error}"))),
            None => Ok(Vec::new()),
        }
    }

    /// Brings the Praxis users behind `scim_user_ids` in line with their SCIM state.
    pub(super) async fn reconcile_scim_users(
        &self,
        client: &ScimClient,
        scim_user_ids: BTreeSet<String>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        if scim_user_ids.is_empty() {
            return Ok(());
        }
        let rules = self.group_rules(&client.enterprise_id).await?;
        if rules.is_empty() {
            return Ok(());
        }
        let groups = self.scim_list(client, ScimType::Group).await?;
        for scim_id in scim_user_ids {
            let Ok(user) = self.scim_get(client, ScimType::User, &scim_id).await else {
                continue;
            };
            let active = user.body.get("active") != Some(&serde_json::Value::Bool(false));
            let Some(email) = scim_email(&user.body) else {
                continue;
            };
            if !active {
                continue;
            }
            let names: BTreeSet<String> = groups
                .iter()
                .filter(|group| member_ids(group).contains(&scim_id))
                .filter_map(|group| string_at(&group.body, "/displayName"))
                .map(|name| name.trim().to_lowercase())
                .collect();
            let access = self
                .access_from_rules(&rules, |rule| names.contains(&rule.group))
                .await?;
            // Nobody new without a rule; someone known keeps kind and practices but loses
            // the roles SCIM gave.
            if access.kind.is_none() && self.store.user_by_email(&email).await?.is_none() {
                continue;
            }
            let request = Provision {
                enterprise_id: client.enterprise_id.clone(),
                email,
                given_name: string_at(&user.body, "/name/givenName")
                    .unwrap_or_default()
                    .to_owned(),
                family_name: string_at(&user.body, "/name/familyName")
                    .unwrap_or_default()
                    .to_owned(),
                kind: access.kind,
                memberships: access.memberships,
                roles: access.roles,
                source: source(&client.enterprise_id),
            };
            self.provision(&source(&client.enterprise_id), request, now)
                .await?;
        }
        Ok(())
    }
}
