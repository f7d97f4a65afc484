//! Lookups (A6) agree with Check: on a generated enterprise (every user kind, two practices
//! with lines and locations, a location-scoped role and an explicit grant), every place
//! LookupResources could list is listed exactly when Check allows there, and LookupSubjects
//! names exactly the users Check allows at each location.

use praxis_directory::domain::roles::{BindingScope, RoleBinding, RoleId};
use praxis_directory::domain::*;
use praxis_proto::authz::v1 as pb;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_tests::{Install, authed, fixture, installs};
use tonic::Code;

const PERMISSIONS: [&str; 5] = [
    "appointments:read",
    "billing:read",
    "messages:send",
    "patients:read",
    "campaigns:edit",
];

/// Where a resource is, as Check and the lookups see it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Enterprise,
    Practice(String),
    Location(String, String),
    Line(String, String),
    Resource(String),
}

impl Place {
    fn resource(&self, enterprise_id: &str) -> pb::Resource {
        let mut resource = pb::Resource {
            r#type: "patient".into(),
            enterprise_id: enterprise_id.to_owned(),
            ..Default::default()
        };
        match self {
            Place::Enterprise => {}
            Place::Practice(practice) => resource.practice_id = practice.clone(),
            Place::Location(practice, location) => {
                resource.practice_id = practice.clone();
                resource.location_id = location.clone();
            }
            Place::Line(practice, line) => {
                resource.practice_id = practice.clone();
                resource.line_id = line.clone();
            }
            Place::Resource(id) => resource.id = id.clone(),
        }
        resource
    }

    fn listed(&self, found: &pb::LookupResourcesResponse) -> bool {
        match self {
            Place::Enterprise => found.enterprise_wide,
            Place::Practice(practice) => found.practice_ids.contains(practice),
            Place::Location(_, location) => found.location_ids.contains(location),
            Place::Line(practice, line) => found
                .lines
                .iter()
                .any(|l| &l.practice_id == practice && &l.line_id == line),
            // A resource placed nowhere in particular: enterprise-wide access, or its own grant.
            Place::Resource(id) => {
                found.enterprise_wide || found.resources.iter().any(|r| &r.id == id)
            }
        }
    }
}

async fn client(install: &Install) -> AuthzServiceClient<tonic::transport::Channel> {
    AuthzServiceClient::new(install.channel(install.addresses.authz).await)
}

