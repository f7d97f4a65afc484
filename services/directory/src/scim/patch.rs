//! SCIM PATCH (RFC 7644 §3.5.2) on a resource's JSON: `add`, `replace` and `remove`, with or
//! without a path, including the shapes Okta and Entra ID send (capitalised ops, `"False"` as
//! a string, `emails[type eq "work"].value`, the enterprise extension's `manager` as a bare id,
//! `members[value eq "…"]`).

use super::filter::{Filter, Op, parse};
use serde_json::{Map, Value};

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const CORE_GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    /// RFC 7644 §3.12 `scimType`.
    pub scim_type: &'static str,
    pub detail: String,
}

fn error(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        detail: detail.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// Where a path points: an object (the resource or an extension), the attribute in it, an
/// optional value filter on that (multi-valued) attribute, and a sub-attribute of its items.
struct Target {
    extension: Option<String>,
    attribute: Vec<String>,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn split_path(path: &str) -> Result<Target, PatchError> {
    let path = path.trim();
    let lower = path.to_ascii_lowercase();
    let (extension, rest) =
        if lower.starts_with(&format!("{}:", ENTERPRISE_USER.to_ascii_lowercase())) {
            (
                Some(ENTERPRISE_USER.to_owned()),
                &path[ENTERPRISE_USER.len() + 1..],
            )
        } else if lower.starts_with(&format!("{}:", CORE_USER.to_ascii_lowercase())) {
            (None, &path[CORE_USER.len() + 1..])
        } else if lower.starts_with(&format!("{}:", CORE_GROUP.to_ascii_lowercase())) {
            (None, &path[CORE_GROUP.len() + 1..])
        } else if lower == ENTERPRISE_USER.to_ascii_lowercase() {
            (Some(ENTERPRISE_USER.to_owned()), "")
        } else {
            (None, path)
        };
    let (head, filter, sub) = match rest.find('[') {
        Some(open) => {
            let close = rest
                .rfind(']')
                .filter(|&close| close > open)
                .ok_or_else(|| error("invalidPath", format!("unbalanced [ in {path}")))?;
            let filter = parse(&rest[open + 1..close])
                .map_err(|e| error("invalidFilter", format!("{path}: {e}")))?;
            let after = rest[close + 1..].trim_start_matches('.');
            (
                &rest[..open],
                Some(filter),
                (!after.is_empty()).then(|| after.to_owned()),
            )
        }
        None => (rest, None, None),
    };
    let attribute: Vec<String> = head
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if attribute.is_empty() && extension.is_none() {
        return Err(error("invalidPath", format!("no attribute in {path:?}")));
    }
    Ok(Target {
        extension,
        attribute,
        filter,
        sub,
    })
}

/// The key in `object` that names `name`, whatever its case.
fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

/// Entra ID sends booleans as "True"/"False"; the manager as a bare id.
fn normalized(attribute: &str, value: Value) -> Value {
    match (attribute.to_ascii_lowercase().as_str(), value) {
        ("active" | "primary", Value::String(text)) if text.eq_ignore_ascii_case("true") => {
            Value::Bool(true)
        }
        ("active" | "primary", Value::String(text)) if text.eq_ignore_ascii_case("false") => {
            Value::Bool(false)
        }
        ("manager", Value::String(id)) => serde_json::json!({"value": id}),
        (_, value) => value,
    }
}

fn container<'a>(
    resource: &'a mut Value,
    extension: &Option<String>,
    create: bool,
) -> Result<&'a mut Map<String, Value>, PatchError> {
    let root = resource
        .as_object_mut()
        .ok_or_else(|| error("invalidValue", "the resource is not an object"))?;
    let Some(urn) = extension else {
        return Ok(root);
    };
    let key = key_of(root, urn);
    if !root.contains_key(&key) {
        if !create {
            return Err(error("noTarget", format!("{urn} is not set")));
        }
        root.insert(key.clone(), Value::Object(Map::new()));
        add_schema(root, urn);
    }
    root.get_mut(&key)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| error("invalidValue", format!("{urn} is not an object")))
}

fn add_schema(root: &mut Map<String, Value>, urn: &str) {
    if let Some(Value::Array(schemas)) = root.get_mut("schemas")
        && !schemas.iter().any(|s| s.as_str() == Some(urn))
    {
        schemas.push(Value::String(urn.to_owned()));
    }
}

/// The object holding the last attribute of `path` (made on the way for add and replace).
fn parent<'a>(
    mut object: &'a mut Map<String, Value>,
    path: &[String],
    create: bool,
) -> Result<&'a mut Map<String, Value>, PatchError> {
    for segment in &path[..path.len().saturating_sub(1)] {
        let key = key_of(object, segment);
        if !object.contains_key(&key) {
            if !create {
                return Err(error("noTarget", format!("{segment} is not set")));
            }
            object.insert(key.clone(), Value::Object(Map::new()));
        }
        object = object
            .get_mut(&key)
            .and_then(Value::as_object_mut)
            .ok_or_else(|| error("invalidPath", format!("{segment} has no sub-attributes")))?;
    }
    Ok(object)
}

