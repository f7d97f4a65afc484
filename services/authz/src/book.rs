//! An enterprise's compiled policy set: the base policies plus its custom ones, sliced by action
//! so a decision evaluates only the policies that can apply to it (Cedar evaluates every policy
//! it is given). Custom policies naming one principal are kept apart and added only to that
//! principal's decisions. Built once per change of the enterprise's custom policies.

use crate::model::Model;
use cedar_policy::{
    ActionConstraint, Effect, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint,
    ValidationMode, Validator,
};
use miette::Diagnostic;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

/// A problem in a custom policy text, located in it (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn locate(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

fn problem(text: &str, diagnostic: &dyn Diagnostic, message: String) -> Problem {
    let offset = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map_or(0, |label| label.offset());
    let (line, column) = locate(text, offset);
    let help = diagnostic
        .help()
        .map(|help| format!(" ({help})"))
        .unwrap_or_default();
    // Messages travel in gRPC status headers: one line of printable text.
    let message = format!("{message}{help}")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    Problem {
        message,
        line,
        column,
    }
}

const MAX_PROBLEMS: usize = 10;

/// A validator message without the policy's internal id and the action it was checked for.
fn general(message: &str) -> String {
    let mut message = message.to_owned();
    if let Some(rest) = message.strip_prefix("for policy `")
        && let Some(end) = rest.find("`, ")
    {
        message = rest[end + 3..].to_owned();
    }
    if let Some(start) = message.find(" for Praxis::Action::\"") {
        let after = &message[start + 22..];
        if let Some(end) = after.find('"') {
            message = format!("{}{}", &message[..start], &after[end + 1..]);
        }
    }
    message
}

/// Parses and validates one stored custom policy (one or more Cedar policies) against the
/// schema; the Cedar policies get ids `custom:<policy id>#<n>`.
pub fn compile_custom(model: &Model, id: &str, text: &str) -> Result<Vec<Policy>, Vec<Problem>> {
    let parsed = PolicySet::from_str(text).map_err(|errors| {
        errors
            .iter()
            .map(|error| problem(text, error, error.to_string()))
            .collect::<Vec<_>>()
    })?;
    if parsed.templates().next().is_some() {
        return Err(vec![Problem {
            message: "templates (policies with ?principal or ?resource slots) are not supported"
                .to_owned(),
            line: 1,
            column: 1,
        }]);
    }
    if parsed.policies().next().is_none() {
        return Err(vec![Problem {
            message: "no policy in the text".to_owned(),
            line: 1,
            column: 1,
        }]);
    }
    let validation = Validator::new(model.schema.clone()).validate(&parsed, ValidationMode::Strict);
    if !validation.validation_passed() {
        // The validator reports a mistake once per action it applies to; one report per place
        // is what a reader needs.
        let mut problems: Vec<Problem> = Vec::new();
        for error in validation.validation_errors() {
            let found = problem(text, error, general(&error.to_string()));
            if !problems.contains(&found) && problems.len() < MAX_PROBLEMS {
                problems.push(found);
            }
        }
        return Err(problems);
    }
    Ok(parsed
        .policies()
        .enumerate()
        .map(|(n, policy)| policy.new_id(PolicyId::new(format!("custom:{id}#{n}"))))
        .collect())
}

/// Whether a policy can apply to `action` (whose groups are `groups`).
fn applies_to(policy: &Policy, action: &EntityUid, groups: &[EntityUid]) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(uid) => &uid == action,
        ActionConstraint::In(uids) => uids.iter().any(|uid| uid == action || groups.contains(uid)),
    }
}

/// The user a policy is limited to, if its scope names one.
fn personal(policy: &Policy) -> Option<String> {
    let uid = match policy.principal_constraint() {
        PrincipalConstraint::Eq(uid) | PrincipalConstraint::In(uid) => uid,
        PrincipalConstraint::IsIn(_, uid) => uid,
        PrincipalConstraint::Any | PrincipalConstraint::Is(_) => return None,
    };
    (uid.type_name().basename() == "User").then(|| uid.id().unescaped().to_owned())
}

#[derive(Debug, thiserror::Error)]
#[error("policy set: {0}")]
pub struct BookError(String);

pub struct PolicyBook {
    /// Per permission: base policies and custom policies for everyone.
    slices: HashMap<String, Arc<PolicySet>>,
    /// Per user: custom policies naming them.
    personal: HashMap<String, Vec<Policy>>,
    personal_slices: moka::sync::Cache<(String, String), Arc<PolicySet>>,
    /// Permissions whose shared slice holds only the base policies.
    base_only: std::collections::HashSet<String>,
    /// Every policy, for Explain and for checking the slices against.
    pub all: PolicySet,
    /// Policy id → its `@reason` annotation.
    reasons: HashMap<String, String>,
}