#[tokio::test]
async fn a6_lookups_agree_with_check_on_every_pair() {
    for install in installs().await {
        let clinic = fixture(&install, "Lookups").await;
        let b = &install.backend;
        let now = chrono::Utc::now();
        let mut locations = Vec::new();
        for (practice, name) in [(0, "North A"), (0, "North B"), (1, "South A")] {
            let (location, _) = install
                .directory
                .add_resource(
                    &Actor::Operator,
                    &clinic.practices[practice].id,
                    ResourceKind::Location,
                    name,
                    Some("America/Chicago"),
                    now,
                )
                .await
                .expect("location");
            locations.push((clinic.practices[practice].id.0.clone(), location.id.0));
        }
        let staff = clinic.user(UserKind::Staff).clone();
        // Staff bill at one South location, and read one patient by an explicit grant.
        install
            .directory
            .create_binding(
                &Actor::Operator,
                RoleBinding {
                    id: String::new(),
                    enterprise_id: clinic.enterprise.id.clone(),
                    user_id: staff.id.clone(),
                    role_id: RoleId("builtin-billing".into()),
                    scope: BindingScope::Location(ResourceId(locations[2].1.clone())),
                    valid_from: None,
                    valid_until: None,
                    weekly_window: None,
                    created_at: now,
                    source: None,
                },
                now,
            )
            .await
            .expect("binding");
        let (_, revision) = install
            .directory
            .grant_resource_access(
                &Actor::Operator,
                &staff.id,
                "patients:read",
                ("patient", "p-7"),
                None,
                now,
            )
            .await
            .expect("grant");

        let enterprise_id = clinic.enterprise.id.0.clone();
        let mut places = vec![
            Place::Enterprise,
            Place::Resource("p-7".into()),
            Place::Resource("p-8".into()),
        ];
        for practice in &clinic.practices {
            places.push(Place::Practice(practice.id.0.clone()));
            for line in &practice.lines {
                places.push(Place::Line(practice.id.0.clone(), line.id.0.clone()));
            }
        }
        for (practice, location) in &locations {
            places.push(Place::Location(practice.clone(), location.clone()));
        }

        let mut compared = 0;
        for user in &clinic.users {
            let token = install.token_for(&user.email).await;
            let principal = Some(pb::Principal {
                user_id: user.id.0.clone(),
            });
            for permission in PERMISSIONS {
                let found = client(&install)
                    .await
                    .lookup_resources(authed(
                        pb::LookupResourcesRequest {
                            principal: principal.clone(),
                            permission: permission.into(),
                            resource_type: "patient".into(),
                            min_revision: revision,
                            ..Default::default()
                        },
                        &token,
                    ))
                    .await
                    .expect("lookup")
                    .into_inner();
                let member_lines: Vec<(String, String)> = user
                    .memberships
                    .iter()
                    .flat_map(|m| {
                        m.line_ids
                            .iter()
                            .map(|l| (m.practice_id.0.clone(), l.0.clone()))
                    })
                    .collect();
                for place in &places {
                    // Lines are listed for the user's own memberships only.
                    if let Place::Line(practice, line) = place
                        && !member_lines.contains(&(practice.clone(), line.clone()))
                    {
                        continue;
                    }
                    let decision = client(&install)
                        .await
                        .check(authed(
                            pb::CheckRequest {
                                principal: principal.clone(),
                                permission: permission.into(),
                                resource: Some(place.resource(&enterprise_id)),
                                min_revision: revision,
                                context: None,
                            },
                            &token,
                        ))
                        .await
                        .expect("check")
                        .into_inner();
                    let allowed = decision.decision == i32::from(pb::Decision::Allow);
                    assert_eq!(
                        allowed,
                        place.listed(&found),
                        "{b}: {:?} {permission} at {place:?}: Check says {allowed}, lookup {found:?}",
                        user.kind
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 200, "{b}: only {compared} pairs compared");

        // Who may bill at each location: exactly the users Check allows there.
        let admin_token = install
            .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
            .await;
        for (practice, location) in &locations {
            for permission in ["billing:read", "appointments:read"] {
                let named = client(&install)
                    .await
                    .lookup_subjects(authed(
                        pb::LookupSubjectsRequest {
                            enterprise_id: enterprise_id.clone(),
                            permission: permission.into(),
                            location_id: location.clone(),
                            resource_type: "patient".into(),
                            min_revision: revision,
                            ..Default::default()
                        },
                        &admin_token,
                    ))
                    .await
                    .expect("subjects")
                    .into_inner()
                    .user_ids;
                for user in &clinic.users {
                    let token = install.token_for(&user.email).await;
                    let place = Place::Location(practice.clone(), location.clone());
                    let decision = client(&install)
                        .await
                        .check(authed(
                            pb::CheckRequest {
                                principal: Some(pb::Principal {
                                    user_id: user.id.0.clone(),
                                }),
                                permission: permission.into(),
                                resource: Some(place.resource(&enterprise_id)),
                                min_revision: revision,
                                context: None,
                            },
                            &token,
                        ))
                        .await
                        .expect("check")
                        .into_inner();
                    assert_eq!(
                        decision.decision == i32::from(pb::Decision::Allow),
                        named.contains(&user.id.0),
                        "{b}: {:?} {permission} at {location}: {named:?}",
                        user.kind
                    );
                }
            }
        }
        let staff_token = install.token_for(&staff.email).await;
        let refused = client(&install)
            .await
            .lookup_subjects(authed(
                pb::LookupSubjectsRequest {
                    enterprise_id: enterprise_id.clone(),
                    permission: "billing:read".into(),
                    location_id: locations[0].1.clone(),
                    ..Default::default()
                },
                &staff_token,
            ))
            .await
            .expect_err("staff");
        assert_eq!(refused.code(), Code::PermissionDenied, "{b}");
        install.stop().await;
    }
}
