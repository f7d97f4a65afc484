//! The directory's user rules (D2–D14) through gRPC, on every backend, each named after its
//! rule. Refused requests are checked to have changed nothing.

use praxis_directory::domain::notifier::MemoryNotifier;
use praxis_directory::domain::{Actor, UserKind};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::email_domain_service_client::EmailDomainServiceClient;
use praxis_proto::directory::v1::enterprise_service_client::EnterpriseServiceClient;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_tests::{Fixture, Install, authed, fixture, installs, violated_fields};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

struct Clients {
    users: UserServiceClient<Channel>,
    domains: EmailDomainServiceClient<Channel>,
    enterprises: EnterpriseServiceClient<Channel>,
}

async fn clients(install: &Install) -> Clients {
    let channel = install.channel(install.addresses.directory).await;
    Clients {
        users: UserServiceClient::new(channel.clone()),
        domains: EmailDomainServiceClient::new(channel.clone()),
        enterprises: EnterpriseServiceClient::new(channel),
    }
}

fn membership(
    practice: &praxis_directory::domain::Practice,
    lines: &[usize],
) -> pb::PracticeMembership {
    pb::PracticeMembership {
        practice_id: practice.id.0.clone(),
        line_ids: lines
            .iter()
            .map(|&i| practice.lines[i].id.0.clone())
            .collect(),
        resource_filter_ids: Vec::new(),
    }
}

fn new_user(
    acme: &Fixture,
    local: &str,
    kind: pb::UserKind,
    memberships: Vec<pb::PracticeMembership>,
) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        enterprise_id: acme.enterprise.id.0.clone(),
        email: format!("{local}@{}", acme.domain),
        given_name: "New".into(),
        family_name: local.into(),
        kind: kind.into(),
        memberships,
        template_user_id: String::new(),
        request_id: String::new(),
        person_id: String::new(),
    }
}

async fn user_count(c: &mut Clients, token: &str, acme: &Fixture) -> usize {
    let list = pb::ListUsersRequest {
        enterprise_id: acme.enterprise.id.0.clone(),
        page_size: 500,
        ..Default::default()
    };
    c.users
        .list_users(authed(list, token))
        .await
        .expect("list")
        .into_inner()
        .users
        .len()
}

async fn get(c: &mut Clients, token: &str, id: &str) -> pb::User {
    c.users
        .get_user(authed(pb::GetUserRequest { user_id: id.into() }, token))
        .await
        .expect("get")
        .into_inner()
        .user
        .expect("user")
}

