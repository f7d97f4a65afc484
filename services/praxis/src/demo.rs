//! `praxis serve --demo`: a demo enterprise with two practices, their lines and resources, and one
//! user of each kind. Seeding is idempotent: a second run finds what the first made.

use praxis_directory::Directory;
use praxis_directory::domain::*;

pub const DEMO_ENTERPRISE: &str = "Demo Health";
pub const DEMO_DOMAIN: &str = "demo-health.test";
/// Every demo user's password; a demo install is for trying things out on a laptop.
pub const DEMO_PASSWORD: &str = "praxis demo password";

pub struct DemoSummary {
    pub enterprise: Enterprise,
    pub practices: Vec<Practice>,
    pub users: Vec<User>,
}

struct DemoPractice {
    request_id: &'static str,
    name: &'static str,
    lines: [(&'static str, &'static str); 2],
    provider: &'static str,
    location: (&'static str, &'static str),
}

const PRACTICES: [DemoPractice; 2] = [
    DemoPractice {
        request_id: "demo-practice-north",
        name: "North Family Clinic",
        lines: [("Front desk", "+15550100001"), ("Billing", "+15550100002")],
        provider: "Dr. Ada North",
        location: ("North Main Street", "America/Chicago"),
    },
    DemoPractice {
        request_id: "demo-practice-south",
        name: "South Pediatrics",
        lines: [
            ("Front desk", "+15550200001"),
            ("Nurse line", "+15550200002"),
        ],
        provider: "Dr. Sam South",
        location: ("South Harbor", "America/New_York"),
    },
];

pub async fn seed(directory: &Directory) -> Result<DemoSummary, DomainError> {
    let operator = Actor::Operator;
    let now = chrono::Utc::now();
    let enterprise = directory
        .create_enterprise(&operator, DEMO_ENTERPRISE, "demo-enterprise", now)
        .await?;
    let allowlisted = directory
        .list_email_domains(&operator, &enterprise.id)
        .await?
        .0;
    if !allowlisted
        .iter()
        .any(|domain| domain.domain == DEMO_DOMAIN)
    {
        directory
            .add_email_domain(&operator, &enterprise.id, DEMO_DOMAIN, now)
            .await?;
    }

    let mut practices = Vec::new();
    for spec in &PRACTICES {
        let (practice, _) = directory
            .create_practice(&operator, &enterprise.id, spec.name, spec.request_id, now)
            .await?;
        if practice.lines.is_empty() {
            for (name, phone) in spec.lines {
                directory
                    .add_line(&operator, &practice.id, name, phone, now)
                    .await?;
            }
            directory
                .add_resource(
                    &operator,
                    &practice.id,
                    ResourceKind::Provider,
                    spec.provider,
                    None,
                    now,
                )
                .await?;
            let (location, zone) = spec.location;
            directory
                .add_resource(
                    &operator,
                    &practice.id,
                    ResourceKind::Location,
                    location,
                    Some(zone),
                    now,
                )
                .await?;
        }
        practices.push(directory.get_practice(&operator, &practice.id).await?);
    }

    let mut users = Vec::new();
    for kind in UserKind::ALL {
        let email = format!(
            "{}@{DEMO_DOMAIN}",
            kind.as_str().to_lowercase().replace('_', ".")
        );
        if let Ok(existing) = directory.find_user_by_email(&operator, &email).await {
            users.push(existing);
            continue;
        }
        let memberships = demo_memberships(kind, &practices);
        let new_user = NewUser {
            email,
            given_name: "Demo".to_owned(),
            family_name: kind.as_str().replace('_', " ").to_lowercase(),
            kind,
            memberships,
            person_id: None,
        };
        let (user, _) = directory
            .seed_user(&operator, &enterprise.id, new_user, now)
            .await?;
        users.push(user);
    }
    let enterprise = directory.get_enterprise(&operator, &enterprise.id).await?;
    Ok(DemoSummary {
        enterprise,
        practices,
        users,
    })
}

/// Staff work the first line of the first practice; advanced staff and managers hold every line
/// of it (D7); enterprise-level users need no membership (D8).
fn demo_memberships(kind: UserKind, practices: &[Practice]) -> Vec<Membership> {
    let Some(first) = practices.first() else {
        return Vec::new();
    };
    match kind {
        UserKind::Staff => {
            let first_line = first
                .lines
                .iter()
                .take(1)
                .map(|line| line.id.clone())
                .collect();
            vec![Membership::new(first.id.clone(), first_line)]
        }
        UserKind::AdvancedStaff | UserKind::Manager => {
            vec![Membership::new(first.id.clone(), Vec::new())]
        }
        UserKind::EnterpriseContentManager
        | UserKind::EnterpriseAdmin
        | UserKind::ServiceAccount => Vec::new(),
    }
}
