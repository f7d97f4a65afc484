//! The Praxis Cedar model (A7): the schema, one action per catalogued permission with the groups
//! policies use (`phi`, `content`, `toggle`, `line-work`, and one per feature), and the generic
//! policies shipped in `policies/base.cedar`. Built once per process.

use cedar_policy::{Entity, EntityId, EntityTypeName, EntityUid, PolicyId, PolicySet, Schema};
use praxis_proto::catalogue::FEATURES;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

pub const BASE_POLICIES: &str = include_str!("../policies/base.cedar");

/// Features content managers work on (D3); their `toggle` is forbidden separately.
const CONTENT_FEATURES: [&str; 3] = ["triggers", "flows", "campaigns"];

/// What staff reach on their own lines (A2).
fn line_work(feature: &str, action: &str) -> bool {
    feature == "conversations" || (feature == "messages" && matches!(action, "read" | "send"))
}

const SCHEMA_TYPES: &str = r#"  // A user as decisions see it: directory data plus the keys of the grants, own-grants and
  // denials of the bindings active at the request's time.
  entity User = {
    "kind": String,
    "enterprise": String,
    "active": Bool,
    "practices": Set<String>,
    "lines": Set<String>,
    "roles": Set<String>,
    "grants": Set<String>,
    "own_grants": Set<String>,
    "denials": Set<String>,
  };

  // Whatever the downstream service protects; free attributes are tags.
  entity Resource = {
    "type": String,
    "enterprise": String,
    "practice"?: String,
    "location"?: String,
    "line"?: String,
    "owner"?: User,
  } tags String;

  type Context = {
    // Unix seconds.
    "time": Long,
    "ip"?: ipaddr,
    // Minor units (cents).
    "amount"?: Long,
    // `feature:action@scope` keys a grant would need to cover this resource.
    "scope_keys": Set<String>,
  };
"#;

pub struct Model {
    pub schema: Schema,
    pub schema_text: String,
    pub base: PolicySet,
    /// By permission (`feature:action`): the action entity, its uid, and its groups' uids.
    actions: HashMap<String, Action>,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("schema: {0}")]
    Schema(String),
    #[error("base policies: {0}")]
    Policies(String),
    #[error("action entity: {0}")]
    Action(String),
}

pub const NAMESPACE: &str = "Praxis";

struct Action {
    entity: Arc<Entity>,
    uid: EntityUid,
    groups: Vec<EntityUid>,
    group_names: Vec<String>,
}

/// `Praxis::<kind>::"<id>"`.
pub fn uid(kind: &str, id: &str) -> Result<EntityUid, String> {
    let type_name =
        EntityTypeName::from_str(&format!("{NAMESPACE}::{kind}")).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(
        type_name,
        EntityId::new(id),
    ))
}

pub fn action_uid(name: &str) -> Result<EntityUid, ModelError> {
    uid("Action", name).map_err(ModelError::Action)
}

