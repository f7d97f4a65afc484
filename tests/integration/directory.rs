//! The directory through gRPC, on every backend: tenant isolation, who may create what,
//! revisions, idempotency, pagination and filters, and bad input that changes nothing.

use praxis_directory::domain::UserKind;
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::enterprise_service_client::EnterpriseServiceClient;
use praxis_proto::directory::v1::practice_service_client::PracticeServiceClient;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_tests::{Install, authed, fixture, installs, violated_fields};
use tonic::Code;
use tonic::transport::Channel;

async fn clients(
    install: &Install,
) -> (
    EnterpriseServiceClient<Channel>,
    PracticeServiceClient<Channel>,
    UserServiceClient<Channel>,
) {
    let channel = install.channel(install.addresses.directory).await;
    (
        EnterpriseServiceClient::new(channel.clone()),
        PracticeServiceClient::new(channel.clone()),
        UserServiceClient::new(channel),
    )
}

async fn practice_count(
    practices: &mut PracticeServiceClient<Channel>,
    token: &str,
    enterprise_id: &str,
) -> (usize, i64) {
    let list = practices
        .list_practices(authed(
            pb::ListPracticesRequest {
                enterprise_id: enterprise_id.into(),
                page_size: 500,
                page_token: String::new(),
            },
            token,
        ))
        .await
        .expect("list")
        .into_inner();
    (list.practices.len(), list.revision)
}

#[tokio::test]
async fn another_enterprise_is_not_found_not_forbidden() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let other = fixture(&install, "Other").await;
        let intruder = install
            .token_for(&other.user(UserKind::EnterpriseAdmin).email)
            .await;
        let (mut enterprises, mut practices, mut users) = clients(&install).await;
        let b = &install.backend;

        let status = enterprises
            .get_enterprise(authed(
                pb::GetEnterpriseRequest {
                    enterprise_id: acme.enterprise.id.0.clone(),
                },
                &intruder,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{b}");
        let status = practices
            .get_practice(authed(
                pb::GetPracticeRequest {
                    practice_id: acme.practices[0].id.0.clone(),
                },
                &intruder,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{b}");
        let status = users
            .get_user(authed(
                pb::GetUserRequest {
                    user_id: acme.user(UserKind::Staff).id.0.clone(),
                },
                &intruder,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{b}");
        let list = pb::ListUsersRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            ..Default::default()
        };
        assert_eq!(
            users
                .list_users(authed(list, &intruder))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound,
            "{b}"
        );
        let create = pb::CreatePracticeRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            display_name: "Mine now".into(),
            request_id: String::new(),
        };
        assert_eq!(
            practices
                .create_practice(authed(create, &intruder))
                .await
                .unwrap_err()
                .code(),
            Code::NotFound,
            "{b}"
        );

        // Their own enterprise answers.
        let own = enterprises
            .get_enterprise(authed(
                pb::GetEnterpriseRequest {
                    enterprise_id: other.enterprise.id.0.clone(),
                },
                &intruder,
            ))
            .await
            .expect("own");
        assert_eq!(
            own.into_inner().enterprise.unwrap().display_name,
            "Other",
            "{b}"
        );
        // Acme is untouched.
        let acme_admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        assert_eq!(
            practice_count(&mut practices, &acme_admin, &acme.enterprise.id.0)
                .await
                .0,
            2,
            "{b}"
        );
    }
}

#[tokio::test]
async fn only_platform_admins_create_enterprises_and_request_ids_make_it_idempotent() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let (mut enterprises, _, _) = clients(&install).await;
        let b = &install.backend;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let create = |request_id: &str| pb::CreateEnterpriseRequest {
            display_name: "New Clinic Group".into(),
            request_id: request_id.into(),
        };
        let status = enterprises
            .create_enterprise(authed(create("r-1"), &admin))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");

        let platform = install.platform_admin_token().await;
        let first = enterprises
            .create_enterprise(authed(create("r-1"), &platform))
            .await
            .expect("create")
            .into_inner()
            .enterprise
            .unwrap();
        let again = enterprises
            .create_enterprise(authed(create("r-1"), &platform))
            .await
            .expect("retry")
            .into_inner()
            .enterprise
            .unwrap();
        assert_eq!(
            first.id, again.id,
            "{b}: a retried create made a second enterprise"
        );
        let other = enterprises
            .create_enterprise(authed(create("r-2"), &platform))
            .await
            .expect("create")
            .into_inner()
            .enterprise
            .unwrap();
        assert_ne!(first.id, other.id, "{b}");
        assert_eq!(first.revision, 1, "{b}");
    }
}

