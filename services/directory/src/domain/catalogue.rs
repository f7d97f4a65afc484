//! The built-in role templates (D16), as data, over the shared permission catalogue.

use super::roles::{FieldMaskRule, Grant, GrantScope, Permission, Role, RoleId};
use super::*;

pub use praxis_proto::catalogue::{CRUD_EXPORT, FEATURES, Feature, knows};

fn grants(feature: &str, actions: &[&str], scope: GrantScope) -> Vec<Grant> {
    actions
        .iter()
        .map(|action| Grant {
            permission: Permission::new(feature, action),
            scope,
        })
        .collect()
}

fn everything_but(excluded: &[(&str, &str)]) -> Vec<Grant> {
    FEATURES
        .iter()
        .flat_map(|f| f.actions.iter().map(move |a| (f.name, *a)))
        .filter(|pair| !excluded.contains(pair))
        .map(|(feature, action)| Grant {
            permission: Permission::new(feature, action),
            scope: GrantScope::All,
        })
        .collect()
}

fn mask(resource_type: &str, fields: &[&str]) -> FieldMaskRule {
    FieldMaskRule {
        resource_type: resource_type.to_owned(),
        fields: fields.iter().map(|f| (*f).to_owned()).collect(),
    }
}

const BUILT_IN: &[(&str, &str, &str)] = &[
    (
        "builtin-owner",
        "Owner/Admin",
        "Everything in the enterprise.",
    ),
    (
        "builtin-manager",
        "Manager",
        "Runs the practice: everything but enterprise settings.",
    ),
    (
        "builtin-provider",
        "Provider",
        "Clinicians: their own patients and notes, the practice's schedule.",
    ),
    (
        "builtin-front-desk",
        "Front Desk",
        "Scheduling and patient intake; no clinical notes or billing; SSN and insurance masked.",
    ),
    (
        "builtin-billing",
        "Billing",
        "Billing and charges; patients read-only; no clinical records.",
    ),
    ("builtin-inventory", "Inventory", "Stock and supplies."),
    (
        "builtin-call-center",
        "Call Center",
        "Conversations and booking; patient identifiers masked.",
    ),
];

pub fn is_built_in(id: &str) -> bool {
    BUILT_IN.iter().any(|(built_in, _, _)| *built_in == id) || permission_of(id).is_some()
}

/// The role of an explicit grant (A4): `permission:<feature:action>`, one catalogued permission.
pub const PERMISSION_ROLE_PREFIX: &str = "permission:";

fn permission_of(role_id: &str) -> Option<Permission> {
    let (feature, action) = role_id
        .strip_prefix(PERMISSION_ROLE_PREFIX)?
        .split_once(':')?;
    knows(feature, action).then(|| Permission::new(feature, action))
}

pub fn permission_role_id(permission: &Permission) -> String {
    format!(
        "{PERMISSION_ROLE_PREFIX}{}:{}",
        permission.feature, permission.action
    )
}

/// A grant's role: the one permission, over whatever the binding scopes it to.
fn permission_role(enterprise_id: &EnterpriseId, id: &str) -> Option<Role> {
    let permission = permission_of(id)?;
    Some(Role {
        id: RoleId(id.to_owned()),
        enterprise_id: enterprise_id.clone(),
        display_name: format!("Grant of {}:{}", permission.feature, permission.action),
        description: "An explicit grant on one resource (A4).".to_owned(),
        parent_role_id: None,
        grants: vec![Grant {
            permission,
            scope: GrantScope::All,
        }],
        denials: Vec::new(),
        field_masks: Vec::new(),
        built_in: true,
        version: 1,
        created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
    })
}

/// The read-only templates, as seen from `enterprise_id`.
pub fn built_in_roles(enterprise_id: &EnterpriseId) -> Vec<Role> {
    BUILT_IN
        .iter()
        .filter_map(|(id, _, _)| built_in_role(enterprise_id, id))
        .collect()
}

pub fn built_in_role(enterprise_id: &EnterpriseId, id: &str) -> Option<Role> {
    if id.starts_with(PERMISSION_ROLE_PREFIX) {
        return permission_role(enterprise_id, id);
    }
    let (id, name, description) = BUILT_IN.iter().find(|(built_in, _, _)| *built_in == id)?;
    let (grants, field_masks) = match *id {
        "builtin-owner" => (everything_but(&[]), vec![]),
        "builtin-manager" => (
            everything_but(&[("settings", "edit"), ("audit", "export")]),
            vec![],
        ),
        "builtin-provider" => (
            [
                grants("patients", &["read", "edit"], GrantScope::Own),
                grants(
                    "clinical_notes",
                    &["read", "create", "edit"],
                    GrantScope::Own,
                ),
                grants("appointments", &["read", "create", "edit"], GrantScope::All),
                grants("messages", &["read", "send"], GrantScope::Own),
                grants("conversations", &["read"], GrantScope::Own),
            ]
            .concat(),
            vec![],
        ),
        "builtin-front-desk" => (
            [
                grants(
                    "appointments",
                    &["read", "create", "edit", "delete"],
                    GrantScope::All,
                ),
                grants("patients", &["read", "create", "edit"], GrantScope::All),
                grants("conversations", &["read", "send"], GrantScope::All),
                grants("messages", &["read", "send"], GrantScope::All),
            ]
            .concat(),
            vec![mask("patient", &["ssn", "insurance"])],
        ),
        "builtin-billing" => (
            [
                grants(
                    "billing",
                    &["read", "create", "edit", "delete", "export", "approve"],
                    GrantScope::All,
                ),
                grants("charges", &["read", "create", "edit"], GrantScope::All),
                grants("patients", &["read"], GrantScope::All),
            ]
            .concat(),
            vec![mask("patient", &["ssn"])],
        ),
        "builtin-inventory" => (grants("inventory", CRUD_EXPORT, GrantScope::All), vec![]),
        "builtin-call-center" => (
            [
                grants(
                    "conversations",
                    &["read", "create", "send"],
                    GrantScope::All,
                ),
                grants("messages", &["read", "send"], GrantScope::All),
                grants("appointments", &["read", "create"], GrantScope::All),
                grants("patients", &["read"], GrantScope::All),
            ]
            .concat(),
            vec![mask("patient", &["ssn", "insurance", "date_of_birth"])],
        ),
        _ => return None,
    };
    Some(Role {
        id: RoleId((*id).to_owned()),
        enterprise_id: enterprise_id.clone(),
        display_name: (*name).to_owned(),
        description: (*description).to_owned(),
        parent_role_id: None,
        grants,
        denials: Vec::new(),
        field_masks,
        built_in: true,
        version: 1,
        created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d16_templates_use_only_catalogued_permissions() {
        for role in built_in_roles(&EnterpriseId("e".into())) {
            assert!(!role.grants.is_empty(), "{}", role.display_name);
            for grant in &role.grants {
                assert!(
                    knows(&grant.permission.feature, &grant.permission.action),
                    "{}: {:?}",
                    role.display_name,
                    grant
                );
            }
        }
    }

    #[test]
    fn d16_front_desk_schedules_but_reads_no_clinical_notes_or_billing() {
        let front_desk =
            built_in_role(&EnterpriseId("e".into()), "builtin-front-desk").expect("template");
        let has = |f: &str, a: &str| {
            front_desk
                .grants
                .iter()
                .any(|g| g.permission == Permission::new(f, a))
        };
        assert!(has("appointments", "create"));
        assert!(!has("clinical_notes", "read"));
        assert!(!has("billing", "read"));
        assert_eq!(front_desk.field_masks[0].fields, ["ssn", "insurance"]);
    }
}