#[tokio::test]
async fn d2_only_allowlisted_non_generic_domains_of_one_enterprise() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let other = fixture(&install, "Other").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let add = |domain: &str| pb::AddEmailDomainRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            domain: domain.into(),
        };

        let status = c
            .domains
            .add_email_domain(authed(add("GMAIL.com"), &admin))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::FailedPrecondition, "GENERIC_EMAIL_DOMAIN"),
            "{b}"
        );
        let status = c
            .domains
            .add_email_domain(authed(add(&other.domain), &admin))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::FailedPrecondition, "EMAIL_DOMAIN_TAKEN"),
            "{b}"
        );
        let status = c
            .domains
            .add_email_domain(authed(add("not a domain"), &admin))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["domain"], "{b}");
        let staff = install.token_for(&acme.user(UserKind::Staff).email).await;
        let status = c
            .domains
            .add_email_domain(authed(add("staff-pick.test"), &staff))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");
        let added = c
            .domains
            .add_email_domain(authed(add("North-Clinic.test"), &admin))
            .await
            .expect("add")
            .into_inner();
        assert_eq!(
            added.email_domain.unwrap().domain,
            "north-clinic.test",
            "{b}"
        );

        // A user on a domain the enterprise has not allowlisted: refused, nothing created.
        let before = user_count(&mut c, &admin, &acme).await;
        let mut outsider = new_user(&acme, "ann", pb::UserKind::EnterpriseAdmin, vec![]);
        outsider.email = format!("ann@{}", other.domain);
        let status = c
            .users
            .create_user(authed(outsider, &admin))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::FailedPrecondition, "EMAIL_DOMAIN_NOT_ALLOWED"),
            "{b}"
        );
        let mut on_new_domain = new_user(&acme, "bea", pb::UserKind::EnterpriseAdmin, vec![]);
        on_new_domain.email = "bea@north-clinic.test".into();
        c.users
            .create_user(authed(on_new_domain, &admin))
            .await
            .expect("allowlisted domain");
        assert_eq!(user_count(&mut c, &admin, &acme).await, before + 1, "{b}");

        let remove = pb::RemoveEmailDomainRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            domain: "north-clinic.test".into(),
        };
        c.domains
            .remove_email_domain(authed(remove, &admin))
            .await
            .expect("remove");
        let mut after_removal = new_user(&acme, "cal", pb::UserKind::EnterpriseAdmin, vec![]);
        after_removal.email = "cal@north-clinic.test".into();
        let status = c
            .users
            .create_user(authed(after_removal, &admin))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "EMAIL_DOMAIN_NOT_ALLOWED", "{b}");
        let listed = c
            .domains
            .list_email_domains(authed(
                pb::ListEmailDomainsRequest {
                    enterprise_id: acme.enterprise.id.0.clone(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed
                .email_domains
                .iter()
                .map(|d| d.domain.clone())
                .collect::<Vec<_>>(),
            vec![acme.domain.clone()],
            "{b}"
        );
    }
}

#[tokio::test]
async fn d6_staff_need_a_line_and_everything_belongs_to_the_practice() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let before = user_count(&mut c, &admin, &acme).await;
        let (north, south) = (&acme.practices[0], &acme.practices[1]);

        let no_line = new_user(
            &acme,
            "dan",
            pb::UserKind::Staff,
            vec![membership(north, &[])],
        );
        let status = c
            .users
            .create_user(authed(no_line, &admin))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{b}");
        assert_eq!(violated_fields(&status), ["memberships[0].line_ids"], "{b}");

        let mut foreign_line = membership(north, &[]);
        foreign_line.line_ids = vec![south.lines[0].id.0.clone()];
        let status = c
            .users
            .create_user(authed(
                new_user(&acme, "eve", pb::UserKind::Staff, vec![foreign_line]),
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), ["memberships[0].line_ids"], "{b}");

        let no_membership = new_user(&acme, "fay", pb::UserKind::Manager, vec![]);
        assert_eq!(
            violated_fields(
                &c.users
                    .create_user(authed(no_membership, &admin))
                    .await
                    .unwrap_err()
            ),
            ["memberships"],
            "{b}"
        );
        let manager_with_lines = new_user(
            &acme,
            "gus",
            pb::UserKind::Manager,
            vec![membership(north, &[0])],
        );
        assert_eq!(
            violated_fields(
                &c.users
                    .create_user(authed(manager_with_lines, &admin))
                    .await
                    .unwrap_err()
            ),
            ["memberships[0].line_ids"],
            "{b}"
        );
        let admin_with_practice = new_user(
            &acme,
            "hal",
            pb::UserKind::EnterpriseAdmin,
            vec![membership(north, &[])],
        );
        assert_eq!(
            violated_fields(
                &c.users
                    .create_user(authed(admin_with_practice, &admin))
                    .await
                    .unwrap_err()
            ),
            ["memberships"],
            "{b}"
        );
        let mut bad_everything = new_user(&acme, "x", pb::UserKind::Staff, vec![]);
        bad_everything.email = "not-an-email".into();
        bad_everything.given_name = " ".into();
        let status = c
            .users
            .create_user(authed(bad_everything, &admin))
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            ["email", "given_name"],
            "{b}: every problem at once"
        );
        assert_eq!(
            user_count(&mut c, &admin, &acme).await,
            before,
            "{b}: a refused create changed something"
        );

        // Resource filters are stored and returned, and must be the practice's own.
        let provider = install
            .directory
            .add_resource(
                &praxis_directory::domain::Actor::Operator,
                &north.id,
                praxis_directory::domain::ResourceKind::Provider,
                "Dr. Who",
                None,
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .0;
        let mut with_filter = membership(north, &[1]);
        with_filter.resource_filter_ids = vec![provider.id.0.clone()];
        let created = c
            .users
            .create_user(authed(
                new_user(&acme, "ivy", pb::UserKind::Staff, vec![with_filter]),
                &admin,
            ))
            .await
            .expect("create")
            .into_inner();
        let m = &created.user.unwrap().memberships[0];
        assert_eq!(
            (m.line_ids.clone(), m.resource_filter_ids.clone()),
            (
                vec![north.lines[1].id.0.clone()],
                vec![provider.id.0.clone()]
            ),
            "{b}"
        );
    }
}