#[tokio::test]
async fn d3_only_enterprise_admins_create_practices_and_refusals_change_nothing() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let (_, mut practices, _) = clients(&install).await;
        let b = &install.backend;
        let enterprise_id = acme.enterprise.id.0.clone();
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let before = practice_count(&mut practices, &admin, &enterprise_id).await;

        for kind in [
            UserKind::Staff,
            UserKind::Manager,
            UserKind::EnterpriseContentManager,
        ] {
            let token = install.token_for(&acme.user(kind).email).await;
            let create = pb::CreatePracticeRequest {
                enterprise_id: enterprise_id.clone(),
                display_name: "East".into(),
                request_id: String::new(),
            };
            let status = practices
                .create_practice(authed(create, &token))
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::PermissionDenied, "{b}: {kind:?}");
        }
        let bad = pb::CreatePracticeRequest {
            enterprise_id: enterprise_id.clone(),
            display_name: "   ".into(),
            request_id: String::new(),
        };
        let status = practices
            .create_practice(authed(bad, &admin))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{b}");
        assert_eq!(violated_fields(&status), ["display_name"], "{b}");
        let oversized = pb::CreatePracticeRequest {
            enterprise_id: enterprise_id.clone(),
            display_name: "x".repeat(201),
            request_id: String::new(),
        };
        assert_eq!(
            practices
                .create_practice(authed(oversized, &admin))
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument,
            "{b}"
        );
        assert_eq!(
            practice_count(&mut practices, &admin, &enterprise_id).await,
            before,
            "{b}: a refused create changed something"
        );

        // D18: a write returns the new revision, and reads see it.
        let create = pb::CreatePracticeRequest {
            enterprise_id: enterprise_id.clone(),
            display_name: "East".into(),
            request_id: "east-1".into(),
        };
        let created = practices
            .create_practice(authed(create.clone(), &admin))
            .await
            .expect("create")
            .into_inner();
        assert_eq!(created.revision, before.1 + 1, "{b}");
        let retried = practices
            .create_practice(authed(create, &admin))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(
            retried.practice.unwrap().id,
            created.practice.unwrap().id,
            "{b}"
        );
        assert_eq!(
            practice_count(&mut practices, &admin, &enterprise_id).await,
            (before.0 + 1, created.revision),
            "{b}"
        );
    }
}

