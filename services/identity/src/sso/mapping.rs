//! From what an identity provider says about a person to what directory should make of them:
//! the mapped attributes, then the group rules (I6).

use super::connections::{Connection, Mapping, Rule};
use praxis_proto::directory::v1 as directory;
use serde_json::Value;

/// A person as the identity provider vouched for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalUser {
    /// The provider's stable id (OIDC `sub`, SAML NameID).
    pub subject: String,
    pub email: String,
    /// `Some(false)` when the provider says the email is not verified.
    pub email_verified: Option<bool>,
    pub given_name: String,
    pub family_name: String,
    pub phone: String,
    pub groups: Vec<String>,
}

fn name_or<'a>(configured: &'a str, default: &'a str) -> &'a str {
    if configured.trim().is_empty() {
        default
    } else {
        configured.trim()
    }
}

/// Text of a claim: a string, or the first string of a list.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .find_map(|v| v.as_str())
            .unwrap_or_default()
            .trim()
            .to_owned(),
        _ => String::new(),
    }
}

/// Groups: a list of strings, or one string (some providers send a single group that way).
fn list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_owned()],
        _ => Vec::new(),
    }
}

impl ExternalUser {
    /// Reads the mapped claims of a verified id_token (or any claim set shaped like one).
    pub fn from_claims(claims: &serde_json::Map<String, Value>, mapping: &Mapping) -> Self {
        let get = |configured: &str, default: &str| claims.get(name_or(configured, default));
        ExternalUser {
            subject: text(claims.get("sub")),
            email: text(get(&mapping.email, "email")).to_ascii_lowercase(),
            email_verified: claims.get("email_verified").and_then(|v| match v {
                Value::Bool(b) => Some(*b),
                Value::String(s) => Some(s == "true"),
                _ => None,
            }),
            given_name: text(get(&mapping.given_name, "given_name")),
            family_name: text(get(&mapping.family_name, "family_name")),
            phone: text(get(&mapping.phone, "phone_number")),
            groups: list(get(&mapping.groups, "groups")),
        }
    }

    /// Reads SAML attributes (name → values). The NameID stands in for a missing email.
    pub fn from_attributes(
        name_id: &str,
        attributes: &[(String, Vec<String>)],
        mapping: &Mapping,
    ) -> Self {
        let values = |names: &[&str]| -> Vec<String> {
            attributes
                .iter()
                .filter(|(name, _)| {
                    names.iter().any(|n| {
                        name.eq_ignore_ascii_case(n)
                            || name
                                .rsplit([':', '/'])
                                .next()
                                .is_some_and(|tail| tail.eq_ignore_ascii_case(n))
                    })
                })
                .flat_map(|(_, values)| values.iter().map(|v| v.trim().to_owned()))
                .filter(|v| !v.is_empty())
                .collect()
        };
        let first = |configured: &str, defaults: &[&str]| -> String {
            let names: Vec<&str> = if configured.trim().is_empty() {
                defaults.to_vec()
            } else {
                vec![configured.trim()]
            };
            values(&names).into_iter().next().unwrap_or_default()
        };
        let mut email = first(&mapping.email, &["email", "mail", "emailaddress"]);
        if email.is_empty() && name_id.contains('@') {
            email = name_id.trim().to_owned();
        }
        let groups = if mapping.groups.trim().is_empty() {
            values(&["groups", "group", "memberOf"])
        } else {
            values(&[mapping.groups.trim()])
        };
        ExternalUser {
            subject: name_id.trim().to_owned(),
            email: email.to_ascii_lowercase(),
            email_verified: None,
            given_name: first(
                &mapping.given_name,
                &["given_name", "firstName", "givenName"],
            ),
            family_name: first(
                &mapping.family_name,
                &["family_name", "lastName", "sn", "surname"],
            ),
            phone: first(
                &mapping.phone,
                &["phone_number", "phone", "mobile", "telephoneNumber"],
            ),
            groups,
        }
    }

