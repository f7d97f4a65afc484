//! One decision (A1): the Cedar request built from a compiled principal and the resource, the
//! enterprise's policy slice for the permission, and the answer turned into reasons and
//! obligations. Deny unless a policy permits and none forbids; a forbid policy that fails to
//! evaluate denies (Cedar would skip it, and an error must never become ALLOW).

use crate::book::PolicyBook;
use crate::model::Model;
use crate::principal::{ActiveView, CompiledPrincipal};
use cedar_policy::{
    Authorizer, Context, Decision, Effect, Entities, Entity, EntityUid, PolicySet, Request,
    RestrictedExpression,
};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct ResourceInput {
    pub kind: String,
    pub id: String,
    pub enterprise_id: String,
    pub practice_id: Option<String>,
    pub location_id: Option<String>,
    pub owner_id: Option<String>,
    pub line_id: Option<String>,
    pub attributes: HashMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct CheckInput {
    /// A catalogued `feature:action`.
    pub permission: String,
    pub resource: ResourceInput,
    /// Unix seconds.
    pub time: i64,
    pub ip: Option<String>,
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub subject: String,
    pub effect: String,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Evaluation {
    pub allow: bool,
    pub reasons: Vec<String>,
    pub masked_fields: Vec<String>,
    pub revision: i64,
    /// Filled for Explain only.
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("decision failed: {0}")]
    Failed(String),
}

fn failed(error: impl std::fmt::Display) -> EngineError {
    EngineError::Failed(error.to_string())
}

fn resource_uid(kind: &str, id: &str) -> Result<EntityUid, EngineError> {
    crate::model::uid("Resource", &format!("{kind}/{id}")).map_err(failed)
}

/// The request's resource with its practice taken from its location when only the location was
/// named; a location of another practice than the one named is refused.
fn placed(
    principal: &CompiledPrincipal,
    resource: &ResourceInput,
) -> Result<ResourceInput, EngineError> {
    let mut resource = resource.clone();
    let known = resource
        .location_id
        .as_deref()
        .and_then(|id| principal.locations.get(id));
    if let Some((practice, _)) = known {
        match &resource.practice_id {
            None => resource.practice_id = Some(practice.clone()),
            Some(named) if named != practice => {
                return Err(EngineError::Invalid {
                    field: "resource.location_id",
                    message: "the location belongs to another practice".to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(resource)
}

/// `feature:action@scope` for every scope that contains the resource, the resource itself
/// included.
fn scope_keys(permission: &str, resource: &ResourceInput) -> Vec<String> {
    let mut keys = vec![format!("{permission}@enterprise")];
    if let Some(practice) = &resource.practice_id {
        keys.push(format!("{permission}@practice:{practice}"));
    }
    if let Some(location) = &resource.location_id {
        keys.push(format!("{permission}@location:{location}"));
    }
    // A4: explicit grants name one resource.
    if !resource.kind.is_empty() && !resource.id.is_empty() {
        keys.push(format!(
            "{permission}@resource:{}:{}",
            resource.kind, resource.id
        ));
    }
    keys
}

fn resource_entity(resource: &ResourceInput, uid: EntityUid) -> Result<Entity, EngineError> {
    let mut attrs = HashMap::from([
        (
            "type".to_owned(),
            RestrictedExpression::new_string(resource.kind.clone()),
        ),
        (
            "enterprise".to_owned(),
            RestrictedExpression::new_string(resource.enterprise_id.clone()),
        ),
    ]);
    for (name, value) in [
        ("practice", &resource.practice_id),
        ("location", &resource.location_id),
        ("line", &resource.line_id),
    ] {
        if let Some(value) = value {
            attrs.insert(
                name.to_owned(),
                RestrictedExpression::new_string(value.clone()),
            );
        }
    }
    if let Some(owner) = &resource.owner_id {
        let owner = crate::principal::user_uid(owner).map_err(failed)?;
        attrs.insert(
            "owner".to_owned(),
            RestrictedExpression::new_entity_uid(owner),
        );
    }
    let tags = resource
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone())));
    Entity::new_with_tags(uid, attrs, HashSet::new(), tags).map_err(failed)
}

/// What a decision is about, placed and keyed; shared by the fast path and Cedar.
struct Situation {
    resource: ResourceInput,
    keys: Vec<String>,
    active: Vec<bool>,
    view: Arc<ActiveView>,
}

/// Which policies decided: Cedar's answer, or the fast path's equivalent of it.
pub(crate) struct Outcome {
    pub allow: bool,
    /// Satisfied permits on ALLOW, satisfied forbids on DENY; empty when nothing applied.
    pub determining: Vec<String>,
    /// Forbid policies that failed to evaluate (they deny).
    pub failed_forbids: Vec<String>,
}

fn situation(principal: &CompiledPrincipal, input: &CheckInput) -> Result<Situation, EngineError> {
    let resource = placed(principal, &input.resource)?;
    let active = principal.active_set(input.time, resource.location_id.as_deref());
    let view = principal.view(&active).map_err(failed)?;
    let keys = scope_keys(&input.permission, &resource);
    Ok(Situation {
        resource,
        keys,
        active,
        view,
    })
}

/// The Cedar request, entity store and policy slice of one decision.
struct CedarCall {
    request: Request,
    entities: Entities,
    policies: Arc<PolicySet>,
}

fn cedar_call(
    model: &Model,
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    input: &CheckInput,
    situation: &Situation,
) -> Result<CedarCall, EngineError> {
    let action = model
        .action(&input.permission)
        .ok_or_else(|| unknown_permission(&input.permission))?;
    let uid = resource_uid(&situation.resource.kind, &situation.resource.id)?;
    let mut context = vec![
        (
            "time".to_owned(),
            RestrictedExpression::new_long(input.time),
        ),
        (
            "scope_keys".to_owned(),
            RestrictedExpression::new_set(
                situation
                    .keys
                    .iter()
                    .cloned()
                    .map(RestrictedExpression::new_string),
            ),
        ),
    ];
    if let Some(ip) = &input.ip {
        context.push(("ip".to_owned(), RestrictedExpression::new_ip(ip)));
    }
    if let Some(amount) = input.amount {
        context.push(("amount".to_owned(), RestrictedExpression::new_long(amount)));
    }
    let context = Context::from_pairs(context).map_err(failed)?;
    let request = Request::new(
        principal.uid.clone(),
        action.uid(),
        uid.clone(),
        context,
        None,
    )
    .map_err(failed)?;
    let entities = situation
        .view
        .entities(&input.permission, action)
        .map_err(failed)?
        .add_entities([resource_entity(&situation.resource, uid)?], None)
        .map_err(failed)?;
    let policies = book
        .slice(model, &principal.user_id, &input.permission)
        .map_err(failed)?;
    Ok(CedarCall {
        request,
        entities,
        policies,
    })
}

fn unknown_permission(permission: &str) -> EngineError {
    EngineError::Invalid {
        field: "permission",
        message: format!("{permission} is not in the permission catalogue"),
    }
}

fn decide_with_cedar(book: &PolicyBook, call: &CedarCall) -> Outcome {
    let response = Authorizer::new().is_authorized(&call.request, &call.policies, &call.entities);
    let failed_forbids: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|error| match error {
            cedar_policy::AuthorizationError::PolicyEvaluationError(e) => e.policy_id(),
        })
        .filter(|id| book.effect(id) == Some(Effect::Forbid))
        .map(ToString::to_string)
        .collect();
    Outcome {
        allow: response.decision() == Decision::Allow && failed_forbids.is_empty(),
        determining: response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect(),
        failed_forbids,
    }
}

/// Decides one check; with `explain`, also records every step. Decisions whose policy slice
/// holds only the base policies take the fast path (`fast`), which decides as Cedar does over
/// those policies (a property test holds it to that); the rest, and every Explain, go to Cedar.
pub fn evaluate(
    model: &Model,
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    input: &CheckInput,
    explain: bool,
) -> Result<Evaluation, EngineError> {
    let groups = model
        .action_group_names(&input.permission)
        .ok_or_else(|| unknown_permission(&input.permission))?;
    let situation = situation(principal, input)?;
    let (outcome, call) = if !explain && book.base_only(&principal.user_id, &input.permission) {
        let outcome = fast::decide(
            principal,
            &situation.view,
            &input.permission,
            groups,
            &situation.resource,
            &situation.keys,
        );
        (outcome, None)
    } else {
        let call = cedar_call(model, book, principal, input, &situation)?;
        (decide_with_cedar(book, &call), Some(call))
    };

    let mut reasons = Vec::new();
    let mut masked_fields = Vec::new();
    if outcome.allow {
        let mut only_grants = true;
        let mut masks: Option<BTreeSet<String>> = None;
        for id in &outcome.determining {
            match id.as_str() {
                "grant:all" | "grant:own" => {
                    for (binding, fields) in grant_matches(principal, &situation, input, id) {
                        reasons.push(binding);
                        masks = Some(match masks {
                            None => fields,
                            Some(seen) => seen.intersection(&fields).cloned().collect(),
                        });
                    }
                }
                _ => {
                    only_grants = false;
                    reasons.push(book.describe(id));
                }
            }
        }
        // A field stays hidden only when every source of the ALLOW hides it; a kind baseline
        // or a custom permit hides nothing.
        if only_grants {
            masked_fields = masks.unwrap_or_default().into_iter().collect();
        }
    } else if !outcome.failed_forbids.is_empty() {
        for id in &outcome.failed_forbids {
            reasons.push(format!(
                "forbid policy {id} failed to evaluate, so it counts as applying"
            ));
        }
    } else if outcome.determining.is_empty() {
        reasons.push(format!(
            "no grant of {} covers this resource",
            input.permission
        ));
        reasons.extend(inactive_hints(principal, &situation, input));
    } else {
        for id in &outcome.determining {
            if id == "role:denial" {
                reasons.extend(denial_matches(principal, &situation, input));
            } else {
                reasons.push(book.describe(id));
            }
        }
    }

    let steps = match (&call, explain) {
        (Some(call), true) => trace(book, principal, &situation, input, call),
        _ => Vec::new(),
    };
    Ok(Evaluation {
        allow: outcome.allow,
        reasons,
        masked_fields,
        revision: principal.revision,
        steps,
    })
}

fn binding_name(binding: &crate::principal::BoundRole) -> String {
    format!(
        "role '{}' ({}) bound at {} (binding {})",
        binding.role_name,
        binding.role_id,
        binding.scope.key(),
        binding.binding_id
    )
}

/// Whether `binding` holds `permission` in `set` at a scope that contains the resource.
fn covers(
    binding: &crate::principal::BoundRole,
    situation: &Situation,
    permission: &str,
    set: &BTreeSet<String>,
) -> bool {
    set.contains(permission)
        && situation.keys.iter().any(|key| {
            key.strip_prefix(permission)
                .and_then(|k| k.strip_prefix('@'))
                == Some(binding.scope.key().as_str())
        })
}

fn active_bindings<'a>(
    principal: &'a CompiledPrincipal,
    situation: &'a Situation,
) -> impl Iterator<Item = &'a crate::principal::BoundRole> {
    principal
        .bindings
        .iter()
        .zip(&situation.active)
        .filter(|(_, on)| **on)
        .map(|(b, _)| b)
}