#[tokio::test]
async fn d8_list_users_pages_and_filters_and_enterprise_level_users_reach_every_practice() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let _other = fixture(&install, "Other").await;
        let (_, _, mut users) = clients(&install).await;
        let b = &install.backend;
        let token = install.token_for(&acme.user(UserKind::Staff).email).await;
        let enterprise_id = acme.enterprise.id.0.clone();
        let list = |page_size: i32, page_token: String| pb::ListUsersRequest {
            enterprise_id: enterprise_id.clone(),
            page_size,
            page_token,
            ..Default::default()
        };

        let mut seen = Vec::new();
        let mut token_in = String::new();
        for _ in 0..10 {
            let page = users
                .list_users(authed(list(2, token_in), &token))
                .await
                .expect("page")
                .into_inner();
            assert!(page.users.len() <= 2, "{b}");
            seen.extend(page.users.into_iter().map(|u| u.id));
            if page.next_page_token.is_empty() {
                break;
            }
            token_in = page.next_page_token;
        }
        let mut expected: Vec<String> = acme.users.iter().map(|u| u.id.0.clone()).collect();
        expected.sort();
        assert_eq!(
            seen, expected,
            "{b}: pages must cover the enterprise's users once, in order"
        );

        let filtered = |request: pb::ListUsersRequest| {
            let mut users = users.clone();
            let token = token.clone();
            async move {
                users
                    .list_users(authed(request, &token))
                    .await
                    .map(|r| r.into_inner().users)
            }
        };
        let managers = filtered(pb::ListUsersRequest {
            enterprise_id: enterprise_id.clone(),
            kind: pb::UserKind::Manager.into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            managers.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
            [acme.user(UserKind::Manager).id.0.clone()],
            "{b}"
        );

        // D8, paged one at a time: north's members and the enterprise-level users, each once.
        let mut walked = Vec::new();
        let mut cursor = String::new();
        for _ in 0..20 {
            let request = pb::ListUsersRequest {
                enterprise_id: enterprise_id.clone(),
                practice_id: acme.practices[0].id.0.clone(),
                page_size: 1,
                page_token: cursor.clone(),
                ..Default::default()
            };
            let page = users
                .clone()
                .list_users(authed(request, &token))
                .await
                .expect("page")
                .into_inner();
            walked.extend(page.users.into_iter().map(|u| u.id));
            cursor = page.next_page_token;
            if cursor.is_empty() {
                break;
            }
        }
        let mut everyone: Vec<String> = acme.users.iter().map(|u| u.id.0.clone()).collect();
        everyone.sort();
        assert_eq!(
            walked, everyone,
            "{b}: every fixture user is in north or enterprise-level"
        );

        // D8: enterprise-level users reach every practice without a membership.
        let south = filtered(pb::ListUsersRequest {
            enterprise_id: enterprise_id.clone(),
            practice_id: acme.practices[1].id.0.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut kinds: Vec<i32> = south.iter().map(|u| u.kind).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                i32::from(pb::UserKind::EnterpriseContentManager),
                i32::from(pb::UserKind::EnterpriseAdmin)
            ],
            "{b}"
        );

        let by_text = filtered(pb::ListUsersRequest {
            enterprise_id: enterprise_id.clone(),
            query: "ADVANCED_STAFF".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            by_text.len(),
            1,
            "{b}: search is case-insensitive on email and names"
        );
        let wildcard = filtered(pb::ListUsersRequest {
            enterprise_id: enterprise_id.clone(),
            query: "%".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(
            wildcard.is_empty(),
            "{b}: % is a literal character, not a wildcard"
        );

        for (request, field) in [
            (
                pb::ListUsersRequest {
                    enterprise_id: enterprise_id.clone(),
                    page_token: "%%%".into(),
                    ..Default::default()
                },
                "page_token",
            ),
            (
                pb::ListUsersRequest {
                    enterprise_id: enterprise_id.clone(),
                    kind: 99,
                    ..Default::default()
                },
                "kind",
            ),
            (
                pb::ListUsersRequest {
                    enterprise_id: String::new(),
                    ..Default::default()
                },
                "enterprise_id",
            ),
            (
                pb::ListUsersRequest {
                    enterprise_id: enterprise_id.clone(),
                    page_size: -1,
                    ..Default::default()
                },
                "page_size",
            ),
        ] {
            let status = filtered(request).await.unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{b}: {field}");
            assert_eq!(violated_fields(&status), [field], "{b}");
        }
    }
}

#[tokio::test]
async fn enterprise_policy_is_stored_validated_and_served_part_by_part() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let (mut enterprises, _, _) = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        let get = pb::GetEnterpriseRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
        };
        let current = enterprises
            .get_enterprise(authed(get.clone(), &manager))
            .await
            .unwrap()
            .into_inner()
            .enterprise
            .unwrap();
        let policy = current.policy.clone().unwrap();
        assert_eq!(
            (
                policy.password.as_ref().unwrap().min_length,
                policy.session.as_ref().unwrap().idle_timeout_minutes
            ),
            (12, 30),
            "{b}: defaults"
        );

        let update = |policy: pb::EnterprisePolicy, paths: &[&str], etag: &str| {
            pb::UpdateEnterpriseRequest {
                enterprise: Some(pb::Enterprise {
                    id: acme.enterprise.id.0.clone(),
                    policy: Some(policy),
                    etag: etag.into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                }),
            }
        };
        let mut wanted = policy.clone();
        let session = wanted.session.as_mut().unwrap();
        session.idle_timeout_minutes = 15;
        session.overrides = vec![pb::SessionOverride {
            kind: pb::UserKind::Staff.into(),
            role_id: String::new(),
            idle_timeout_minutes: 10,
            absolute_lifetime_hours: 8,
        }];
        wanted.password.as_mut().unwrap().min_length = 4; // not in the mask: must not be applied
        assert_eq!(
            enterprises
                .update_enterprise(authed(
                    update(wanted.clone(), &["policy.session"], ""),
                    &manager
                ))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        let updated = enterprises
            .update_enterprise(authed(
                update(wanted, &["policy.session"], &current.etag),
                &admin,
            ))
            .await
            .expect("update")
            .into_inner()
            .enterprise
            .unwrap();
        let stored = updated.policy.unwrap();
        assert_eq!(
            stored.session.as_ref().unwrap().idle_timeout_minutes,
            15,
            "{b}"
        );
        assert_eq!(stored.session.as_ref().unwrap().overrides.len(), 1, "{b}");
        assert_eq!(
            stored.password.as_ref().unwrap().min_length,
            12,
            "{b}: only the masked part changes"
        );

        let mut bad = stored.clone();
        bad.ip_allowlists = vec![pb::IpAllowlist {
            kind: 0,
            role_id: String::new(),
            cidrs: vec!["10.1.2.3/8".into(), "203.0.113.0/24".into()],
        }];
        bad.session.as_mut().unwrap().idle_timeout_minutes = 0;
        let status = enterprises
            .update_enterprise(authed(update(bad, &["policy"], ""), &admin))
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            [
                "enterprise.policy.session.idle_timeout_minutes",
                "enterprise.policy.ip_allowlists[0].cidrs[0]"
            ],
            "{b}"
        );
        let mut unknown_role = stored.clone();
        unknown_role.ip_allowlists = vec![pb::IpAllowlist {
            kind: 0,
            role_id: "no-such-role".into(),
            cidrs: vec!["203.0.113.0/24".into()],
        }];
        assert_eq!(
            enterprises
                .update_enterprise(authed(
                    update(unknown_role, &["policy.ip_allowlists"], ""),
                    &admin
                ))
                .await
                .unwrap_err()
                .code(),
            Code::InvalidArgument,
            "{b}"
        );
        let mut allowlist = stored.clone();
        allowlist.ip_allowlists = vec![pb::IpAllowlist {
            kind: pb::UserKind::Staff.into(),
            role_id: String::new(),
            cidrs: vec!["203.0.113.0/24".into(), "2001:db8::/32".into()],
        }];
        enterprises
            .update_enterprise(authed(
                update(allowlist, &["policy.ip_allowlists"], ""),
                &admin,
            ))
            .await
            .expect("allowlist");
        let after = enterprises
            .get_enterprise(authed(get, &manager))
            .await
            .unwrap()
            .into_inner()
            .enterprise
            .unwrap()
            .policy
            .unwrap();
        assert_eq!(after.ip_allowlists[0].cidrs.len(), 2, "{b}");
        assert_eq!(after.session.unwrap().idle_timeout_minutes, 15, "{b}");
    }
}

