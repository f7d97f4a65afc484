//! What the discovery endpoints say (RFC 7643 §5–7): what this provider supports, its two
//! resource types, and the attributes of the schemas it keeps.

use super::patch::{CORE_GROUP, CORE_USER, ENTERPRISE_USER};
use serde_json::{Value, json};

pub fn service_provider_config(base: &str, max_results: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://www.rfc-editor.org/rfc/rfc7644",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "An enterprise's SCIM token from DirectorySyncService.CreateScimToken",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig")
        }
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "People of the enterprise",
            "schema": CORE_USER,
            "schemaExtensions": [{"schema": ENTERPRISE_USER, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
        }),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "Groups of people",
            "schema": CORE_GROUP,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")}
        }),
    ]
}

fn attribute(name: &str, kind: &str, multi: bool, required: bool, uniqueness: &str) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": multi,
        "description": name,
        "required": required,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": uniqueness,
    })
}

fn complex(name: &str, multi: bool, sub: Vec<Value>) -> Value {
    let mut value = attribute(name, "complex", multi, false, "none");
    if let Some(fields) = value.as_object_mut() {
        fields.insert("subAttributes".to_owned(), Value::Array(sub));
    }
    value
}

fn text(name: &str) -> Value {
    attribute(name, "string", false, false, "none")
}

fn schema(base: &str, id: &str, name: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": id,
        "name": name,
        "description": name,
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")}
    })
}

fn multi_value() -> Vec<Value> {
    vec![
        text("value"),
        text("display"),
        text("type"),
        attribute("primary", "boolean", false, false, "none"),
    ]
}

pub fn schemas(base: &str) -> Vec<Value> {
    let user = vec![
        attribute("userName", "string", false, true, "server"),
        complex(
            "name",
            false,
            vec![
                text("formatted"),
                text("familyName"),
                text("givenName"),
                text("middleName"),
                text("honorificPrefix"),
                text("honorificSuffix"),
            ],
        ),
        text("displayName"),
        text("nickName"),
        text("title"),
        text("userType"),
        text("preferredLanguage"),
        text("locale"),
        text("timezone"),
        attribute("active", "boolean", false, false, "none"),
        complex("emails", true, multi_value()),
        complex("phoneNumbers", true, multi_value()),
        text("externalId"),
    ];
    let group = vec![
        attribute("displayName", "string", false, true, "server"),
        complex(
            "members",
            true,
            vec![text("value"), text("display"), text("type"), text("$ref")],
        ),
        text("externalId"),
    ];
    let enterprise = vec![
        text("employeeNumber"),
        text("costCenter"),
        text("organization"),
        text("division"),
        text("department"),
        complex(
            "manager",
            false,
            vec![text("value"), text("$ref"), text("displayName")],
        ),
    ];
    vec![
        schema(base, CORE_USER, "User", user),
        schema(base, CORE_GROUP, "Group", group),
        schema(base, ENTERPRISE_USER, "EnterpriseUser", enterprise),
    ]
}