/// The active bindings whose grants allowed, with the fields each hides.
fn grant_matches(
    principal: &CompiledPrincipal,
    situation: &Situation,
    input: &CheckInput,
    policy: &str,
) -> Vec<(String, BTreeSet<String>)> {
    let own = policy == "grant:own";
    active_bindings(principal, situation)
        .filter(|b| {
            let set = if own { &b.own_grants } else { &b.grants };
            covers(b, situation, &input.permission, set)
        })
        .map(|b| {
            (
                format!(
                    "{} grants it (scope {})",
                    binding_name(b),
                    if own { "OWN" } else { "ALL" }
                ),
                b.masks
                    .get(&situation.resource.kind)
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn denial_matches(
    principal: &CompiledPrincipal,
    situation: &Situation,
    input: &CheckInput,
) -> Vec<String> {
    active_bindings(principal, situation)
        .filter(|b| covers(b, situation, &input.permission, &b.denials))
        .map(|b| format!("{} denies it", binding_name(b)))
        .collect()
}

/// Bindings that would have granted the permission but do not count now.
fn inactive_hints(
    principal: &CompiledPrincipal,
    situation: &Situation,
    input: &CheckInput,
) -> Vec<String> {
    principal
        .bindings
        .iter()
        .zip(&situation.active)
        .filter(|(b, on)| {
            !**on
                && (covers(b, situation, &input.permission, &b.grants)
                    || covers(b, situation, &input.permission, &b.own_grants))
        })
        .filter_map(|(b, _)| {
            principal
                .activity(b, input.time, situation.resource.location_id.as_deref())
                .err()
                .map(|why| format!("{} would grant it but is {why}", binding_name(b)))
        })
        .collect()
}

/// Every step of the evaluation: the bindings, then each policy of the slice on its own.
fn trace(
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    situation: &Situation,
    input: &CheckInput,
    call: &CedarCall,
) -> Vec<Step> {
    let mut steps = vec![Step {
        subject: "principal".to_owned(),
        effect: if principal.active {
            "active"
        } else {
            "inactive"
        }
        .to_owned(),
        detail: format!(
            "kind {}, practices [{}], revision {}",
            principal.kind,
            principal.practices.join(", "),
            principal.revision
        ),
    }];
    for (binding, on) in principal.bindings.iter().zip(&situation.active) {
        let (effect, detail) = if !on {
            let why = principal
                .activity(
                    binding,
                    input.time,
                    situation.resource.location_id.as_deref(),
                )
                .err()
                .map(|why| why.to_string())
                .unwrap_or_default();
            ("inactive", why)
        } else if covers(binding, situation, &input.permission, &binding.denials) {
            ("forbid", format!("denies {}", input.permission))
        } else if covers(binding, situation, &input.permission, &binding.grants) {
            ("permit", format!("grants {} (scope ALL)", input.permission))
        } else if covers(binding, situation, &input.permission, &binding.own_grants) {
            (
                "permit if owner",
                format!("grants {} (scope OWN)", input.permission),
            )
        } else {
            (
                "no match",
                format!("nothing about {} here", input.permission),
            )
        };
        steps.push(Step {
            subject: format!("binding {}", binding.binding_id),
            effect: effect.to_owned(),
            detail: format!("{}: {detail}", binding_name(binding)),
        });
    }
    let authorizer = Authorizer::new();
    for policy in call.policies.policies() {
        let alone = PolicySet::from_policies([policy.clone()]);
        let effect = match alone {
            Ok(alone) => {
                let answer = authorizer.is_authorized(&call.request, &alone, &call.entities);
                if answer.diagnostics().errors().next().is_some() {
                    "error".to_owned()
                } else if answer.diagnostics().reason().next().is_some() {
                    match policy.effect() {
                        Effect::Permit => "permit".to_owned(),
                        Effect::Forbid => "forbid".to_owned(),
                    }
                } else {
                    "not satisfied".to_owned()
                }
            }
            Err(error) => format!("error: {error}"),
        };
        steps.push(Step {
            subject: format!("policy {}", policy.id()),
            effect,
            detail: book.describe(policy.id().as_ref()),
        });
    }
    steps
}

mod fast;

#[cfg(test)]
mod tests;