#[tokio::test]
async fn d1_practices_lines_and_located_resources_change_without_stranding_anyone() {
    use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
    use praxis_proto::directory::v1::user_service_client::UserServiceClient;
    use tonic_types::StatusExt;
    let reason = |status: &tonic::Status| {
        status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone())
            .unwrap_or_default()
    };
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let (_, mut practices, _) = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff = install.token_for(&acme.user(UserKind::Staff).email).await;
        let north = &acme.practices[0];
        let mask = |paths: &[&str]| {
            Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            })
        };

        let line = |name: &str, phone: &str| pb::CreateLineRequest {
            practice_id: north.id.0.clone(),
            line: Some(pb::Line {
                id: String::new(),
                display_name: name.into(),
                phone_number: phone.into(),
            }),
        };
        assert_eq!(
            practices
                .create_line(authed(line("Fax", "+15550100099"), &staff))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        assert_eq!(
            violated_fields(
                &practices
                    .create_line(authed(line("Fax", "555-0100"), &admin))
                    .await
                    .unwrap_err()
            ),
            ["phone_number"],
            "{b}"
        );
        let fax = practices
            .create_line(authed(line("Fax", "+15550100099"), &admin))
            .await
            .expect("line")
            .into_inner()
            .line
            .unwrap();

        let resource = |kind: pb::ResourceKind, zone: &str| pb::CreateResourceRequest {
            practice_id: north.id.0.clone(),
            resource: Some(pb::Resource {
                id: String::new(),
                kind: kind.into(),
                display_name: "Main".into(),
                time_zone: zone.into(),
                provider_profile: None,
            }),
        };
        assert_eq!(
            violated_fields(
                &practices
                    .create_resource(authed(resource(pb::ResourceKind::Location, ""), &admin))
                    .await
                    .unwrap_err()
            ),
            ["time_zone"],
            "{b}"
        );
        assert_eq!(
            violated_fields(
                &practices
                    .create_resource(authed(
                        resource(pb::ResourceKind::Provider, "America/Chicago"),
                        &admin
                    ))
                    .await
                    .unwrap_err()
            ),
            ["time_zone"],
            "{b}"
        );
        let location = practices
            .create_resource(authed(
                resource(pb::ResourceKind::Location, "America/Chicago"),
                &admin,
            ))
            .await
            .expect("location")
            .into_inner()
            .resource
            .unwrap();
        assert_eq!(location.time_zone, "America/Chicago", "{b}");

        let update_line = pb::UpdateLineRequest {
            line: Some(pb::Line {
                id: fax.id.clone(),
                display_name: String::new(),
                phone_number: "+15550100098".into(),
            }),
            update_mask: mask(&["phone_number"]),
        };
        let updated = practices
            .update_line(authed(update_line, &admin))
            .await
            .expect("update line")
            .into_inner()
            .line
            .unwrap();
        assert_eq!(
            (updated.display_name.as_str(), updated.phone_number.as_str()),
            ("Fax", "+15550100098"),
            "{b}"
        );

        let current = practices
            .get_practice(authed(
                pb::GetPracticeRequest {
                    practice_id: north.id.0.clone(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .practice
            .unwrap();
        let rename = |etag: &str| pb::UpdatePracticeRequest {
            practice: Some(pb::Practice {
                id: north.id.0.clone(),
                display_name: "North Family Clinic".into(),
                etag: etag.into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
        };
        practices
            .update_practice(authed(rename(&current.etag), &admin))
            .await
            .expect("rename");
        assert_eq!(
            practices
                .update_practice(authed(rename(&current.etag), &admin))
                .await
                .unwrap_err()
                .code(),
            Code::Aborted,
            "{b}: stale etag"
        );

        // D6: the STAFF user's only line cannot go; once they have another, it can.
        let only_line = north.lines[0].id.0.clone();
        let status = practices
            .delete_line(authed(
                pb::DeleteLineRequest {
                    line_id: only_line.clone(),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "LINE_IN_USE", "{b}");
        let mut users = UserServiceClient::new(install.channel(install.addresses.directory).await);
        let give = pb::UpdatePracticeMembershipRequest {
            user_id: acme.user(UserKind::Staff).id.0.clone(),
            membership: Some(pb::PracticeMembership {
                practice_id: north.id.0.clone(),
                line_ids: vec![only_line.clone(), fax.id.clone()],
                resource_filter_ids: vec![location.id.clone()],
            }),
            etag: String::new(),
        };
        users
            .update_practice_membership(authed(give, &admin))
            .await
            .expect("second line");
        practices
            .delete_line(authed(
                pb::DeleteLineRequest {
                    line_id: only_line.clone(),
                },
                &admin,
            ))
            .await
            .expect("delete line");
        let staff_user = users
            .get_user(authed(
                pb::GetUserRequest {
                    user_id: acme.user(UserKind::Staff).id.0.clone(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert_eq!(
            staff_user.memberships[0].line_ids,
            vec![fax.id.clone()],
            "{b}"
        );

        // A location a binding is scoped to stays; filters naming a resource go with it.
        let mut bindings =
            RoleBindingServiceClient::new(install.channel(install.addresses.directory).await);
        let bind = pb::RoleBinding {
            user_id: acme.user(UserKind::Staff).id.0.clone(),
            role_id: "builtin-front-desk".into(),
            location_id: location.id.clone(),
            ..Default::default()
        };
        let binding = bindings
            .create_role_binding(authed(
                pb::CreateRoleBindingRequest {
                    binding: Some(bind),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .binding
            .unwrap();
        let status = practices
            .delete_resource(authed(
                pb::DeleteResourceRequest {
                    resource_id: location.id.clone(),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "RESOURCE_IN_USE", "{b}");
        bindings
            .delete_role_binding(authed(
                pb::DeleteRoleBindingRequest {
                    binding_id: binding.id,
                },
                &admin,
            ))
            .await
            .unwrap();
        practices
            .delete_resource(authed(
                pb::DeleteResourceRequest {
                    resource_id: location.id.clone(),
                },
                &admin,
            ))
            .await
            .expect("delete location");
        let staff_user = users
            .get_user(authed(
                pb::GetUserRequest {
                    user_id: acme.user(UserKind::Staff).id.0.clone(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert!(
            staff_user.memberships[0].resource_filter_ids.is_empty(),
            "{b}"
        );

        // A practice with members stays; an empty one goes, lines and all.
        let status = practices
            .delete_practice(authed(
                pb::DeletePracticeRequest {
                    practice_id: north.id.0.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "PRACTICE_IN_USE", "{b}");
        let empty = practices
            .create_practice(authed(
                pb::CreatePracticeRequest {
                    enterprise_id: acme.enterprise.id.0.clone(),
                    display_name: "Pop-up".into(),
                    request_id: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .practice
            .unwrap();
        practices
            .delete_practice(authed(
                pb::DeletePracticeRequest {
                    practice_id: empty.id.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .expect("delete empty practice");
        let gone = practices
            .get_practice(authed(
                pb::GetPracticeRequest {
                    practice_id: empty.id,
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound, "{b}");
    }
}
