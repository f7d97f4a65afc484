//! The data generator the load generator uses makes what it says through directory's API, on
//! SQLite and PostgreSQL, and what it makes is usable: its invited users log in through identity
//! and authz decides over them as their kinds say.

use praxis_proto::authz::v1 as authz;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_tests::datagen::{Shape, first_login, generate};

const PASSWORD: &str = "generated plum orbit 2026";
use praxis_tests::{authed, installs};

#[tokio::test]
async fn generated_enterprise_has_the_shape_asked_for_and_authz_decides_over_it() {
    for install in installs().await {
        let token = install.platform_admin_token().await;
        let directory = install.channel(install.addresses.directory).await;
        let shape = Shape {
            practices: 3,
            roles: 12,
            users: 45,
            parallel: 4,
            seed: 11,
        };
        let generated = generate(directory.clone(), &token, "Generated", &shape)
            .await
            .unwrap();
        assert_eq!(generated.practices.len(), 3, "{}", install.backend);
        assert_eq!(generated.role_ids.len(), 12);
        assert_eq!(generated.users.len(), 45);
        assert!(generated.revision > 0);
        for kind in [
            pb::UserKind::EnterpriseAdmin,
            pb::UserKind::EnterpriseContentManager,
            pb::UserKind::Manager,
            pb::UserKind::AdvancedStaff,
            pb::UserKind::Staff,
        ] {
            assert!(generated.of_kind(kind).next().is_some(), "no {kind:?}");
        }

        // Directory holds every user, in the practices the generator placed them.
        let mut users = UserServiceClient::new(directory.clone());
        let mut listed = 0;
        for practice in &generated.practices {
            let page = users
                .list_users(authed(
                    pb::ListUsersRequest {
                        enterprise_id: generated.enterprise_id.clone(),
                        practice_id: practice.id.clone(),
                        page_size: 500,
                        ..Default::default()
                    },
                    &token,
                ))
                .await
                .unwrap()
                .into_inner();
            let expected = generated
                .users
                .iter()
                .filter(|u| u.practice_id == practice.id)
                .count();
            // Enterprise-wide kinds (the admin, content managers) are listed in every practice.
            let members: Vec<&pb::User> = page
                .users
                .iter()
                .filter(|u| !u.memberships.is_empty())
                .collect();
            assert_eq!(members.len(), expected, "{}", install.backend);
            assert_eq!(page.users.len() - members.len(), 2, "{}", install.backend);
            listed += members.len();
            for user in members {
                if user.kind() == pb::UserKind::Staff {
                    assert_eq!(user.memberships[0].line_ids.len(), 1, "staff hold one line");
                }
            }
        }
        let enterprise_wide = generated
            .users
            .iter()
            .filter(|u| u.practice_id.is_empty())
            .count();
        assert_eq!(listed + enterprise_wide, 45);

        // Every practice member has the bindings the generator reports, and nobody else has any.
        let mut bindings = RoleBindingServiceClient::new(directory.clone());
        let all = bindings
            .list_role_bindings(authed(
                pb::ListRoleBindingsRequest {
                    enterprise_id: generated.enterprise_id.clone(),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner()
            .bindings;
        let reported: usize = generated.users.iter().map(|u| u.role_ids.len()).sum();
        assert!(reported >= 30, "most users are bound to a role: {reported}");
        assert_eq!(all.len(), reported);
        for user in &generated.users {
            let mut theirs: Vec<&str> = all
                .iter()
                .filter(|b| b.user_id == user.id)
                .map(|b| b.role_id.as_str())
                .collect();
            theirs.sort_unstable();
            let mut expected: Vec<&str> = user.role_ids.iter().map(String::as_str).collect();
            expected.sort_unstable();
            assert_eq!(theirs, expected, "{}", user.email);
        }

        // A2: staff read appointments in their own practice and not in another.
        let mut authz = AuthzServiceClient::new(install.channel(install.addresses.authz).await);
        let admin = generated
            .of_kind(pb::UserKind::EnterpriseAdmin)
            .next()
            .unwrap();
        let identity = install.channel(install.addresses.identity).await;
        let admin_token = first_login(identity.clone(), &token, admin, PASSWORD)
            .await
            .unwrap();
        for staff in generated.of_kind(pb::UserKind::Staff).take(3) {
            // Generated users are invited; the first login makes them active.
            first_login(identity.clone(), &admin_token, staff, PASSWORD)
                .await
                .unwrap();
            let other = generated
                .practices
                .iter()
                .find(|p| p.id != staff.practice_id)
                .unwrap();
            for (practice_id, allowed) in [(&staff.practice_id, true), (&other.id, false)] {
                let answer = authz
                    .check(authed(
                        authz::CheckRequest {
                            principal: Some(authz::Principal {
                                user_id: staff.id.clone(),
                            }),
                            permission: "appointments:read".into(),
                            resource: Some(authz::Resource {
                                r#type: "appointment".into(),
                                id: "a-1".into(),
                                enterprise_id: generated.enterprise_id.clone(),
                                practice_id: practice_id.clone(),
                                ..Default::default()
                            }),
                            min_revision: generated.revision,
                            context: None,
                        },
                        &admin_token,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(
                    answer.decision() == authz::Decision::Allow,
                    allowed,
                    "{} in {practice_id}: {:?}",
                    staff.email,
                    answer.reasons
                );
            }
        }
        install.stop().await;
    }
}
