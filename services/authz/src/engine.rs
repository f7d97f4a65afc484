//! One decision (A1): the Cedar request built from a compiled principal and the resource, the
//! enterprise's policy slice for the permission, and the answer turned into reasons and
//! obligations. Deny unless a policy permits and none forbids; a forbid policy that fails to
//! evaluate denies (Cedar would skip it, and an error must never become ALLOW).

use crate::book::PolicyBook;
use crate::model::Model;
use crate::principal::CompiledPrincipal;
use cedar_policy::{
    Authorizer, Context, Decision, Effect, Entities, Entity, EntityUid, PolicyId, PolicySet,
    Request, RestrictedExpression,
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

/// `feature:action@scope` for every scope that contains the resource.
fn scope_keys(permission: &str, resource: &ResourceInput) -> Vec<String> {
    let mut keys = vec![format!("{permission}@enterprise")];
    if let Some(practice) = &resource.practice_id {
        keys.push(format!("{permission}@practice:{practice}"));
    }
    if let Some(location) = &resource.location_id {
        keys.push(format!("{permission}@location:{location}"));
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

struct Prepared {
    request: Request,
    entities: Entities,
    keys: Vec<String>,
    active: Vec<bool>,
    resource: ResourceInput,
    policies: Arc<PolicySet>,
}

fn prepare(
    model: &Model,
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    input: &CheckInput,
) -> Result<Prepared, EngineError> {
    let action = model
        .action(&input.permission)
        .ok_or_else(|| EngineError::Invalid {
            field: "permission",
            message: format!("{} is not in the permission catalogue", input.permission),
        })?;
    let resource = placed(principal, &input.resource)?;
    let active = principal.active_set(input.time, resource.location_id.as_deref());
    let user = principal.entity(&active).map_err(failed)?;
    let uid = resource_uid(&resource.kind, &resource.id)?;
    let keys = scope_keys(&input.permission, &resource);
    let mut context = vec![
        (
            "time".to_owned(),
            RestrictedExpression::new_long(input.time),
        ),
        (
            "scope_keys".to_owned(),
            RestrictedExpression::new_set(
                keys.iter().cloned().map(RestrictedExpression::new_string),
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
    let entities = Entities::from_entities(
        [
            Entity::clone(&user),
            resource_entity(&resource, uid)?,
            Entity::clone(action),
        ],
        None,
    )
    .map_err(failed)?;
    let policies = book
        .slice(model, &principal.user_id, &input.permission)
        .map_err(failed)?;
    Ok(Prepared {
        request,
        entities,
        keys,
        active,
        resource,
        policies,
    })
}

/// Decides one check; with `explain`, also records every step.
pub fn evaluate(
    model: &Model,
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    input: &CheckInput,
    explain: bool,
) -> Result<Evaluation, EngineError> {
    let prepared = prepare(model, book, principal, input)?;
    let response =
        Authorizer::new().is_authorized(&prepared.request, &prepared.policies, &prepared.entities);
    let failed_forbids: Vec<PolicyId> = response
        .diagnostics()
        .errors()
        .map(|error| match error {
            cedar_policy::AuthorizationError::PolicyEvaluationError(e) => e.policy_id(),
        })
        .filter(|id| book.effect(id) == Some(Effect::Forbid))
        .cloned()
        .collect();
    let determining: Vec<PolicyId> = response.diagnostics().reason().cloned().collect();
    let allow = response.decision() == Decision::Allow && failed_forbids.is_empty();

    let mut reasons = Vec::new();
    let mut masked_fields = Vec::new();
    if allow {
        let mut only_grants = true;
        let mut masks: Option<BTreeSet<String>> = None;
        for id in &determining {
            match id.to_string().as_str() {
                "grant:all" | "grant:own" => {
                    for (binding, fields) in grant_matches(principal, &prepared, id.as_ref()) {
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
    } else if !failed_forbids.is_empty() {
        for id in &failed_forbids {
            reasons.push(format!(
                "forbid policy {} failed to evaluate, so it counts as applying",
                id
            ));
        }
    } else if determining.is_empty() {
        reasons.push(format!(
            "no grant of {} covers this resource",
            input.permission
        ));
        reasons.extend(inactive_hints(principal, &prepared, input));
    } else {
        for id in &determining {
            if id.to_string() == "role:denial" {
                reasons.extend(denial_matches(principal, &prepared));
            } else {
                reasons.push(book.describe(id));
            }
        }
    }

    let steps = if explain {
        trace(book, principal, &prepared, input)
    } else {
        Vec::new()
    };
    Ok(Evaluation {
        allow,
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

fn covers(binding: &crate::principal::BoundRole, keys: &[String], set: &BTreeSet<String>) -> bool {
    let scope = binding.scope.key();
    set.iter()
        .any(|p| keys.iter().any(|k| *k == format!("{p}@{scope}")))
}

/// The active bindings whose grants allowed, with the fields each hides.
fn grant_matches(
    principal: &CompiledPrincipal,
    prepared: &Prepared,
    policy: &str,
) -> Vec<(String, BTreeSet<String>)> {
    principal
        .bindings
        .iter()
        .zip(&prepared.active)
        .filter(|(_, on)| **on)
        .filter(|(b, _)| match policy {
            "grant:own" => covers(b, &prepared.keys, &b.own_grants),
            _ => covers(b, &prepared.keys, &b.grants),
        })
        .map(|(b, _)| {
            let scope = if policy == "grant:own" { "OWN" } else { "ALL" };
            (
                format!("{} grants it (scope {scope})", binding_name(b)),
                b.masks
                    .get(&prepared.resource.kind)
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn denial_matches(principal: &CompiledPrincipal, prepared: &Prepared) -> Vec<String> {
    principal
        .bindings
        .iter()
        .zip(&prepared.active)
        .filter(|(b, on)| **on && covers(b, &prepared.keys, &b.denials))
        .map(|(b, _)| format!("{} denies it", binding_name(b)))
        .collect()
}

/// Bindings that would have granted the permission but do not count now.
fn inactive_hints(
    principal: &CompiledPrincipal,
    prepared: &Prepared,
    input: &CheckInput,
) -> Vec<String> {
    principal
        .bindings
        .iter()
        .zip(&prepared.active)
        .filter(|(b, on)| {
            !**on
                && (covers(b, &prepared.keys, &b.grants)
                    || covers(b, &prepared.keys, &b.own_grants))
        })
        .filter_map(|(b, _)| {
            principal
                .activity(b, input.time, prepared.resource.location_id.as_deref())
                .err()
                .map(|why| format!("{} would grant it but is {why}", binding_name(b)))
        })
        .collect()
}

/// Every step of the evaluation: the bindings, then each policy of the slice on its own.
fn trace(
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    prepared: &Prepared,
    input: &CheckInput,
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
    for (binding, on) in principal.bindings.iter().zip(&prepared.active) {
        let (effect, detail) = if !on {
            let why = principal
                .activity(
                    binding,
                    input.time,
                    prepared.resource.location_id.as_deref(),
                )
                .err()
                .map(|why| why.to_string())
                .unwrap_or_default();
            ("inactive", why)
        } else if covers(binding, &prepared.keys, &binding.denials) {
            ("forbid", format!("denies {}", input.permission))
        } else if covers(binding, &prepared.keys, &binding.grants) {
            ("permit", format!("grants {} (scope ALL)", input.permission))
        } else if covers(binding, &prepared.keys, &binding.own_grants) {
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
    for policy in prepared.policies.policies() {
        let alone = PolicySet::from_policies([policy.clone()]);
        let effect = match alone {
            Ok(alone) => {
                let answer =
                    authorizer.is_authorized(&prepared.request, &alone, &prepared.entities);
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
            detail: book.describe(policy.id()),
        });
    }
    steps
}

#[cfg(test)]
mod tests;