impl PolicyBook {
    pub fn build(model: &Model, custom: Vec<Policy>) -> Result<Self, BookError> {
        let mut everyone: Vec<Policy> = model.base.policies().cloned().collect();
        let mut by_user: HashMap<String, Vec<Policy>> = HashMap::new();
        for policy in custom {
            match personal(&policy) {
                Some(user) => by_user.entry(user).or_default().push(policy),
                None => everyone.push(policy),
            }
        }
        let mut slices = HashMap::new();
        let mut base_only = std::collections::HashSet::new();
        for permission in model.permissions() {
            let (action, groups) = model
                .action_and_groups(permission)
                .ok_or_else(|| BookError(format!("unknown action {permission}")))?;
            let set = PolicySet::from_policies(
                everyone
                    .iter()
                    .filter(|p| applies_to(p, action, groups))
                    .cloned(),
            )
            .map_err(|e| BookError(e.to_string()))?;
            if set.policies().all(|p| model.base.policy(p.id()).is_some()) {
                base_only.insert(permission.to_owned());
            }
            slices.insert(permission.to_owned(), Arc::new(set));
        }
        let all = PolicySet::from_policies(
            everyone
                .into_iter()
                .chain(by_user.values().flatten().cloned()),
        )
        .map_err(|e| BookError(e.to_string()))?;
        // Read once here: cedar parses an annotation's key on every lookup.
        let reasons = all
            .policies()
            .filter_map(|p| {
                p.annotation("reason")
                    .map(|reason| (p.id().to_string(), reason.to_owned()))
            })
            .collect();
        Ok(Self {
            slices,
            personal: by_user,
            personal_slices: moka::sync::Cache::new(10_000),
            base_only,
            all,
            reasons,
        })
    }

    /// The policies that can decide `permission` for `user`.
    pub fn slice(
        &self,
        model: &Model,
        user: &str,
        permission: &str,
    ) -> Result<Arc<PolicySet>, BookError> {
        let shared = self
            .slices
            .get(permission)
            .ok_or_else(|| BookError(format!("unknown action {permission}")))?;
        let Some(own) = self.personal.get(user) else {
            return Ok(shared.clone());
        };
        let key = (user.to_owned(), permission.to_owned());
        if let Some(set) = self.personal_slices.get(&key) {
            return Ok(set);
        }
        let (action, groups) = model
            .action_and_groups(permission)
            .ok_or_else(|| BookError(format!("unknown action {permission}")))?;
        let mut set = PolicySet::clone(shared);
        for policy in own.iter().filter(|p| applies_to(p, action, groups)) {
            set.add(policy.clone())
                .map_err(|e| BookError(e.to_string()))?;
        }
        let set = Arc::new(set);
        self.personal_slices.insert(key, set.clone());
        Ok(set)
    }

    /// Whether only the base policies can decide `permission` for `user`.
    pub fn base_only(&self, user: &str, permission: &str) -> bool {
        self.base_only.contains(permission) && !self.personal.contains_key(user)
    }

    /// Why a policy matters, in words: its `@reason` annotation, or whose custom policy it is.
    pub fn describe(&self, id: &str) -> String {
        match self.reasons.get(id) {
            Some(reason) => reason.clone(),
            None => format!("custom policy {id}"),
        }
    }

    pub fn effect(&self, id: &PolicyId) -> Option<Effect> {
        self.all.policy(id).map(Policy::effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a7_custom_policy_problems_carry_line_and_column() {
        let model = Model::load().expect("model");
        let text = "permit (principal, action, resource)\nwhen { context.amont < 500 };";
        let problems = compile_custom(&model, "p", text).expect_err("invalid");
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, 2, "{problems:?}");
        assert_eq!(problems[0].column, 8, "{problems:?}");
        assert_eq!(
            problems[0].message,
            "attribute `amont` in context not found (did you mean `amount`?)"
        );

        let syntax = "permit (principal, action, resource)\nwhen { context.amount < };";
        let problems = compile_custom(&model, "p", syntax).expect_err("invalid");
        assert_eq!(problems[0].line, 2, "{problems:?}");

        let unknown = "forbid (principal, action == Praxis::Action::\"patients:fly\", resource);";
        assert!(compile_custom(&model, "p", unknown).is_err());

        let good = "forbid (principal, action == Praxis::Action::\"charges:approve\", resource)\nwhen { context has amount && context.amount >= 50000 };";
        let policies = compile_custom(&model, "limit", good).expect("valid");
        assert_eq!(policies[0].id().to_string(), "custom:limit#0");
    }

    #[test]
    fn a7_slices_hold_only_policies_that_can_apply() {
        let model = Model::load().expect("model");
        let custom = compile_custom(
            &model,
            "limit",
            "forbid (principal, action == Praxis::Action::\"charges:approve\", resource)\nwhen { context has amount && context.amount >= 50000 };\n\
             permit (principal == Praxis::User::\"u-1\", action in Praxis::Action::\"inventory\", resource);",
        )
        .expect("valid");
        let book = PolicyBook::build(&model, custom).expect("book");
        let ids = |set: &PolicySet| {
            set.policies()
                .map(|p| p.id().to_string())
                .collect::<Vec<_>>()
        };
        let approve = book.slice(&model, "u-2", "charges:approve").expect("slice");
        assert!(ids(&approve).contains(&"custom:limit#0".to_owned()));
        assert!(!ids(&approve).contains(&"kind:staff:appointments".to_owned()));
        let read = book
            .slice(&model, "u-2", "appointments:read")
            .expect("slice");
        assert!(ids(&read).contains(&"kind:staff:appointments".to_owned()));
        assert!(!ids(&read).contains(&"custom:limit#0".to_owned()));
        let stock = book.slice(&model, "u-1", "inventory:read").expect("slice");
        assert!(ids(&stock).contains(&"custom:limit#1".to_owned()));
        let others = book.slice(&model, "u-2", "inventory:read").expect("slice");
        assert!(!ids(&others).contains(&"custom:limit#1".to_owned()));
    }
}
