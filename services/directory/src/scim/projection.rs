//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5): which attributes of a resource
//! an answer carries. `id`, `schemas` and `meta` are always returned.

use super::patch::{CORE_GROUP, CORE_USER};
use serde_json::{Map, Value};

const ALWAYS: [&str; 3] = ["id", "schemas", "meta"];

/// A requested attribute: the extension object it lives in (if any), its name, and a
/// sub-attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    extension: Option<String>,
    name: String,
    sub: Option<String>,
}

fn parse(list: &str, body: &Value) -> Vec<Wanted> {
    list.split(',')
        .map(str::trim)
        .filter(|path| !path.is_empty())
        .map(|path| {
            let lower = path.to_ascii_lowercase();
            let mut rest = path;
            let mut extension = None;
            for core in [CORE_USER, CORE_GROUP] {
                if lower.starts_with(&format!("{}:", core.to_ascii_lowercase())) {
                    rest = &path[core.len() + 1..];
                }
            }
            if let Some(fields) = body.as_object() {
                for key in fields.keys().filter(|key| key.starts_with("urn:")) {
                    let key_lower = key.to_ascii_lowercase();
                    if lower == key_lower {
                        extension = Some(key.clone());
                        rest = "";
                    } else if lower.starts_with(&format!("{key_lower}:")) {
                        extension = Some(key.clone());
                        rest = &path[key.len() + 1..];
                    }
                }
            }
            let (name, sub) = match rest.split_once('.') {
                Some((name, sub)) => (name.to_owned(), Some(sub.to_owned())),
                None => (rest.to_owned(), None),
            };
            Wanted {
                extension,
                name,
                sub,
            }
        })
        .collect()
}

fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    object
        .keys()
        .find(|key| key.eq_ignore_ascii_case(name))
        .cloned()
}

