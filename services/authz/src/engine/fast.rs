//! The base policies of `policies/base.cedar`, decided without Cedar: for decisions whose slice
//! holds nothing else (no custom policy of the enterprise applies), this answers what Cedar would,
//! naming the same determining policies, in a fraction of the time. Any change to the base
//! policies must be mirrored here; the property test in `tests.rs` fails otherwise.

use super::{Outcome, ResourceInput};
use crate::principal::{ActiveView, CompiledPrincipal};
use std::collections::HashSet;

fn any_key(set: &HashSet<String>, keys: &[String]) -> bool {
    keys.iter().any(|key| set.contains(key))
}

pub(crate) fn decide(
    principal: &CompiledPrincipal,
    view: &ActiveView,
    permission: &str,
    groups: &[String],
    resource: &ResourceInput,
    keys: &[String],
) -> Outcome {
    let kind = principal.kind.as_str();
    let in_group = |group: &str| groups.iter().any(|g| g == group);
    let staff = matches!(kind, "STAFF" | "ADVANCED_STAFF");
    let in_practice = resource
        .practice_id
        .as_ref()
        .is_some_and(|p| principal.practices.contains(p));
    let owned = resource
        .owner_id
        .as_deref()
        .is_some_and(|owner| owner == principal.user_id);

    let forbids = [
        ("tenancy", resource.enterprise_id != principal.enterprise_id),
        ("inactive", !principal.active),
        (
            "kind:content-manager:no-phi",
            kind == "ENTERPRISE_CONTENT_MANAGER" && in_group("phi"),
        ),
        (
            "kind:content-manager:no-toggle",
            kind == "ENTERPRISE_CONTENT_MANAGER" && in_group("toggle"),
        ),
        ("role:denial", any_key(&view.denials, keys)),
    ];
    let determining: Vec<String> = forbids
        .iter()
        .filter(|(_, hit)| *hit)
        .map(|(id, _)| (*id).to_owned())
        .collect();
    if !determining.is_empty() {
        return Outcome {
            allow: false,
            determining,
            failed_forbids: Vec::new(),
        };
    }
    let permits = [
        ("kind:enterprise-admin", kind == "ENTERPRISE_ADMIN"),
        (
            "kind:content-manager",
            kind == "ENTERPRISE_CONTENT_MANAGER" && in_group("content"),
        ),
        ("kind:manager", kind == "MANAGER" && in_practice),
        (
            "kind:staff:appointments",
            permission == "appointments:read" && staff && in_practice,
        ),
        (
            "kind:staff:lines",
            in_group("line-work")
                && staff
                && in_practice
                && resource
                    .line_id
                    .as_ref()
                    .is_some_and(|line| principal.lines.contains(line)),
        ),
        ("grant:all", any_key(&view.grants, keys)),
        ("grant:own", owned && any_key(&view.own_grants, keys)),
    ];
    let determining: Vec<String> = permits
        .iter()
        .filter(|(_, hit)| *hit)
        .map(|(id, _)| (*id).to_owned())
        .collect();
    Outcome {
        allow: !determining.is_empty(),
        determining,
        failed_forbids: Vec::new(),
    }
}