#[tokio::test]
async fn d10_creation_rights_follow_kind_practice_and_min_access() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff = install.token_for(&acme.user(UserKind::Staff).email).await;
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        let (north, south) = (&acme.practices[0], &acme.practices[1]);

        // Default STAFF: staff create staff in their own practice, nothing else.
        c.users
            .create_user(authed(
                new_user(
                    &acme,
                    "s1",
                    pb::UserKind::Staff,
                    vec![membership(north, &[0])],
                ),
                &staff,
            ))
            .await
            .expect("staff creates staff");
        for (request, what) in [
            (
                new_user(
                    &acme,
                    "s2",
                    pb::UserKind::Manager,
                    vec![membership(north, &[])],
                ),
                "a manager",
            ),
            (
                new_user(
                    &acme,
                    "s3",
                    pb::UserKind::Staff,
                    vec![membership(south, &[0])],
                ),
                "in another practice",
            ),
        ] {
            let status = c
                .users
                .create_user(authed(request, &staff))
                .await
                .unwrap_err();
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{b}: staff created {what}"
            );
        }
        c.users
            .create_user(authed(
                new_user(
                    &acme,
                    "m1",
                    pb::UserKind::Manager,
                    vec![membership(north, &[])],
                ),
                &manager,
            ))
            .await
            .expect("manager creates manager");
        let status = c
            .users
            .create_user(authed(
                new_user(&acme, "m2", pb::UserKind::EnterpriseAdmin, vec![]),
                &manager,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");

        // MANAGER: staff lose the right.
        let set = |level: pb::MinAccess, etag: String| pb::UpdateEnterpriseRequest {
            enterprise: Some(pb::Enterprise {
                id: acme.enterprise.id.0.clone(),
                user_creation_min_access: level.into(),
                etag,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["user_creation_min_access".into()],
            }),
        };
        let status = c
            .enterprises
            .update_enterprise(authed(
                set(pb::MinAccess::Enterprise, String::new()),
                &manager,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{b}: only admins change settings"
        );
        let updated = c
            .enterprises
            .update_enterprise(authed(set(pb::MinAccess::Manager, String::new()), &admin))
            .await
            .expect("update")
            .into_inner()
            .enterprise
            .unwrap();
        let status = c
            .users
            .create_user(authed(
                new_user(
                    &acme,
                    "s4",
                    pb::UserKind::Staff,
                    vec![membership(north, &[0])],
                ),
                &staff,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");

        // ENTERPRISE: managers create nobody (the guides' example).
        let stale = c
            .enterprises
            .update_enterprise(authed(
                set(pb::MinAccess::Enterprise, "\"1\"".into()),
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            stale.code(),
            Code::Aborted,
            "{b}: a stale etag must not win"
        );
        c.enterprises
            .update_enterprise(authed(
                set(pb::MinAccess::Enterprise, updated.etag.clone()),
                &admin,
            ))
            .await
            .expect("update");
        let status = c
            .users
            .create_user(authed(
                new_user(
                    &acme,
                    "m3",
                    pb::UserKind::Staff,
                    vec![membership(north, &[0])],
                ),
                &manager,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");
        c.users
            .create_user(authed(
                new_user(
                    &acme,
                    "a1",
                    pb::UserKind::Staff,
                    vec![membership(south, &[1])],
                ),
                &admin,
            ))
            .await
            .expect("admins create everyone");
    }
}

#[tokio::test]
async fn d11_staff_never_edit_others_and_managers_only_their_practices() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff = install.token_for(&acme.user(UserKind::Staff).email).await;
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        let (north, south) = (&acme.practices[0], &acme.practices[1]);
        // Staff may create this colleague, yet may not edit or disable them (the guides' example).
        let colleague = c
            .users
            .create_user(authed(
                new_user(
                    &acme,
                    "col",
                    pb::UserKind::Staff,
                    vec![membership(north, &[0])],
                ),
                &staff,
            ))
            .await
            .expect("create")
            .into_inner()
            .user
            .unwrap();
        let rename = |user: &pb::User, name: &str| pb::UpdateUserRequest {
            user: Some(pb::User {
                id: user.id.clone(),
                given_name: name.into(),
                etag: user.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into()],
            }),
        };
        assert_eq!(
            c.users
                .update_user(authed(rename(&colleague, "Mallory"), &staff))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        assert_eq!(
            c.users
                .disable_user(authed(
                    pb::DisableUserRequest {
                        user_id: colleague.id.clone(),
                        etag: String::new()
                    },
                    &staff
                ))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        assert_eq!(
            get(&mut c, &admin, &colleague.id).await.given_name,
            "New",
            "{b}: a refused edit changed the user"
        );

        // Users rename themselves.
        let me = get(&mut c, &staff, &acme.user(UserKind::Staff).id.0).await;
        c.users
            .update_user(authed(rename(&me, "Sam"), &staff))
            .await
            .expect("self rename");

        // Managers edit their practices' users, not others, and never enterprise-level users.
        let renamed = c
            .users
            .update_user(authed(rename(&colleague, "Colin"), &manager))
            .await
            .expect("manager edits staff")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(renamed.given_name, "Colin", "{b}");
        let southerner = c
            .users
            .create_user(authed(
                new_user(
                    &acme,
                    "sou",
                    pb::UserKind::Staff,
                    vec![membership(south, &[0])],
                ),
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();
        assert_eq!(
            c.users
                .update_user(authed(rename(&southerner, "X"), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        let boss = get(&mut c, &admin, &acme.user(UserKind::EnterpriseAdmin).id.0).await;
        assert_eq!(
            c.users
                .update_user(authed(rename(&boss, "X"), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );

        // A stale etag is ABORTED, an unknown mask path INVALID_ARGUMENT; neither changes anything.
        let stale = c
            .users
            .update_user(authed(rename(&colleague, "Stale"), &admin))
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::Aborted, "{b}");
        let mut bad_mask = rename(&renamed, "Y");
        bad_mask.update_mask = Some(prost_types::FieldMask {
            paths: vec!["kind".into()],
        });
        assert_eq!(
            violated_fields(
                &c.users
                    .update_user(authed(bad_mask, &admin))
                    .await
                    .unwrap_err()
            ),
            ["update_mask"],
            "{b}"
        );
        assert_eq!(
            get(&mut c, &admin, &colleague.id).await.given_name,
            "Colin",
            "{b}"
        );
    }
}

#[tokio::test]
async fn d4_d5_d7_d9_kinds_and_memberships() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let (north, south) = (&acme.practices[0], &acme.practices[1]);
        // An active STAFF user of north, line 0 (invited users act only once activated).
        let user = get(&mut c, &admin, &acme.user(UserKind::Staff).id.0).await;

        // D4: one kind everywhere.
        let add =
            |kind: pb::UserKind, m: pb::PracticeMembership| pb::AddPracticeMembershipRequest {
                user_id: user.id.clone(),
                kind: kind.into(),
                membership: Some(m),
                etag: String::new(),
            };
        let status = c
            .users
            .add_practice_membership(authed(
                add(pb::UserKind::Manager, membership(south, &[])),
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::FailedPrecondition, "USER_KIND_MISMATCH"),
            "{b}"
        );
        let user = c
            .users
            .add_practice_membership(authed(
                add(pb::UserKind::Staff, membership(south, &[1])),
                &admin,
            ))
            .await
            .expect("same kind")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(user.memberships.len(), 2, "{b}");

        // D5: made MANAGER in north, the user loses south, and the answer says so.
        let upgrade = pb::ChangeUserKindRequest {
            user_id: user.id.clone(),
            kind: pb::UserKind::Manager.into(),
            practice_id: north.id.0.clone(),
            line_ids: vec![],
            etag: user.etag.clone(),
        };
        let changed = c
            .users
            .change_user_kind(authed(upgrade, &admin))
            .await
            .expect("upgrade")
            .into_inner();
        assert_eq!(
            changed
                .revoked_memberships
                .iter()
                .map(|m| m.practice_id.clone())
                .collect::<Vec<_>>(),
            vec![south.id.0.clone()],
            "{b}"
        );
        let manager = changed.user.unwrap();
        assert_eq!(manager.memberships.len(), 1, "{b}");
        assert_eq!(
            manager.memberships[0].line_ids.len(),
            north.lines.len(),
            "{b}: managers hold every line"
        );

        // D7: lines added later reach managers too.
        let new_line = install
            .directory
            .add_line(
                &praxis_directory::domain::Actor::Operator,
                &north.id,
                "Late line",
                "+15550109999",
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .0;
        let manager = get(&mut c, &admin, &manager.id).await;
        assert!(
            manager.memberships[0].line_ids.contains(&new_line.id.0),
            "{b}"
        );

        // D5: back to STAFF needs a line in the same request.
        let mut downgrade = pb::ChangeUserKindRequest {
            user_id: manager.id.clone(),
            kind: pb::UserKind::Staff.into(),
            practice_id: north.id.0.clone(),
            line_ids: vec![],
            etag: manager.etag.clone(),
        };
        assert_eq!(
            violated_fields(
                &c.users
                    .change_user_kind(authed(downgrade.clone(), &admin))
                    .await
                    .unwrap_err()
            ),
            ["line_ids"],
            "{b}"
        );
        downgrade.line_ids = vec![new_line.id.0.clone()];
        let staff_again = c
            .users
            .change_user_kind(authed(downgrade, &admin))
            .await
            .expect("downgrade")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(
            staff_again.memberships[0].line_ids,
            vec![new_line.id.0.clone()],
            "{b}"
        );

        // D9: to enterprise level in one step, same id, then acting as an admin.
        let promote = pb::ChangeUserKindRequest {
            user_id: staff_again.id.clone(),
            kind: pb::UserKind::EnterpriseAdmin.into(),
            practice_id: String::new(),
            line_ids: vec![],
            etag: String::new(),
        };
        let promoted = c
            .users
            .change_user_kind(authed(promote, &admin))
            .await
            .expect("promote")
            .into_inner();
        let promoted_user = promoted.user.unwrap();
        assert_eq!(
            (promoted_user.id.as_str(), promoted_user.memberships.len()),
            (user.id.as_str(), 0),
            "{b}"
        );
        assert_eq!(promoted.revoked_memberships.len(), 1, "{b}");
        let now_admin = install.token_for(&promoted_user.email).await;
        let domains = c
            .domains
            .list_email_domains(authed(
                pb::ListEmailDomainsRequest {
                    enterprise_id: acme.enterprise.id.0.clone(),
                },
                &now_admin,
            ))
            .await;
        assert!(domains.is_ok(), "{b}");
        let mut practices =
            praxis_proto::directory::v1::practice_service_client::PracticeServiceClient::new(
                install.channel(install.addresses.directory).await,
            );
        practices
            .create_practice(authed(
                pb::CreatePracticeRequest {
                    enterprise_id: acme.enterprise.id.0.clone(),
                    display_name: "East".into(),
                    request_id: String::new(),
                },
                &now_admin,
            ))
            .await
            .expect("the promoted user administers at once");
    }
}

#[tokio::test]
async fn d12_template_and_d13_invitation() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let template = acme.user(UserKind::Staff);
        let mut copy = new_user(&acme, "tom", pb::UserKind::Staff, vec![]);
        copy.template_user_id = template.id.0.clone();
        copy.request_id = "invite-tom".into();
        let created = c
            .users
            .create_user(authed(copy.clone(), &admin))
            .await
            .expect("from template")
            .into_inner();
        let tom = created.user.unwrap();
        assert_eq!(
            tom.memberships[0].line_ids,
            template.memberships[0]
                .line_ids
                .iter()
                .map(|l| l.0.clone())
                .collect::<Vec<_>>(),
            "{b}"
        );
        assert_eq!(tom.status(), pb::UserStatus::Invited, "{b}");
        let expires =
            created.invitation_expire_time.unwrap().seconds - chrono::Utc::now().timestamp();
        assert!(
            (71 * 3600..=72 * 3600).contains(&expires),
            "{b}: invitation expires in {expires}s"
        );
        let retried = c
            .users
            .create_user(authed(copy, &admin))
            .await
            .expect("retry")
            .into_inner();
        assert_eq!(
            retried.user.unwrap().id,
            tom.id,
            "{b}: a retried create made a second user"
        );

        // An invited user acts only once activated.
        let invited = install.token_for(&tom.email).await;
        let by_invited = new_user(
            &acme,
            "vic",
            pb::UserKind::Staff,
            vec![membership(&acme.practices[0], &[0])],
        );
        assert_eq!(
            c.users
                .create_user(authed(by_invited, &invited))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );

        let mut manager_template = new_user(&acme, "ugo", pb::UserKind::Staff, vec![]);
        manager_template.template_user_id = acme.user(UserKind::Manager).id.0.clone();
        let status = c
            .users
            .create_user(authed(manager_template, &admin))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "TEMPLATE_NOT_STAFF", "{b}");

        // The install's relay hands the invitation to its notifier, once, with a link.
        let mut invitations = Vec::new();
        for _ in 0..100 {
            invitations = install
                .notifier
                .delivered()
                .into_iter()
                .filter(|n| n.recipient == tom.email)
                .collect();
            if !invitations.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(invitations.len(), 1, "{b}");
        let payload: serde_json::Value = serde_json::from_str(&invitations[0].payload).unwrap();
        let link = payload["activation_url"].as_str().unwrap();
        let token = link.split("token=").nth(1).unwrap();
        assert!(token.len() >= 43, "{b}: {link}");
        // Nothing is left to send, and a further relay round sends nothing again.
        // A second relay, as another replica would run, finds nothing to send twice.
        let sink = MemoryNotifier::default();
        install
            .directory
            .relay_outbox(&sink, chrono::Utc::now())
            .await
            .unwrap();
        assert!(
            sink.delivered().iter().all(|n| n.recipient != tom.email),
            "{b}: delivered twice"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let again = install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.recipient == tom.email)
            .count();
        assert_eq!(again, 1, "{b}: delivered twice");
    }
}

#[tokio::test]
async fn d14_disable_enable_and_tombstones() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        let target = acme.user(UserKind::Staff).id.0.clone();

        let disabled = c
            .users
            .disable_user(authed(
                pb::DisableUserRequest {
                    user_id: target.clone(),
                    etag: String::new(),
                },
                &manager,
            ))
            .await
            .expect("disable")
            .into_inner();
        assert_eq!(
            disabled.user.unwrap().status(),
            pb::UserStatus::Disabled,
            "{b}"
        );
        let enabled = c
            .users
            .enable_user(authed(
                pb::EnableUserRequest {
                    user_id: target.clone(),
                    etag: String::new(),
                },
                &manager,
            ))
            .await
            .expect("enable")
            .into_inner();
        assert_eq!(
            enabled.user.unwrap().status(),
            pb::UserStatus::Active,
            "{b}"
        );

        let status = c
            .users
            .delete_user(authed(
                pb::DeleteUserRequest {
                    user_id: target.clone(),
                    etag: String::new(),
                },
                &manager,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{b}: only admins delete"
        );
        let self_delete = pb::DeleteUserRequest {
            user_id: acme.user(UserKind::EnterpriseAdmin).id.0.clone(),
            etag: String::new(),
        };
        assert_eq!(
            reason(
                &c.users
                    .delete_user(authed(self_delete, &admin))
                    .await
                    .unwrap_err()
            ),
            "SELF_ACTION",
            "{b}"
        );
        c.users
            .delete_user(authed(
                pb::DeleteUserRequest {
                    user_id: target.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .expect("delete");
        let gone = c
            .users
            .get_user(authed(
                pb::GetUserRequest {
                    user_id: target.clone(),
                },
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Code::NotFound, "{b}");
        let tombstones = pb::ListUsersRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            status: pb::UserStatus::Deleted.into(),
            ..Default::default()
        };
        let listed = c
            .users
            .list_users(authed(tombstones, &admin))
            .await
            .unwrap()
            .into_inner()
            .users;
        assert_eq!(
            listed.iter().map(|u| u.id.clone()).collect::<Vec<_>>(),
            [target],
            "{b}: the tombstone stays"
        );
    }
}

#[tokio::test]
async fn concurrent_kind_and_membership_changes_never_mix_kinds() {
    for install in installs().await {
        let b = install.backend.clone();
        let acme = fixture(&install, "Acme").await;
        let c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let (north, south) = (acme.practices[0].clone(), acme.practices[1].clone());
        let user = c
            .users
            .clone()
            .create_user(authed(
                new_user(
                    &acme,
                    "zed",
                    pb::UserKind::Staff,
                    vec![membership(&north, &[0])],
                ),
                &admin,
            ))
            .await
            .unwrap()
            .into_inner()
            .user
            .unwrap();

        let mut tasks = Vec::new();
        for round in 0..12 {
            let mut users = c.users.clone();
            let (admin, id, north, south) =
                (admin.clone(), user.id.clone(), north.clone(), south.clone());
            tasks.push(tokio::spawn(async move {
                let outcome = if round % 2 == 0 {
                    let kind = if round % 4 == 0 {
                        pb::UserKind::Manager
                    } else {
                        pb::UserKind::AdvancedStaff
                    };
                    let request = pb::ChangeUserKindRequest {
                        user_id: id,
                        kind: kind.into(),
                        practice_id: north.id.0.clone(),
                        line_ids: vec![],
                        etag: String::new(),
                    };
                    users
                        .change_user_kind(authed(request, &admin))
                        .await
                        .map(|_| ())
                } else {
                    let request = pb::AddPracticeMembershipRequest {
                        user_id: id,
                        kind: pb::UserKind::Staff.into(),
                        membership: Some(membership(&south, &[0])),
                        etag: String::new(),
                    };
                    users
                        .add_practice_membership(authed(request, &admin))
                        .await
                        .map(|_| ())
                };
                // Losing a race is ABORTED (or the rule that now applies); never a broken user.
                if let Err(status) = &outcome {
                    assert!(
                        matches!(
                            status.code(),
                            Code::Aborted | Code::FailedPrecondition | Code::AlreadyExists
                        ),
                        "{status:?}"
                    );
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let after = get(&mut clients(&install).await, &admin, &user.id).await;
        match after.kind() {
            pb::UserKind::Staff => assert!(
                after.memberships.iter().all(|m| !m.line_ids.is_empty()),
                "{b}: {after:?}"
            ),
            pb::UserKind::Manager | pb::UserKind::AdvancedStaff => {
                assert_eq!(
                    after.memberships.len(),
                    1,
                    "{b}: a manager kept a STAFF membership: {after:?}"
                )
            }
            other => panic!("{b}: unexpected kind {other:?}"),
        }

        // Parallel creates with one email make exactly one user.
        let mut creates = Vec::new();
        for _ in 0..8 {
            let mut users = c.users.clone();
            let request = new_user(&acme, "twin", pb::UserKind::EnterpriseAdmin, vec![]);
            let admin = admin.clone();
            creates.push(tokio::spawn(async move {
                users
                    .create_user(authed(request, &admin))
                    .await
                    .map(|_| ())
                    .map_err(|s| s.code())
            }));
        }
        let mut made = 0;
        for create in creates {
            match create.await.unwrap() {
                Ok(()) => made += 1,
                Err(code) => assert_eq!(code, Code::AlreadyExists, "{b}"),
            }
        }
        assert_eq!(made, 1, "{b}");
    }
}

#[tokio::test]
async fn d18_every_write_returns_its_revision_and_leaves_one_chained_audit_event() {
    use praxis_store::sea_orm::ConnectionTrait;
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let store = install.directory.store();
        let events = store.audit_events(&acme.enterprise.id).await.unwrap();
        assert_eq!(
            events.len() as i64,
            acme.enterprise.revision,
            "{b}: one event per revision"
        );

        let created = c
            .users
            .create_user(authed(
                new_user(
                    &acme,
                    "aud",
                    pb::UserKind::Staff,
                    vec![membership(&acme.practices[0], &[0])],
                ),
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        let disabled = c
            .users
            .disable_user(authed(
                pb::DisableUserRequest {
                    user_id: created.user.as_ref().unwrap().id.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(disabled.revision, created.revision + 1, "{b}");
        // A refused write records nothing.
        let staff = install.token_for(&acme.user(UserKind::Staff).email).await;
        let _ = c
            .users
            .enable_user(authed(
                pb::EnableUserRequest {
                    user_id: created.user.as_ref().unwrap().id.clone(),
                    etag: String::new(),
                },
                &staff,
            ))
            .await
            .unwrap_err();

        let events = store.audit_events(&acme.enterprise.id).await.unwrap();
        let last = events.last().unwrap();
        assert_eq!(
            (last.seq, last.action.as_str()),
            (disabled.revision, "user.disable"),
            "{b}"
        );
        assert_eq!(
            last.actor,
            format!("user:{}", acme.user(UserKind::EnterpriseAdmin).id),
            "{b}"
        );
        assert_eq!(events[events.len() - 2].action, "user.create", "{b}");
        assert_eq!(
            store.verify_chain(&acme.enterprise.id).await.unwrap(),
            None,
            "{b}"
        );

        // Any alteration is found, at the event altered (past the database's guard).
        let db = store.connection();
        praxis_tests::drop_audit_guard(db).await;
        let tampered = events[2].seq;
        db.execute_unprepared(&format!("UPDATE audit_events SET target = 'user:someone-else' WHERE enterprise_id = '{}' AND seq = {tampered}", acme.enterprise.id)).await.unwrap();
        assert_eq!(
            store
                .verify_chain(&acme.enterprise.id)
                .await
                .unwrap()
                .map(|broken| broken.seq),
            Some(tampered),
            "{b}"
        );
        db.execute_unprepared(&format!(
            "UPDATE audit_events SET target = '{}' WHERE enterprise_id = '{}' AND seq = {tampered}",
            events[2].target, acme.enterprise.id
        ))
        .await
        .unwrap();
        assert_eq!(
            store.verify_chain(&acme.enterprise.id).await.unwrap(),
            None,
            "{b}: restored"
        );
        db.execute_unprepared(&format!(
            "DELETE FROM audit_events WHERE enterprise_id = '{}' AND seq = 4",
            acme.enterprise.id
        ))
        .await
        .unwrap();
        assert_eq!(
            store
                .verify_chain(&acme.enterprise.id)
                .await
                .unwrap()
                .map(|broken| broken.seq),
            Some(5),
            "{b}: a removed event breaks the next link"
        );
    }
}

#[tokio::test]
async fn committed_revisions_are_announced_on_the_cache() {
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut announcements = install
            .cache
            .subscribe(praxis_directory::REVISIONS_CHANNEL)
            .await
            .unwrap();
        let mut c = clients(&install).await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let disabled = c
            .users
            .disable_user(authed(
                pb::DisableUserRequest {
                    user_id: acme.user(UserKind::Staff).id.0.clone(),
                    etag: String::new(),
                },
                &admin,
            ))
            .await
            .unwrap()
            .into_inner();
        let wanted = serde_json::json!({"enterprise_id": acme.enterprise.id.0, "revision": disabled.revision});
        let mut heard = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = false;
        while let Ok(Some(praxis_cache::Notice::Message(bytes))) =
            tokio::time::timeout_at(deadline, announcements.next()).await
        {
            let message: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if message == wanted {
                found = true;
                break;
            }
            heard.push(message);
        }
        assert!(found, "{b}: {wanted} never announced; heard {heard:?}");
        // A refused write announces nothing of this enterprise.
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        let _ = c
            .users
            .delete_user(authed(
                pb::DeleteUserRequest {
                    user_id: acme.user(UserKind::Staff).id.0.clone(),
                    etag: String::new(),
                },
                &manager,
            ))
            .await
            .unwrap_err();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
        while let Ok(Some(praxis_cache::Notice::Message(bytes))) =
            tokio::time::timeout_at(deadline, announcements.next()).await
        {
            let message: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_ne!(
                message["enterprise_id"],
                acme.enterprise.id.0.as_str(),
                "{b}: a refused write was announced"
            );
        }
    }
}

#[tokio::test]
async fn d19_access_review_flags_and_the_inactivity_sweep() {
    use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let now = chrono::Utc::now();
        let store = install.directory.store();
        let (admin_user, manager_user, staff_user) = (
            acme.user(UserKind::EnterpriseAdmin),
            acme.user(UserKind::Manager),
            acme.user(UserKind::Staff),
        );
        store
            .record_login(&admin_user.id, now - chrono::Duration::days(1))
            .await
            .unwrap();
        store
            .record_login(&manager_user.id, now - chrono::Duration::days(200))
            .await
            .unwrap();
        let admin = install.token_for(&admin_user.email).await;
        let ts = |t: chrono::DateTime<chrono::Utc>| {
            Some(prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: 0,
            })
        };
        let mut bindings =
            RoleBindingServiceClient::new(install.channel(install.addresses.directory).await);
        for (user, from, until) in [
            (
                &staff_user.id,
                now - chrono::Duration::days(1),
                now + chrono::Duration::days(7),
            ),
            (
                &manager_user.id,
                now - chrono::Duration::days(30),
                now - chrono::Duration::days(1),
            ),
        ] {
            let binding = pb::RoleBinding {
                user_id: user.0.clone(),
                role_id: "builtin-billing".into(),
                valid_from: ts(from),
                valid_until: ts(until),
                ..Default::default()
            };
            bindings
                .create_role_binding(authed(
                    pb::CreateRoleBindingRequest {
                        binding: Some(binding),
                    },
                    &admin,
                ))
                .await
                .expect("bind");
        }

        let review = pb::ReviewAccessRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            inactive_days: 90,
            page_size: 100,
            page_token: String::new(),
        };
        let manager = install.token_for(&manager_user.email).await;
        assert_eq!(
            c.users
                .review_access(authed(review.clone(), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        let entries = c
            .users
            .review_access(authed(review, &admin))
            .await
            .expect("review")
            .into_inner()
            .entries;
        let flags_of = |id: &str| -> Vec<pb::AccessFlag> {
            entries
                .iter()
                .find(|e| e.user.as_ref().unwrap().id == id)
                .unwrap()
                .flags()
                .collect()
        };
        assert_eq!(flags_of(&admin_user.id.0), vec![], "{b}");
        assert_eq!(
            flags_of(&manager_user.id.0),
            vec![pb::AccessFlag::Inactive, pb::AccessFlag::ExpiredRole],
            "{b}"
        );
        assert_eq!(
            flags_of(&staff_user.id.0),
            vec![pb::AccessFlag::NeverLoggedIn, pb::AccessFlag::ExpiringRole],
            "{b}"
        );
        let staff_entry = entries
            .iter()
            .find(|e| e.user.as_ref().unwrap().id == staff_user.id.0)
            .unwrap();
        assert_eq!(staff_entry.role_ids, ["builtin-billing"], "{b}");

        // No limit set: the sweep leaves everyone alone.
        assert_eq!(
            install.directory.disable_inactive_users(now).await.unwrap(),
            0,
            "{b}"
        );
        let mut policy = install
            .directory
            .get_enterprise(&Actor::Operator, &acme.enterprise.id)
            .await
            .unwrap()
            .policy;
        policy.inactivity_limit_days = 30;
        let change = praxis_directory::domain::service::EnterpriseChange {
            policy: Some(policy),
            ..Default::default()
        };
        install
            .directory
            .update_enterprise(&Actor::Operator, &acme.enterprise.id, None, change, now)
            .await
            .unwrap();
        assert_eq!(
            install.directory.disable_inactive_users(now).await.unwrap(),
            1,
            "{b}: only the manager idled 200 days"
        );
        let manager_now = get(&mut c, &admin, &manager_user.id.0).await;
        assert_eq!(manager_now.status(), pb::UserStatus::Disabled, "{b}");
        let events = store.audit_events(&acme.enterprise.id).await.unwrap();
        assert_eq!(
            (
                events.last().unwrap().actor.as_str(),
                events.last().unwrap().action.as_str()
            ),
            ("system:inactivity", "user.disable"),
            "{b}"
        );
        // Forty days on, the accounts that never logged in are past the limit too; the admin, who
        // logged in yesterday, is too by then.
        let later = install
            .directory
            .disable_inactive_users(now + chrono::Duration::days(40))
            .await
            .unwrap();
        assert_eq!(later, acme.users.len() - 1, "{b}");
    }
}

#[tokio::test]
async fn d15_persons_own_their_email_and_providers_carry_profiles() {
    use praxis_proto::directory::v1::person_service_client::PersonServiceClient;
    use praxis_proto::directory::v1::practice_service_client::PracticeServiceClient;
    for install in installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let mut c = clients(&install).await;
        let channel = install.channel(install.addresses.directory).await;
        let mut persons = PersonServiceClient::new(channel.clone());
        let mut practices = PracticeServiceClient::new(channel);
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let manager = install.token_for(&acme.user(UserKind::Manager).email).await;
        let create = |email: &str| pb::CreatePersonRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            person: Some(pb::Person {
                email: email.into(),
                given_name: "Ada".into(),
                family_name: "North".into(),
                phone_number: "+15550101234".into(),
                ..Default::default()
            }),
        };
        let email = format!("ada@{}", acme.domain);
        assert_eq!(
            persons
                .create_person(authed(create(&email), &manager))
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{b}"
        );
        let person = persons
            .create_person(authed(create(&email), &admin))
            .await
            .expect("person without login")
            .into_inner()
            .person
            .unwrap();
        assert!(person.user_id.is_empty(), "{b}");
        assert_eq!(
            persons
                .create_person(authed(create(&email), &admin))
                .await
                .unwrap_err()
                .code(),
            Code::AlreadyExists,
            "{b}"
        );

        // A login made from the person takes the person's email and names.
        let mut from_person = new_user(
            &acme,
            "ignored",
            pb::UserKind::Staff,
            vec![membership(&acme.practices[0], &[0])],
        );
        from_person.email = String::new();
        from_person.given_name = String::new();
        from_person.family_name = String::new();
        from_person.person_id = person.id.clone();
        let user = c
            .users
            .create_user(authed(from_person.clone(), &admin))
            .await
            .expect("login from person")
            .into_inner()
            .user
            .unwrap();
        assert_eq!(
            (user.email.as_str(), user.given_name.as_str()),
            (email.as_str(), "Ada"),
            "{b}"
        );
        let linked = persons
            .get_person(authed(
                pb::GetPersonRequest {
                    person_id: person.id.clone(),
                },
                &manager,
            ))
            .await
            .unwrap()
            .into_inner()
            .person
            .unwrap();
        assert_eq!(linked.user_id, user.id, "{b}");
        let status = c
            .users
            .create_user(authed(from_person, &admin))
            .await
            .unwrap_err();
        assert_eq!(
            status
                .get_error_details()
                .error_info()
                .map(|i| i.reason.clone())
                .unwrap_or_default(),
            "PERSON_HAS_LOGIN",
            "{b}"
        );

        // The person owns the names: a rename reaches the login.
        let rename = pb::UpdatePersonRequest {
            person: Some(pb::Person {
                id: person.id.clone(),
                given_name: "Adele".into(),
                etag: linked.etag.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["given_name".into()],
            }),
        };
        persons
            .update_person(authed(rename, &admin))
            .await
            .expect("rename");
        assert_eq!(
            get(&mut c, &admin, &user.id).await.given_name,
            "Adele",
            "{b}"
        );

        // Provider profiles: NPI check digit, locations of the same practice, https photos.
        let north = &acme.practices[0];
        let location = install
            .directory
            .add_resource(
                &Actor::Operator,
                &north.id,
                praxis_directory::domain::ResourceKind::Location,
                "North Main",
                Some("America/Chicago"),
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .0;
        let provider = install
            .directory
            .add_resource(
                &Actor::Operator,
                &north.id,
                praxis_directory::domain::ResourceKind::Provider,
                "Dr. Ada North",
                None,
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .0;
        let profile = |npi: &str, photo: &str| pb::UpdateResourceRequest {
            resource: Some(pb::Resource {
                id: provider.id.0.clone(),
                provider_profile: Some(pb::ProviderProfile {
                    credentials: vec!["MD".into()],
                    specialties: vec!["Family medicine".into()],
                    license_number: "IL-036-123456".into(),
                    npi: npi.into(),
                    bio: "Twenty years in family practice.".into(),
                    photo_url: photo.into(),
                    location_ids: vec![location.id.0.clone()],
                    person_id: person.id.clone(),
                }),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["provider_profile".into()],
            }),
        };
        let status = practices
            .update_resource(authed(
                profile("1234567890", "http://photos.example/ada.jpg"),
                &admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&status),
            [
                "resource.provider_profile.npi",
                "resource.provider_profile.photo_url"
            ],
            "{b}"
        );
        let saved = practices
            .update_resource(authed(
                profile("1234567893", "https://photos.example/ada.jpg"),
                &admin,
            ))
            .await
            .expect("profile")
            .into_inner()
            .resource
            .unwrap();
        assert_eq!(
            saved.provider_profile.as_ref().unwrap().npi,
            "1234567893",
            "{b}"
        );
        let read = practices
            .get_practice(authed(
                pb::GetPracticeRequest {
                    practice_id: north.id.0.clone(),
                },
                &manager,
            ))
            .await
            .unwrap()
            .into_inner()
            .practice
            .unwrap();
        let stored = read
            .resources
            .iter()
            .find(|r| r.id == provider.id.0)
            .unwrap();
        assert_eq!(
            stored.provider_profile.as_ref().unwrap().location_ids,
            vec![location.id.0.clone()],
            "{b}"
        );
    }
}