fn merge_add(existing: Option<Value>, value: Value) -> Value {
    match (existing, value) {
        (Some(Value::Array(mut items)), Value::Array(new)) => {
            for item in new {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            Value::Array(items)
        }
        (Some(Value::Array(mut items)), single) => {
            if !items.contains(&single) {
                items.push(single);
            }
            Value::Array(items)
        }
        (Some(Value::Object(mut fields)), Value::Object(new)) => {
            for (key, value) in new {
                let key = key_of(&fields, &key);
                fields.insert(key, value);
            }
            Value::Object(fields)
        }
        (_, value) => value,
    }
}

/// An item a filter like `type eq "work"` would select, made for `add`.
fn seed(filter: &Filter) -> Map<String, Value> {
    let mut item = Map::new();
    if let Filter::Compare {
        path,
        op: Op::Eq,
        value,
    } = filter
    {
        item.insert(path.clone(), value.clone());
    }
    item
}

fn apply_one(
    resource: &mut Value,
    kind: Kind,
    path: Option<&str>,
    value: Option<Value>,
) -> Result<(), PatchError> {
    let Some(path) = path.filter(|p| !p.trim().is_empty()) else {
        // No path: the value is an object of attributes (or of paths, as Okta sends).
        if kind == Kind::Remove {
            return Err(error("noTarget", "remove needs a path"));
        }
        let Some(Value::Object(fields)) = value else {
            return Err(error(
                "invalidValue",
                "without a path, the value is an object",
            ));
        };
        for (key, value) in fields {
            apply_one(resource, kind, Some(&key), Some(value))?;
        }
        return Ok(());
    };
    let target = split_path(path)?;
    if kind == Kind::Remove
        && target.attribute.is_empty()
        && let (Some(urn), Some(root)) = (&target.extension, resource.as_object_mut())
    {
        // The whole extension goes, and its schema with it.
        let key = key_of(root, urn);
        root.remove(&key);
        if let Some(Value::Array(schemas)) = root.get_mut("schemas") {
            schemas.retain(|schema| schema.as_str().is_none_or(|s| !s.eq_ignore_ascii_case(urn)));
        }
        return Ok(());
    }
    let create = kind != Kind::Remove;
    // Removing an attribute that is not there leaves nothing to do; only a value filter that
    // matches nothing is an error (noTarget).
    let absent_is_fine = kind == Kind::Remove && target.filter.is_none();
    let object = match container(resource, &target.extension, create) {
        Err(error) if absent_is_fine && error.scim_type == "noTarget" => return Ok(()),
        other => other?,
    };
    if target.attribute.is_empty() {
        // The whole extension object.
        return match (kind, value) {
            (Kind::Remove, _) => {
                object.clear();
                Ok(())
            }
            (_, Some(Value::Object(fields))) => {
                for (key, value) in fields {
                    let key = key_of(object, &key);
                    let value = normalized(&key, value);
                    object.insert(key, value);
                }
                Ok(())
            }
            _ => Err(error("invalidValue", "an extension is set with an object")),
        };
    }
    let holder = match parent(object, &target.attribute, create) {
        Err(error) if absent_is_fine && error.scim_type == "noTarget" => return Ok(()),
        other => other?,
    };
    let last = target
        .attribute
        .last()
        .map(String::as_str)
        .unwrap_or_default();
    let key = key_of(holder, last);
    match (target.filter, kind) {
        (None, Kind::Remove) => {
            holder.remove(&key);
            Ok(())
        }
        (None, Kind::Replace) => {
            let value = value.ok_or_else(|| error("invalidValue", "replace needs a value"))?;
            holder.insert(key.clone(), normalized(&key, value));
            Ok(())
        }
        (None, Kind::Add) => {
            let value = value.ok_or_else(|| error("invalidValue", "add needs a value"))?;
            let merged = merge_add(holder.remove(&key), normalized(&key, value));
            holder.insert(key, merged);
            Ok(())
        }
        (Some(filter), kind) => {
            let items = match holder.get_mut(&key) {
                Some(Value::Array(items)) => items,
                Some(_) => return Err(error("invalidPath", format!("{last} is not multi-valued"))),
                None if kind == Kind::Add => {
                    holder.insert(key.clone(), Value::Array(Vec::new()));
                    match holder.get_mut(&key) {
                        Some(Value::Array(items)) => items,
                        _ => return Err(error("invalidPath", last.to_owned())),
                    }
                }
                None => return Err(error("noTarget", format!("{last} is not set"))),
            };
            let chosen: Vec<usize> = (0..items.len())
                .filter(|&i| filter.matches(&items[i]))
                .collect();
            match (kind, target.sub) {
                (Kind::Remove, None) => {
                    if chosen.is_empty() {
                        return Err(error("noTarget", format!("nothing in {last} matches")));
                    }
                    let mut index = 0;
                    items.retain(|_| {
                        let keep = !chosen.contains(&index);
                        index += 1;
                        keep
                    });
                    Ok(())
                }
                (Kind::Remove, Some(sub)) => {
                    for i in chosen {
                        if let Some(item) = items[i].as_object_mut() {
                            let sub_key = key_of(item, &sub);
                            item.remove(&sub_key);
                        }
                    }
                    Ok(())
                }
                (_, sub) => {
                    let value = value.ok_or_else(|| error("invalidValue", "a value is needed"))?;
                    if chosen.is_empty() {
                        if kind == Kind::Replace && sub.is_none() {
                            return Err(error("noTarget", format!("nothing in {last} matches")));
                        }
                        let mut item = seed(&filter);
                        match &sub {
                            Some(sub) => {
                                item.insert(sub.clone(), normalized(sub, value));
                            }
                            None => {
                                if let Value::Object(fields) = value {
                                    item.extend(fields);
                                }
                            }
                        }
                        items.push(Value::Object(item));
                        return Ok(());
                    }
                    for i in chosen {
                        match &sub {
                            Some(sub) => {
                                if let Some(item) = items[i].as_object_mut() {
                                    let sub_key = key_of(item, sub);
                                    item.insert(sub_key, normalized(sub, value.clone()));
                                }
                            }
                            None => items[i] = value.clone(),
                        }
                    }
                    Ok(())
                }
            }
        }
    }
}

/// Applies a PatchOp request body's `Operations` to `resource`, all or nothing.
pub fn apply(resource: &Value, body: &Value) -> Result<Value, PatchError> {
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| {
            schemas
                .iter()
                .any(|s| s.as_str() == Some("urn:ietf:params:scim:api:messages:2.0:PatchOp"))
        });
    if !schemas_ok {
        return Err(error(
            "invalidSyntax",
            "schemas must name the PatchOp message",
        ));
    }
    let operations = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| error("invalidSyntax", "Operations: one or more"))?;
    let mut patched = resource.clone();
    for operation in operations {
        let kind = match operation
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => Kind::Add,
            Some("replace") => Kind::Replace,
            Some("remove") => Kind::Remove,
            other => return Err(error("invalidSyntax", format!("op {other:?}"))),
        };
        let path = operation.get("path").and_then(Value::as_str);
        apply_one(&mut patched, kind, path, operation.get("value").cloned())?;
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [CORE_USER],
            "userName": "ada@clinic.example",
            "active": true,
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@clinic.example", "type": "work", "primary": true}]
        })
    }

    fn patch(operations: Value) -> Result<Value, PatchError> {
        apply(
            &user(),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations}),
        )
    }

    #[test]
    fn okta_deactivates_with_a_value_object() {
        let patched =
            patch(json!([{"op": "replace", "value": {"active": false}}])).unwrap_or_default();
        assert_eq!(patched["active"], json!(false));
    }

    #[test]
    fn entra_id_shapes() {
        let patched = patch(json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@clinic.example"},
            {"op": "Add", "path": "name.givenName", "value": "Augusta"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "u-9"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Cardiology"}
        ]))
        .unwrap_or_default();
        assert_eq!(patched["active"], json!(false));
        assert_eq!(patched["emails"][0]["value"], json!("ada.l@clinic.example"));
        assert_eq!(patched["name"]["givenName"], json!("Augusta"));
        assert_eq!(patched[ENTERPRISE_USER]["manager"], json!({"value": "u-9"}));
        assert_eq!(patched[ENTERPRISE_USER]["department"], json!("Cardiology"));
        assert!(
            patched["schemas"]
                .as_array()
                .is_some_and(|s| s.contains(&json!(ENTERPRISE_USER)))
        );
    }

    #[test]
    fn group_members_added_and_removed() {
        let group = json!({"schemas": [CORE_GROUP], "displayName": "Nurses", "members": [{"value": "u-1"}]});
        let body = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let added = apply(&group, &body(json!([{"op": "add", "path": "members", "value": [{"value": "u-2"}, {"value": "u-1"}]}]))).unwrap_or_default();
        assert_eq!(
            added["members"],
            json!([{"value": "u-1"}, {"value": "u-2"}])
        );
        let removed = apply(
            &added,
            &body(json!([{"op": "remove", "path": "members[value eq \"u-1\"]"}])),
        )
        .unwrap_or_default();
        assert_eq!(removed["members"], json!([{"value": "u-2"}]));
        let replaced = apply(
            &added,
            &body(json!([{"op": "replace", "path": "members", "value": [{"value": "u-3"}]}])),
        )
        .unwrap_or_default();
        assert_eq!(replaced["members"], json!([{"value": "u-3"}]));
    }

    #[test]
    fn bad_patches_change_nothing_and_say_why() {
        for (operations, scim_type) in [
            (
                json!([{"op": "jump", "path": "active", "value": true}]),
                "invalidSyntax",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {}}]),
                "noTarget",
            ),
            (
                json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
                "invalidPath",
            ),
            (json!([]), "invalidSyntax"),
        ] {
            assert_eq!(
                patch(operations.clone()).map_err(|e| e.scim_type),
                Err(scim_type),
                "{operations}"
            );
        }
        assert!(
            apply(
                &user(),
                &json!({"Operations": [{"op": "remove", "path": "active"}]})
            )
            .is_err()
        );
    }
}