/// Keeps only `subs` of a complex value (each item of a multi-valued one).
fn only_subs(value: &Value, subs: &[&str]) -> Value {
    let keep = |item: &Value| match item.as_object() {
        Some(fields) => Value::Object(
            fields
                .iter()
                .filter(|(key, _)| subs.iter().any(|sub| key.eq_ignore_ascii_case(sub)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => item.clone(),
    };
    match value {
        Value::Array(items) => Value::Array(items.iter().map(keep).collect()),
        other => keep(other),
    }
}

fn include(object: &Map<String, Value>, wanted: &[&Wanted]) -> Map<String, Value> {
    let mut kept = Map::new();
    for want in wanted {
        let Some(key) = key_of(object, &want.name) else {
            continue;
        };
        let subs: Vec<&str> = wanted
            .iter()
            .filter(|w| w.name.eq_ignore_ascii_case(&want.name))
            .filter_map(|w| w.sub.as_deref())
            .collect();
        let whole = wanted
            .iter()
            .any(|w| w.name.eq_ignore_ascii_case(&want.name) && w.sub.is_none());
        let value = if whole || subs.is_empty() {
            object[&key].clone()
        } else {
            only_subs(&object[&key], &subs)
        };
        kept.insert(key, value);
    }
    kept
}

fn exclude(object: &mut Map<String, Value>, wanted: &[&Wanted]) {
    for want in wanted {
        let Some(key) = key_of(object, &want.name) else {
            continue;
        };
        if ALWAYS.iter().any(|always| key.eq_ignore_ascii_case(always)) {
            continue;
        }
        match &want.sub {
            None => {
                object.remove(&key);
            }
            Some(sub) => {
                let strip = |item: &mut Value| {
                    if let Some(fields) = item.as_object_mut()
                        && let Some(sub_key) = key_of(fields, sub)
                    {
                        fields.remove(&sub_key);
                    }
                };
                match object.get_mut(&key) {
                    Some(Value::Array(items)) => items.iter_mut().for_each(strip),
                    Some(value) => strip(value),
                    None => {}
                }
            }
        }
    }
}

/// The resource as the request asked to see it.
pub fn project(body: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(fields) = body else {
        return body;
    };
    let attributes = attributes.filter(|list| !list.trim().is_empty());
    let excluded = excluded.filter(|list| !list.trim().is_empty());
    let resource = Value::Object(fields);
    if let Some(list) = attributes {
        let wanted = parse(list, &resource);
        let Value::Object(fields) = resource else {
            return Value::Null;
        };
        let core: Vec<&Wanted> = wanted.iter().filter(|w| w.extension.is_none()).collect();
        let mut kept = include(&fields, &core);
        for always in ALWAYS {
            if let Some(key) = key_of(&fields, always) {
                kept.insert(key.clone(), fields[&key].clone());
            }
        }
        for (key, value) in fields.iter().filter(|(key, _)| key.starts_with("urn:")) {
            let inside: Vec<&Wanted> = wanted
                .iter()
                .filter(|w| w.extension.as_deref() == Some(key.as_str()))
                .collect();
            if inside.is_empty() {
                continue;
            }
            // The whole extension was asked for.
            if inside.iter().any(|w| w.name.is_empty()) {
                kept.insert(key.clone(), value.clone());
            } else if let Some(object) = value.as_object() {
                kept.insert(key.clone(), Value::Object(include(object, &inside)));
            }
        }
        return Value::Object(kept);
    }
    if let Some(list) = excluded {
        let wanted = parse(list, &resource);
        let Value::Object(mut fields) = resource else {
            return Value::Null;
        };
        let core: Vec<&Wanted> = wanted.iter().filter(|w| w.extension.is_none()).collect();
        exclude(&mut fields, &core);
        let extensions: Vec<String> = fields
            .keys()
            .filter(|key| key.starts_with("urn:"))
            .cloned()
            .collect();
        for key in extensions {
            let inside: Vec<&Wanted> = wanted
                .iter()
                .filter(|w| w.extension.as_deref() == Some(key.as_str()))
                .collect();
            if inside.iter().any(|w| w.name.is_empty()) {
                fields.remove(&key);
            } else if let Some(Value::Object(object)) = fields.get_mut(&key) {
                exclude(object, &inside);
            }
        }
        return Value::Object(fields);
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn ada() -> Value {
        json!({
            "schemas": [CORE_USER, ENTERPRISE],
            "id": "u-1",
            "userName": "ada@clinic.example",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "emails": [{"value": "ada@clinic.example", "type": "work"}],
            ENTERPRISE: {"employeeNumber": "701", "department": "Cardiology"},
            "meta": {"resourceType": "User"}
        })
    }

    #[test]
    fn attributes_keep_what_was_asked_and_what_is_always_returned() {
        let shown = project(ada(), Some("userName,name.givenName,emails.value"), None);
        assert_eq!(shown["userName"], "ada@clinic.example");
        assert_eq!(shown["name"], json!({"givenName": "Ada"}));
        assert_eq!(shown["emails"], json!([{"value": "ada@clinic.example"}]));
        assert_eq!(shown["id"], "u-1");
        assert!(shown.get("meta").is_some() && shown.get(ENTERPRISE).is_none());
        let shown = project(ada(), Some(&format!("{ENTERPRISE}:department")), None);
        assert_eq!(shown[ENTERPRISE], json!({"department": "Cardiology"}));
        assert!(shown.get("userName").is_none());
    }

    #[test]
    fn excluded_attributes_go_but_id_stays() {
        let shown = project(
            ada(),
            None,
            Some(&format!("name,id,emails.type,{ENTERPRISE}:employeeNumber")),
        );
        assert!(shown.get("name").is_none());
        assert_eq!(shown["id"], "u-1");
        assert_eq!(shown["emails"], json!([{"value": "ada@clinic.example"}]));
        assert_eq!(shown[ENTERPRISE], json!({"department": "Cardiology"}));
        let shown = project(ada(), None, Some(ENTERPRISE));
        assert!(shown.get(ENTERPRISE).is_none());
    }
}