    pub fn domain(&self) -> &str {
        self.email.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

fn enterprise_level(kind: i32) -> bool {
    kind == i32::from(directory::UserKind::EnterpriseAdmin)
        || kind == i32::from(directory::UserKind::EnterpriseContentManager)
}

/// The ProvisionUser request for `user`: the first rule whose group they are in gives the kind
/// and memberships, every matching rule its roles; with no match, the default rule, if any.
pub fn provision_request(
    connection: &Connection,
    user: &ExternalUser,
) -> directory::ProvisionUserRequest {
    let settings = &connection.settings;
    let matching: Vec<&Rule> = settings
        .rules
        .iter()
        .filter(|rule| user.groups.iter().any(|g| g == &rule.group))
        .collect();
    let deciding: Option<&Rule> = matching
        .first()
        .copied()
        .or(settings.default_rule.as_ref().filter(|r| r.kind != 0));
    let (kind, memberships) = match deciding {
        Some(rule) => (
            rule.kind,
            rule.memberships
                .iter()
                .map(|m| directory::PracticeMembership {
                    practice_id: m.practice_id.clone(),
                    line_ids: m.line_ids.clone(),
                    resource_filter_ids: Vec::new(),
                })
                .collect(),
        ),
        None => (0, Vec::new()),
    };
    let granting: Vec<&Rule> = if matching.is_empty() {
        deciding.into_iter().collect()
    } else {
        matching
    };
    let mut roles = Vec::new();
    for rule in granting {
        for role_id in &rule.role_ids {
            if kind == 0 || enterprise_level(kind) {
                roles.push(directory::ProvisionedRole {
                    role_id: role_id.clone(),
                    practice_id: String::new(),
                });
            } else {
                for membership in &memberships {
                    roles.push(directory::ProvisionedRole {
                        role_id: role_id.clone(),
                        practice_id: membership.practice_id.clone(),
                    });
                }
            }
        }
    }
    directory::ProvisionUserRequest {
        enterprise_id: connection.enterprise_id.clone(),
        email: user.email.clone(),
        given_name: user.given_name.clone(),
        family_name: user.family_name.clone(),
        kind,
        memberships,
        roles,
        source: format!("sso:{}", connection.id),
    }
}

#[cfg(test)]
mod tests {
    use super::super::connections::{ConnectionSettings, MembershipRule};
    use super::*;

    fn connection(rules: Vec<Rule>, default_rule: Option<Rule>) -> Connection {
        Connection {
            id: "c1".into(),
            enterprise_id: "e1".into(),
            display_name: "Okta".into(),
            enabled: true,
            domains: vec!["acme.test".into()],
            settings: ConnectionSettings {
                rules,
                default_rule,
                ..ConnectionSettings::default()
            },
            sealed_secret: None,
            version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn rule(group: &str, kind: directory::UserKind, practices: &[&str], roles: &[&str]) -> Rule {
        Rule {
            group: group.into(),
            kind: kind.into(),
            memberships: practices
                .iter()
                .map(|p| MembershipRule {
                    practice_id: (*p).into(),
                    line_ids: vec![],
                })
                .collect(),
            role_ids: roles.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    #[test]
    fn i6_claims_map_through_configured_names() {
        let claims = serde_json::json!({
            "sub": "abc", "mail": "Alice@Acme.test", "email_verified": true,
            "given_name": "Alice", "family_name": "Nguyen", "roles": ["a", "b"],
        });
        let mapping = Mapping {
            email: "mail".into(),
            groups: "roles".into(),
            ..Mapping::default()
        };
        let user = ExternalUser::from_claims(claims.as_object().expect("object"), &mapping);
        assert_eq!(user.email, "alice@acme.test");
        assert_eq!(user.domain(), "acme.test");
        assert_eq!(user.groups, ["a", "b"]);
        assert_eq!(user.email_verified, Some(true));
        assert_eq!(user.given_name, "Alice");
    }

    #[test]
    fn i6_saml_attributes_map_by_usual_names_and_the_name_id_fills_in_the_email() {
        let attributes = vec![
            (
                "urn:mace:dir:attribute-def:firstName".to_owned(),
                vec!["Bob".to_owned()],
            ),
            ("lastName".to_owned(), vec!["Okafor".to_owned()]),
            (
                "groups".to_owned(),
                vec!["praxis-staff".to_owned(), "x".to_owned()],
            ),
        ];
        let user = ExternalUser::from_attributes("bob@acme.test", &attributes, &Mapping::default());
        assert_eq!(user.email, "bob@acme.test");
        assert_eq!(user.given_name, "Bob");
        assert_eq!(user.family_name, "Okafor");
        assert_eq!(user.groups, ["praxis-staff", "x"]);
    }

    #[test]
    fn i6_the_first_matching_rule_decides_the_kind_and_every_match_grants_roles() {
        let rules = vec![
            rule(
                "managers",
                directory::UserKind::Manager,
                &["p1"],
                &["r-manage"],
            ),
            rule("north", directory::UserKind::Staff, &["p2"], &["r-north"]),
            rule("other", directory::UserKind::Staff, &["p3"], &["r-other"]),
        ];
        let user = ExternalUser {
            email: "a@acme.test".into(),
            groups: vec!["north".into(), "managers".into()],
            ..ExternalUser::default()
        };
        let request = provision_request(&connection(rules, None), &user);
        assert_eq!(request.kind, i32::from(directory::UserKind::Manager));
        assert_eq!(request.memberships.len(), 1);
        assert_eq!(request.memberships[0].practice_id, "p1");
        let roles: Vec<(&str, &str)> = request
            .roles
            .iter()
            .map(|r| (r.role_id.as_str(), r.practice_id.as_str()))
            .collect();
        assert_eq!(roles, [("r-manage", "p1"), ("r-north", "p1")]);
        assert_eq!(request.source, "sso:c1");
    }

    #[test]
    fn i6_without_a_matching_group_the_default_rule_or_nothing() {
        let user = ExternalUser {
            email: "a@acme.test".into(),
            groups: vec!["unrelated".into()],
            ..ExternalUser::default()
        };
        let none = provision_request(&connection(vec![], None), &user);
        assert_eq!(none.kind, 0);
        assert!(none.roles.is_empty());
        let admin = rule("", directory::UserKind::EnterpriseAdmin, &[], &["r-all"]);
        let fallback = provision_request(&connection(vec![], Some(admin)), &user);
        assert_eq!(
            fallback.kind,
            i32::from(directory::UserKind::EnterpriseAdmin)
        );
        assert_eq!(fallback.roles.len(), 1);
        assert_eq!(fallback.roles[0].practice_id, "");
    }
}
