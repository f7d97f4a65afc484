//! Decisions (A1) from the kind baselines of A2. Deny unless a rule allows; every answer says
//! why. Roles, grants and Cedar (A3–A7) build on this with the authz issue.

/// `feature:action`, both lowercase words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub feature: String,
    pub action: String,
}

impl Permission {
    pub fn parse(text: &str) -> Option<Self> {
        let (feature, action) = text.split_once(':')?;
        let word = |part: &str| {
            !part.is_empty()
                && part.len() <= 64
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        (word(feature) && word(action)).then(|| Self {
            feature: feature.to_owned(),
            action: action.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct ResourceRef {
    pub kind: String,
    pub id: String,
    pub enterprise_id: String,
    pub practice_id: Option<String>,
    pub line_id: Option<String>,
}

/// What a decision needs to know about the principal, read from the directory.
#[derive(Debug, Clone)]
pub struct PrincipalSnapshot {
    pub user_id: String,
    pub enterprise_id: String,
    /// Directory kind name, e.g. `ENTERPRISE_ADMIN`.
    pub kind: String,
    pub active: bool,
    pub memberships: Vec<(String, Vec<String>)>,
    pub revision: i64,
}

impl PrincipalSnapshot {
    fn member_of(&self, practice: &str) -> bool {
        self.memberships.iter().any(|(id, _)| id == practice)
    }

    fn works_line(&self, practice: &str, line: &str) -> bool {
        self.memberships
            .iter()
            .any(|(id, lines)| id == practice && lines.iter().any(|l| l == line))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(String),
    Deny(String),
}

/// Features that hold patient data; content managers never reach them (D3).
const PHI_FEATURES: [&str; 5] = [
    "patients",
    "conversations",
    "messages",
    "appointments",
    "clinical_notes",
];
const CONTENT_FEATURES: [&str; 3] = ["triggers", "flows", "campaigns"];

pub fn decide(
    principal: &PrincipalSnapshot,
    permission: &Permission,
    resource: &ResourceRef,
) -> Outcome {
    if principal.enterprise_id != resource.enterprise_id {
        return Outcome::Deny("principal belongs to another enterprise".to_owned());
    }
    if !principal.active {
        return Outcome::Deny("principal is not active".to_owned());
    }
    let feature = permission.feature.as_str();
    let action = permission.action.as_str();
    match principal.kind.as_str() {
        "ENTERPRISE_ADMIN" => Outcome::Allow("kind baseline: enterprise admin (A2)".to_owned()),
        "ENTERPRISE_CONTENT_MANAGER" => {
            if PHI_FEATURES.contains(&feature) {
                Outcome::Deny("content managers see no patient data (D3)".to_owned())
            } else if CONTENT_FEATURES.contains(&feature) && action != "toggle" {
                Outcome::Allow(format!(
                    "kind baseline: content manager may {action} {feature} (D3)"
                ))
            } else {
                Outcome::Deny(format!("content managers may not {action} {feature} (D3)"))
            }
        }
        "MANAGER" => match &resource.practice_id {
            Some(practice) if principal.member_of(practice) => {
                Outcome::Allow("kind baseline: manager in their practice (A2)".to_owned())
            }
            _ => Outcome::Deny("manager outside their practices".to_owned()),
        },
        "STAFF" | "ADVANCED_STAFF" => staff(principal, feature, action, resource),
        other => Outcome::Deny(format!("no baseline for kind {other}")),
    }
}

fn staff(
    principal: &PrincipalSnapshot,
    feature: &str,
    action: &str,
    resource: &ResourceRef,
) -> Outcome {
    let Some(practice) = resource
        .practice_id
        .as_deref()
        .filter(|p| principal.member_of(p))
    else {
        return Outcome::Deny("resource outside the principal's practices".to_owned());
    };
    let on_line = resource
        .line_id
        .as_deref()
        .is_some_and(|line| principal.works_line(practice, line));
    match (feature, action) {
        ("appointments", "read") => Outcome::Allow(
            "kind baseline: staff read appointments across their practice (A2)".into(),
        ),
        ("conversations", _) | ("messages", "send" | "read") if on_line => {
            Outcome::Allow("kind baseline: staff on their own line (A2)".into())
        }
        ("conversations", _) | ("messages", _) => {
            Outcome::Deny("staff reach conversations only on their lines (A2)".into())
        }
        _ => Outcome::Deny(format!("no grant for {feature}:{action}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(kind: &str) -> PrincipalSnapshot {
        PrincipalSnapshot {
            user_id: "u1".into(),
            enterprise_id: "e1".into(),
            kind: kind.into(),
            active: true,
            memberships: vec![("p1".into(), vec!["line-a".into()])],
            revision: 7,
        }
    }

    fn resource(practice: &str, line: Option<&str>) -> ResourceRef {
        ResourceRef {
            kind: "conversation".into(),
            id: "c1".into(),
            enterprise_id: "e1".into(),
            practice_id: Some(practice.into()),
            line_id: line.map(Into::into),
        }
    }

    fn allowed(kind: &str, permission: &str, resource: &ResourceRef) -> bool {
        let permission = Permission::parse(permission).expect("permission");
        matches!(
            decide(&principal(kind), &permission, resource),
            Outcome::Allow(_)
        )
    }

    #[test]
    fn a2_staff_message_only_on_their_lines_but_read_appointments_practice_wide() {
        assert!(allowed(
            "STAFF",
            "messages:send",
            &resource("p1", Some("line-a"))
        ));
        assert!(!allowed(
            "STAFF",
            "messages:send",
            &resource("p1", Some("line-b"))
        ));
        assert!(!allowed("STAFF", "messages:send", &resource("p1", None)));
        assert!(allowed("STAFF", "appointments:read", &resource("p1", None)));
        assert!(!allowed(
            "STAFF",
            "appointments:read",
            &resource("p2", None)
        ));
        assert!(!allowed(
            "STAFF",
            "appointments:edit",
            &resource("p1", None)
        ));
    }

    #[test]
    fn d3_content_manager_edits_campaigns_but_never_toggles_or_reads_patients() {
        assert!(allowed(
            "ENTERPRISE_CONTENT_MANAGER",
            "campaigns:edit",
            &resource("p1", None)
        ));
        assert!(!allowed(
            "ENTERPRISE_CONTENT_MANAGER",
            "triggers:toggle",
            &resource("p1", None)
        ));
        assert!(!allowed(
            "ENTERPRISE_CONTENT_MANAGER",
            "patients:read",
            &resource("p1", None)
        ));
    }

    #[test]
    fn a2_admins_everything_in_their_enterprise_only() {
        assert!(allowed(
            "ENTERPRISE_ADMIN",
            "patients:export",
            &resource("p9", None)
        ));
        let mut other = resource("p1", None);
        other.enterprise_id = "e2".into();
        assert!(!allowed("ENTERPRISE_ADMIN", "patients:read", &other));
    }

    #[test]
    fn a2_managers_within_their_practices() {
        assert!(allowed("MANAGER", "patients:edit", &resource("p1", None)));
        assert!(!allowed("MANAGER", "patients:edit", &resource("p2", None)));
    }

    #[test]
    fn inactive_principals_and_unknown_kinds_are_denied() {
        let mut disabled = principal("ENTERPRISE_ADMIN");
        disabled.active = false;
        let permission = Permission::parse("patients:read").expect("permission");
        assert!(matches!(
            decide(&disabled, &permission, &resource("p1", None)),
            Outcome::Deny(_)
        ));
        assert!(!allowed(
            "PLATFORM_ADMIN",
            "patients:read",
            &resource("p1", None)
        ));
    }

    #[test]
    fn permissions_must_be_feature_colon_action() {
        assert!(Permission::parse("appointments:read").is_some());
        for bad in [
            "",
            "appointments",
            ":read",
            "appointments:",
            "Appointments:read",
            "a:b:c",
            "a b:read",
        ] {
            assert!(Permission::parse(bad).is_none(), "{bad:?} accepted");
        }
    }
}