/// The groups an action belongs to.
fn groups(feature: &str, action: &str, phi: bool) -> Vec<String> {
    let mut groups = vec![feature.to_owned()];
    if phi {
        groups.push("phi".to_owned());
    }
    if CONTENT_FEATURES.contains(&feature) && action != "toggle" {
        groups.push("content".to_owned());
    }
    if action == "toggle" {
        groups.push("toggle".to_owned());
    }
    if line_work(feature, action) {
        groups.push("line-work".to_owned());
    }
    groups
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("{name:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn schema_text() -> String {
    let mut text = format!("namespace {NAMESPACE} {{\n{SCHEMA_TYPES}\n");
    text.push_str("  // Action groups.\n");
    let mut group_names: Vec<String> = ["phi", "content", "toggle", "line-work"]
        .iter()
        .map(|g| (*g).to_owned())
        .collect();
    group_names.extend(FEATURES.iter().map(|f| f.name.to_owned()));
    for group in &group_names {
        text.push_str(&format!("  action {group:?};\n"));
    }
    text.push_str("\n  // One action per catalogued permission.\n");
    for feature in FEATURES {
        for action in feature.actions {
            let name = format!("{}:{action}", feature.name);
            let parents = groups(feature.name, action, feature.phi);
            text.push_str(&format!(
                "  action {name:?} in [{}]\n    appliesTo {{ principal: [User], resource: [Resource], context: Context }};\n",
                quoted(&parents)
            ));
        }
    }
    text.push_str("}\n");
    text
}

impl Model {
    pub fn load() -> Result<Self, ModelError> {
        let schema_text = schema_text();
        let (schema, _warnings) = Schema::from_cedarschema_str(&schema_text)
            .map_err(|e| ModelError::Schema(e.to_string()))?;
        let parsed =
            PolicySet::from_str(BASE_POLICIES).map_err(|e| ModelError::Policies(e.to_string()))?;
        // Cedar numbers parsed policies; the `@id` annotations name them in reasons and traces.
        let base =
            PolicySet::from_policies(parsed.policies().map(
                |policy| match policy.annotation("id") {
                    Some(id) => policy.new_id(PolicyId::new(id)),
                    None => policy.clone(),
                },
            ))
            .map_err(|e| ModelError::Policies(e.to_string()))?;
        let validator = cedar_policy::Validator::new(schema.clone());
        let result = validator.validate(&base, cedar_policy::ValidationMode::Strict);
        if !result.validation_passed() {
            let problems: Vec<String> = result
                .validation_errors()
                .map(ToString::to_string)
                .collect();
            return Err(ModelError::Policies(problems.join("; ")));
        }
        let mut actions = HashMap::new();
        for feature in FEATURES {
            for action in feature.actions {
                let name = format!("{}:{action}", feature.name);
                let group_names = groups(feature.name, action, feature.phi);
                let parents: Vec<EntityUid> = group_names
                    .iter()
                    .map(|group| action_uid(group))
                    .collect::<Result<_, _>>()?;
                let uid = action_uid(&name)?;
                let entity = Entity::new_no_attrs(uid.clone(), parents.iter().cloned().collect());
                actions.insert(
                    name,
                    Action {
                        entity: Arc::new(entity),
                        uid,
                        groups: parents,
                        group_names,
                    },
                );
            }
        }
        Ok(Self {
            schema,
            schema_text,
            base,
            actions,
        })
    }

    /// The action entity of a catalogued permission.
    pub fn action(&self, permission: &str) -> Option<&Arc<Entity>> {
        self.actions.get(permission).map(|action| &action.entity)
    }

    /// The names of the groups a catalogued permission's action belongs to.
    pub fn action_group_names(&self, permission: &str) -> Option<&[String]> {
        self.actions
            .get(permission)
            .map(|action| action.group_names.as_slice())
    }

    /// The action uid of a catalogued permission and the uids of its groups.
    pub fn action_and_groups(&self, permission: &str) -> Option<(&EntityUid, &[EntityUid])> {
        self.actions
            .get(permission)
            .map(|action| (&action.uid, action.groups.as_slice()))
    }

    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a7_the_schema_and_the_base_policies_load_and_validate() {
        let model = Model::load().expect("model");
        assert!(model.action("appointments:read").is_some());
        assert!(model.action("appointments:fly").is_none());
        assert!(model.schema_text.contains("action \"charges:approve\""));
        assert_eq!(model.base.policies().count(), 12);
    }

    #[test]
    fn d3_action_groups_follow_the_catalogue() {
        assert!(groups("patients", "read", true).contains(&"phi".to_owned()));
        assert!(groups("campaigns", "edit", false).contains(&"content".to_owned()));
        assert!(!groups("campaigns", "toggle", false).contains(&"content".to_owned()));
        assert!(groups("triggers", "toggle", false).contains(&"toggle".to_owned()));
        assert!(groups("messages", "send", true).contains(&"line-work".to_owned()));
        assert!(!groups("messages", "delete", true).contains(&"line-work".to_owned()));
    }
}
