//! Roles (D16) and role bindings (D17) through gRPC, on every backend.

use praxis_directory::domain::{Actor, ResourceKind, UserKind};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
use praxis_proto::directory::v1::role_service_client::RoleServiceClient;
use praxis_tests::{authed, fixture, installs, violated_fields};
use tonic::Code;
use tonic_types::StatusExt;

fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

fn grant(feature: &str, action: &str, scope: pb::GrantScope) -> pb::Grant {
    pb::Grant {
        permission: Some(pb::Permission {
            feature: feature.into(),
            action: action.into(),
        }),
        scope: scope.into(),
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn d16_custom_roles_templates_inheritance_and_denials() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let enterprise_id = acme.enterprise.id.0.clone();
        let mut roles = RoleServiceClient::new(install.channel(install.addresses.directory).await);
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;

        let catalogue = roles
            .list_permissions(authed(pb::ListPermissionsRequest {}, &manager))
            .await
            .unwrap()
            .into_inner();
        let patients = catalogue
            .features
            .iter()
            .find(|f| f.feature == "patients")
            .expect("patients");
        assert!(
            patients.phi && patients.actions.contains(&"export".to_owned()),
            "{b}"
        );

        let listed = roles
            .list_roles(authed(
                pb::ListRolesRequest {
                    enterprise_id: enterprise_id.clone(),
                },
                &manager,
            ))
            .await
            .unwrap()
            .into_inner();
        let templates: Vec<String> = listed
            .roles
            .iter()
            .filter(|r| r.built_in)
            .map(|r| r.display_name.clone())
            .collect();
        assert_eq!(
            templates,
            [
                "Owner/Admin",
                "Manager",
                "Provider",
                "Front Desk",
                "Billing",
                "Inventory",
                "Call Center"
            ],
            "{b}"
        );

        let front_desk = listed
            .roles
            .iter()
            .find(|r| r.display_name == "Front Desk")
            .unwrap()
            .clone();
        let mut edit_template = front_desk.clone();
        edit_template.display_name = "Mine".into();
        let status = roles
            .update_role(authed(
                pb::UpdateRoleRequest {
                    role: Some(edit_template),
                    update_mask: mask(&["display_name"]),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            reason(&status),
            "BUILT_IN_ROLE",
            "{b}: templates are read-only"
        );

        let copy = pb::CopyRoleRequest {
            enterprise_id: enterprise_id.clone(),
            source_role_id: front_desk.id.clone(),
            display_name: "Front Desk North".into(),
        };
        assert_eq!(
            roles
                .copy_role(authed(copy.clone(), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        let copied = roles
            .copy_role(authed(copy, &admin))
            .await
            .expect("copy")
            .into_inner()
            .role
            .unwrap();
        assert!(!copied.built_in, "{b}");
        assert_eq!(
            (copied.grants.len(), copied.field_masks.clone()),
            (front_desk.grants.len(), front_desk.field_masks.clone()),
            "{b}"
        );

        let create = |role: pb::Role| pb::CreateRoleRequest {
            enterprise_id: enterprise_id.clone(),
            role: Some(role),
            request_id: String::new(),
        };
        let bogus = pb::Role {
            display_name: "Bogus".into(),
            grants: vec![
                grant("patients", "teleport", pb::GrantScope::All),
                grant("patients", "read", pb::GrantScope::Unspecified),
            ],
            ..Default::default()
        };
        let status = roles
            .create_role(authed(create(bogus), &admin))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{b}");
        assert_eq!(violated_fields(&status), ["role.grants[1].scope"], "{b}");
        let unknown = pb::Role {
            display_name: "Bogus".into(),
            grants: vec![grant("patients", "teleport", pb::GrantScope::All)],
            ..Default::default()
        };
        assert_eq!(
            violated_fields(
                &roles
                    .create_role(authed(create(unknown), &admin))
                    .await
                    .unwrap_err()
            ),
            ["role.grants[0]"],
            "{b}"
        );

        // A child inherits, adds a grant and denies an inherited one.
        let child = pb::Role {
            display_name: "Front Desk, no deletes".into(),
            parent_role_id: copied.id.clone(),
            grants: vec![grant("reports", "read", pb::GrantScope::All)],
            denials: vec![pb::Permission {
                feature: "appointments".into(),
                action: "delete".into(),
            }],
            ..Default::default()
        };
        let child = roles
            .create_role(authed(create(child), &admin))
            .await
            .expect("child")
            .into_inner()
            .role
            .unwrap();
        assert_eq!(child.parent_role_id, copied.id, "{b}");

        // No cycles: the parent may not inherit from its child.
        let mut loop_back = copied.clone();
        loop_back.parent_role_id = child.id.clone();
        let status = roles
            .update_role(authed(
                pb::UpdateRoleRequest {
                    role: Some(loop_back),
                    update_mask: mask(&["parent_role_id"]),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "ROLE_CYCLE", "{b}");

        // In use: no delete; stale etags lose.
        let status = roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    role_id: copied.id.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "ROLE_IN_USE", "{b}");
        let mut renamed = child.clone();
        renamed.display_name = "Renamed".into();
        let updated = roles
            .update_role(authed(
                pb::UpdateRoleRequest {
                    role: Some(renamed.clone()),
                    update_mask: mask(&["display_name"]),
                },
                &admin,
            ))
            .await
            .expect("rename")
            .into_inner()
            .role
            .unwrap();
        assert_eq!(updated.display_name, "Renamed", "{b}");
        let stale = roles
            .update_role(authed(
                pb::UpdateRoleRequest {
                    role: Some(renamed),
                    update_mask: mask(&["display_name"]),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted, "{b}");
        roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    role_id: child.id.clone(),
                    etag: updated.etag.clone(),
                },
                &admin,
            ))
            .await
            .expect("delete child");
        roles
            .delete_role(authed(
                pb::DeleteRoleRequest {
                    role_id: copied.id.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .expect("delete parent");
    }
}

#[tokio::test]
async fn d17_bindings_with_scopes_validity_and_weekly_windows() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let other = fixture(&install, "Other").await;
        let now = chrono::Utc::now();
        let north = &acme.practices[0];
        let location = install
            .directory
            .add_resource(
                &Actor::Operator,
                &north.id,
                ResourceKind::Location,
                "North Main",
                Some("America/Chicago"),
                now,
            )
            .await
            .unwrap()
            .0;
        let channel = install.channel(install.addresses.directory).await;
        let mut bindings = RoleBindingServiceClient::new(channel.clone());
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let intruder = install
            .token_for(&other.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff = acme.user(UserKind::Staff).id.0.clone();
        let ts = |t: chrono::DateTime<chrono::Utc>| {
            Some(prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: 0,
            })
        };

        let contractor = pb::RoleBinding {
            user_id: staff.clone(),
            role_id: "builtin-front-desk".into(),
            location_id: location.id.0.clone(),
            valid_from: ts(now),
            valid_until: ts(now + chrono::Duration::days(30)),
            weekly_window: Some(pb::WeeklyWindow {
                days: vec![1, 2, 3, 4, 5],
                start_minute: 8 * 60,
                end_minute: 18 * 60,
            }),
            ..Default::default()
        };
        let create = |binding: pb::RoleBinding| pb::CreateRoleBindingRequest {
            binding: Some(binding),
        };
        let made = bindings
            .create_role_binding(authed(create(contractor.clone()), &admin))
            .await
            .expect("bind")
            .into_inner()
            .binding
            .unwrap();
        assert_eq!(
            (
                made.enterprise_id.as_str(),
                made.weekly_window.as_ref().unwrap().end_minute
            ),
            (acme.enterprise.id.0.as_str(), 1080),
            "{b}"
        );
        let billing = pb::RoleBinding {
            user_id: staff.clone(),
            role_id: "builtin-billing".into(),
            practice_id: north.id.0.clone(),
            ..Default::default()
        };
        bindings
            .create_role_binding(authed(create(billing.clone()), &admin))
            .await
            .expect("different roles per scope");

        let refused = [
            (
                pb::RoleBinding {
                    weekly_window: contractor.weekly_window.clone(),
                    location_id: String::new(),
                    practice_id: north.id.0.clone(),
                    ..contractor.clone()
                },
                "binding.weekly_window",
            ),
            (
                pb::RoleBinding {
                    valid_until: ts(now - chrono::Duration::days(1)),
                    ..contractor.clone()
                },
                "binding.valid_until",
            ),
            (
                pb::RoleBinding {
                    weekly_window: Some(pb::WeeklyWindow {
                        days: vec![8],
                        start_minute: 0,
                        end_minute: 60,
                    }),
                    ..contractor.clone()
                },
                "binding.weekly_window.days",
            ),
            (
                pb::RoleBinding {
                    role_id: "no-such-role".into(),
                    ..billing.clone()
                },
                "binding.role_id",
            ),
            (
                pb::RoleBinding {
                    practice_id: other.practices[0].id.0.clone(),
                    ..billing.clone()
                },
                "binding.practice_id",
            ),
        ];
        for (binding, field) in refused {
            let status = bindings
                .create_role_binding(authed(create(binding), &admin))
                .await
                .unwrap_err();
            assert_eq!(
                (status.code(), violated_fields(&status)),
                (Code::InvalidArgument, vec![field.to_owned()]),
                "{b}"
            );
        }
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        assert_eq!(
            bindings
                .create_role_binding(authed(create(billing.clone()), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );

        let reader = bindings.clone();
        let list = |filter: pb::ListRoleBindingsRequest| {
            let mut bindings = reader.clone();
            let admin = admin.clone();
            async move {
                bindings
                    .list_role_bindings(authed(filter, &admin))
                    .await
                    .unwrap()
                    .into_inner()
                    .bindings
            }
        };
        let enterprise_id = acme.enterprise.id.0.clone();
        assert_eq!(
            list(pb::ListRoleBindingsRequest {
                enterprise_id: enterprise_id.clone(),
                user_id: staff.clone(),
                ..Default::default()
            })
            .await
            .len(),
            2,
            "{b}"
        );
        assert_eq!(
            list(pb::ListRoleBindingsRequest {
                enterprise_id: enterprise_id.clone(),
                location_id: location.id.0.clone(),
                ..Default::default()
            })
            .await
            .len(),
            1,
            "{b}"
        );
        assert_eq!(
            list(pb::ListRoleBindingsRequest {
                enterprise_id: enterprise_id.clone(),
                role_id: "builtin-billing".into(),
                ..Default::default()
            })
            .await
            .len(),
            1,
            "{b}"
        );
        // ListUsers finds the users bound to a role.
        let mut users = praxis_proto::directory::v1::user_service_client::UserServiceClient::new(
            channel.clone(),
        );
        let by_role = pb::ListUsersRequest {
            enterprise_id: enterprise_id.clone(),
            role_id: "builtin-billing".into(),
            ..Default::default()
        };
        let found = users
            .list_users(authed(by_role, &admin))
            .await
            .unwrap()
            .into_inner()
            .users;
        assert_eq!(
            found.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
            vec![staff.clone()],
            "{b}"
        );

        let delete = pb::DeleteRoleBindingRequest {
            binding_id: made.id.clone(),
        };
        assert_eq!(
            bindings
                .delete_role_binding(authed(delete.clone(), &intruder))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound,
            "{b}"
        );
        bindings
            .delete_role_binding(authed(delete, &admin))
            .await
            .expect("unbind");
        assert_eq!(
            list(pb::ListRoleBindingsRequest {
                enterprise_id,
                user_id: staff,
                ..Default::default()
            })
            .await
            .len(),
            1,
            "{b}"
        );
    }
}

#[tokio::test]
async fn principal_snapshot_holds_kind_memberships_bindings_and_role_chains_at_one_revision() {
    use praxis_proto::directory::v1::user_service_client::UserServiceClient;
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let other = fixture(&install, "Other").await;
        let channel = install.channel(install.addresses.directory).await;
        let mut roles = RoleServiceClient::new(channel.clone());
        let mut bindings = RoleBindingServiceClient::new(channel.clone());
        let mut users = UserServiceClient::new(channel);
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff_user = acme.user(UserKind::Staff);
        let enterprise_id = acme.enterprise.id.0.clone();
        let child = pb::Role {
            display_name: "Front Desk Plus".into(),
            parent_role_id: "builtin-front-desk".into(),
            grants: vec![grant("reports", "read", pb::GrantScope::All)],
            ..Default::default()
        };
        let child = roles
            .create_role(authed(
                pb::CreateRoleRequest {
                    enterprise_id: enterprise_id.clone(),
                    role: Some(child),
                    request_id: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .role
            .unwrap();
        let binding = pb::RoleBinding {
            user_id: staff_user.id.0.clone(),
            role_id: child.id.clone(),
            practice_id: acme.practices[0].id.0.clone(),
            ..Default::default()
        };
        let bound = bindings
            .create_role_binding(authed(
                pb::CreateRoleBindingRequest {
                    binding: Some(binding),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();

        let own = install.token_for(&staff_user.email).await;
        let ask = pb::GetPrincipalSnapshotRequest {
            user_id: staff_user.id.0.clone(),
        };
        let snapshot = users
            .get_principal_snapshot(authed(ask.clone(), &own))
            .await
            .expect("own snapshot")
            .into_inner()
            .snapshot
            .unwrap();
        assert_eq!(
            (snapshot.kind(), snapshot.revision),
            (pb::UserKind::Staff, bound.revision),
            "{b}"
        );
        assert_eq!(snapshot.memberships[0].line_ids.len(), 1, "{b}");
        let chain: Vec<String> = snapshot.bindings[0]
            .roles
            .iter()
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(
            chain,
            [child.id.clone(), "builtin-front-desk".to_owned()],
            "{b}: the role, then its parent"
        );
        assert!(
            users
                .get_principal_snapshot(authed(ask.clone(), &admin))
                .await
                .is_ok(),
            "{b}: admins read anyone's"
        );

        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        assert_eq!(
            users
                .get_principal_snapshot(authed(ask.clone(), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        let stranger = install
            .token_for(&other.user(UserKind::EnterpriseAdmin).email)
            .await;
        assert_eq!(
            users
                .get_principal_snapshot(authed(ask, &stranger))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound,
            "{b}"
        );
    }
}

/// A8: a snapshot is the enterprise at one revision even while writers commit all along: read
/// in one transaction, it never gives up and never mixes two revisions. Each write here adds
/// one binding and moves the revision by one, so a snapshot's bindings count its revision.
#[tokio::test]
async fn principal_snapshots_hold_one_revision_under_a_storm_of_writes() {
    use praxis_directory::domain::roles::{BindingScope, RoleBinding, RoleId};

    for install in installs().await {
        let b = install.backend.clone();
        let clinic = fixture(&install, "Storm").await;
        let staff = clinic.user(UserKind::Staff).clone();
        let enterprise_id = clinic.enterprise.id.clone();
        let directory = install.directory.clone();
        let base = directory
            .principal_snapshot(&Actor::Operator, &staff.id)
            .await
            .expect("snapshot");
        let writes = 40;
        let writer = {
            let directory = directory.clone();
            let (enterprise_id, staff) = (enterprise_id.clone(), staff.clone());
            tokio::spawn(async move {
                for _ in 0..writes {
                    let binding = RoleBinding {
                        id: uuid::Uuid::now_v7().to_string(),
                        enterprise_id: enterprise_id.clone(),
                        user_id: staff.id.clone(),
                        role_id: RoleId("builtin-front-desk".into()),
                        scope: BindingScope::Enterprise,
                        valid_from: None,
                        valid_until: None,
                        weekly_window: None,
                        created_at: chrono::Utc::now(),
                        source: None,
                    };
                    directory
                        .create_binding(&Actor::Operator, binding, chrono::Utc::now())
                        .await
                        .expect("write");
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let snapshot = directory
                .principal_snapshot(&Actor::Operator, &staff.id)
                .await
                .expect("a snapshot, however busy the writers");
            assert_eq!(
                snapshot.bindings.len() - base.bindings.len(),
                usize::try_from(snapshot.revision - base.revision).expect("forward"),
                "{b}: bindings of one revision"
            );
            reads += 1;
        }
        writer.await.expect("writer");
        eprintln!("{b}: {reads} consistent snapshots during {writes} writes");
    }
}

/// A8: on PostgreSQL a principal snapshot's rows are read in one statement (a cold Check waits
/// for it); its parts are exactly those the portable reading, query by query in one
/// transaction, finds: memberships with lines and filters, every line of a manager's practice,
/// bindings of every scope, stored role chains three deep and onto a built-in template,
/// locations with their time zones; nobody of another enterprise, nobody unknown.
#[tokio::test]
async fn principal_parts_read_at_once_are_those_read_apart() {
    use praxis_directory::domain::roles::{
        BindingScope, Grant, GrantScope, Permission, RoleBinding, RoleDraft, RoleId, RoleRules,
    };
    use praxis_directory::domain::{Membership, UserId};

    for install in installs().await {
        let b = install.backend.clone();
        let acme = fixture(&install, "Acme").await;
        let other = fixture(&install, "Other").await;
        let directory = install.directory.clone();
        let operator = Actor::Operator;
        let now = chrono::Utc::now();
        let enterprise_id = acme.enterprise.id.clone();
        let mut locations = Vec::new();
        for (practice, zone) in [(0, "America/Chicago"), (1, "Europe/Berlin"), (0, "UTC")] {
            let (location, _) = directory
                .add_resource(
                    &operator,
                    &acme.practices[practice].id,
                    ResourceKind::Location,
                    &format!("Location {}", locations.len()),
                    Some(zone),
                    now,
                )
                .await
                .unwrap();
            locations.push(location);
        }
        let staff = acme.user(UserKind::Staff).clone();
        let north = &acme.practices[0];
        let mut membership = Membership::new(
            north.id.clone(),
            vec![north.lines[1].id.clone(), north.lines[0].id.clone()],
        );
        membership.resource_filter_ids = vec![locations[2].id.clone(), locations[0].id.clone()];
        directory
            .update_membership(&operator, &staff.id, membership, None, now)
            .await
            .expect("lines and filters");

        let role = |name: &str, parent: Option<RoleId>, feature: &str| RoleDraft {
            display_name: name.to_owned(),
            description: format!("{name} for the comparison"),
            parent_role_id: parent,
            rules: RoleRules {
                grants: vec![Grant {
                    permission: Permission::new(feature, "read"),
                    scope: GrantScope::All,
                }],
                denials: vec![Permission::new("billing", "delete")],
                field_masks: Vec::new(),
            },
        };
        let mut parent = None;
        let mut chain = Vec::new();
        for (name, feature) in [
            ("Base", "reports"),
            ("Middle", "inventory"),
            ("Top", "campaigns"),
        ] {
            let (created, _) = directory
                .create_role(&operator, &enterprise_id, role(name, parent, feature), now)
                .await
                .expect("role");
            parent = Some(created.id.clone());
            chain.push(created.id);
        }
        let (onto_template, _) = directory
            .create_role(
                &operator,
                &enterprise_id,
                role(
                    "Desk",
                    Some(RoleId("builtin-front-desk".into())),
                    "messages",
                ),
                now,
            )
            .await
            .expect("role onto a template");
        let scopes = [
            (chain[2].clone(), BindingScope::Practice(north.id.clone())),
            (chain[0].clone(), BindingScope::Enterprise),
            (
                onto_template.id,
                BindingScope::Location(locations[0].id.clone()),
            ),
            (RoleId("builtin-billing".into()), BindingScope::Enterprise),
        ];
        for (role_id, scope) in scopes {
            let binding = RoleBinding {
                id: uuid::Uuid::now_v7().to_string(),
                enterprise_id: enterprise_id.clone(),
                user_id: staff.id.clone(),
                role_id,
                scope,
                valid_from: Some(now - chrono::Duration::days(1)),
                valid_until: Some(now + chrono::Duration::days(30)),
                weekly_window: None,
                created_at: now,
                source: None,
            };
            directory
                .create_binding(&operator, binding, now)
                .await
                .expect("binding");
        }

        let store = directory.store();
        let asked = [
            staff.id.clone(),
            acme.user(UserKind::Manager).id.clone(),
            acme.user(UserKind::EnterpriseAdmin).id.clone(),
            other.user(UserKind::Staff).id.clone(),
            UserId("nobody-at-all".into()),
        ];
        for user_id in &asked {
            let at_once = store
                .principal_parts(&enterprise_id, user_id)
                .await
                .unwrap();
            let apart = store
                .principal_parts_read_apart(&enterprise_id, user_id)
                .await
                .unwrap();
            assert_eq!(at_once, apart, "{b}: {user_id:?}");
        }
        let parts = store
            .principal_parts(&enterprise_id, &staff.id)
            .await
            .unwrap()
            .expect("the staff member");
        assert_eq!(
            (
                parts.bindings.len(),
                parts.roles.len(),
                parts.locations.len()
            ),
            (4, 6, 3),
            "{b}: Top, Middle, Base, Desk and two templates"
        );
        assert_eq!(parts.user.memberships[0].line_ids.len(), 2, "{b}");
        assert_eq!(
            parts.user.memberships[0].resource_filter_ids.len(),
            2,
            "{b}"
        );
        let manager = store
            .principal_parts(&enterprise_id, &acme.user(UserKind::Manager).id)
            .await
            .unwrap()
            .expect("the manager");
        assert_eq!(
            manager.user.memberships[0].line_ids.len(),
            2,
            "{b}: every line"
        );
        assert!(
            store
                .principal_parts(&enterprise_id, &other.user(UserKind::Staff).id)
                .await
                .unwrap()
                .is_none(),
            "{b}: not of this enterprise"
        );
    }
}

/// A8: on PostgreSQL a principal snapshot is read on connections of its own. Writers of one
/// enterprise queue behind its row lock, each holding a connection of the main pool until the
/// one ahead commits; a cold Check's snapshot must not wait for them (it would wait out the
/// pool's acquire timeout, or the writers ahead of it).
#[tokio::test]
async fn principal_snapshots_are_read_while_every_writer_connection_is_held() {
    use std::time::Duration;
    use tokio::time::timeout;

    for install in installs().await {
        if !install.backend.starts_with("postgres") {
            continue;
        }
        let b = install.backend.clone();
        let acme = fixture(&install, "Acme").await;
        let directory = &install.directory;
        let held = praxis_tests::hold_every_connection(directory.store().connection()).await;

        let staff = acme.user(UserKind::Staff).clone();
        let parts = timeout(
            Duration::from_secs(3),
            directory.principal_snapshot(&Actor::Operator, &staff.id),
        )
        .await
        .unwrap_or_else(|_| panic!("{b}: the snapshot waited for the writers' connections"))
        .expect("the staff member's snapshot");
        assert_eq!(parts.user.id, staff.id, "{b}");
        drop(held);
    }
}
