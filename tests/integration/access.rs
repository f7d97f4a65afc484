//! Access beyond roles (A4, A5) end to end: directory's AccessService makes the grant, the
//! elevation or the break-glass use, authz's Check decides with it at the revision the write
//! returned, and stops at its expiry (asked with a later `context.time`).

use praxis_directory::domain::*;
use praxis_directory::store::audit::EventQuery;
use praxis_proto::authz::v1 as authz_pb;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::access_service_client::AccessServiceClient;
use praxis_tests::{Fixture, Install, authed, fixture, installs, violated_fields};
use tonic::Code;

async fn access(install: &Install) -> AccessServiceClient<tonic::transport::Channel> {
    AccessServiceClient::new(install.channel(install.addresses.directory).await)
}

/// `user` asks about themselves: `permission` on a patient of the first practice, at `at`
/// (now when `None`), with data at least as fresh as `revision`.
async fn check(
    install: &Install,
    fixture: &Fixture,
    user: &User,
    permission: &str,
    patient: &str,
    revision: i64,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> authz_pb::CheckResponse {
    let token = install.token_for(&user.email).await;
    AuthzServiceClient::new(install.channel(install.addresses.authz).await)
        .check(authed(
            authz_pb::CheckRequest {
                principal: Some(authz_pb::Principal {
                    user_id: user.id.0.clone(),
                }),
                permission: permission.to_owned(),
                resource: Some(authz_pb::Resource {
                    r#type: "patient".into(),
                    id: patient.to_owned(),
                    enterprise_id: fixture.enterprise.id.0.clone(),
                    practice_id: fixture.practices[0].id.0.clone(),
                    ..Default::default()
                }),
                min_revision: revision,
                context: at.map(|time| authz_pb::Context {
                    time: Some(prost_types::Timestamp {
                        seconds: time.timestamp(),
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
            },
            &token,
        ))
        .await
        .expect("check")
        .into_inner()
}

fn allowed(answer: &authz_pb::CheckResponse) -> bool {
    answer.decision == i32::from(authz_pb::Decision::Allow)
}

fn in_minutes(minutes: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::minutes(minutes)
}

fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: 0,
    }
}

#[tokio::test]
async fn a4_an_explicit_grant_opens_one_resource_until_it_ends_or_is_revoked() {
    for install in installs().await {
        let clinic = fixture(&install, "Grants").await;
        let b = &install.backend;
        let staff = clinic.user(UserKind::Staff).clone();
        let admin = install
            .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
            .await;
        assert!(
            !allowed(&check(&install, &clinic, &staff, "patients:read", "p-1", 0, None).await),
            "{b}"
        );

        let until = in_minutes(60);
        let granted = access(&install)
            .await
            .grant_resource_access(authed(
                pb::GrantResourceAccessRequest {
                    user_id: staff.id.0.clone(),
                    permission: "patients:read".into(),
                    resource_type: "patient".into(),
                    resource_id: "p-1".into(),
                    expire_time: Some(timestamp(until)),
                },
                &admin,
            ))
            .await
            .expect("grant")
            .into_inner();
        let grant = granted.grant.expect("grant");
        let now = check(
            &install,
            &clinic,
            &staff,
            "patients:read",
            "p-1",
            granted.revision,
            None,
        )
        .await;
        assert!(allowed(&now), "{b}: {:?}", now.reasons);
        assert!(
            now.reasons.iter().any(|r| r.contains("patients:read")),
            "{b}: {:?}",
            now.reasons
        );
        // Only that patient, only that permission, only until the grant ends.
        for (permission, patient, at) in [
            ("patients:read", "p-2", None),
            ("patients:edit", "p-1", None),
            ("patients:read", "p-1", Some(in_minutes(61))),
        ] {
            let answer = check(
                &install,
                &clinic,
                &staff,
                permission,
                patient,
                granted.revision,
                at,
            )
            .await;
            assert!(!allowed(&answer), "{b}: {permission} {patient} {at:?}");
        }

        // Staff cannot grant; bad input names every field.
        let refused = access(&install)
            .await
            .grant_resource_access(authed(
                pb::GrantResourceAccessRequest {
                    user_id: staff.id.0.clone(),
                    permission: "patients:read".into(),
                    resource_type: "patient".into(),
                    resource_id: "p-3".into(),
                    expire_time: None,
                },
                &install.token_for(&staff.email).await,
            ))
            .await
            .expect_err("staff grant");
        assert_eq!(refused.code(), Code::PermissionDenied, "{b}");
        let invalid = access(&install)
            .await
            .grant_resource_access(authed(
                pb::GrantResourceAccessRequest {
                    user_id: staff.id.0.clone(),
                    permission: "patients:fly".into(),
                    resource_type: "pa:tient".into(),
                    resource_id: String::new(),
                    expire_time: Some(timestamp(in_minutes(-1))),
                },
                &admin,
            ))
            .await
            .expect_err("invalid");
        let mut fields = violated_fields(&invalid);
        fields.sort();
        assert_eq!(
            fields,
            ["expire_time", "permission", "resource_id", "resource_type"],
            "{b}"
        );

        let listed = access(&install)
            .await
            .list_resource_grants(authed(
                pb::ListResourceGrantsRequest {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    resource_type: "patient".into(),
                    resource_id: "p-1".into(),
                    ..Default::default()
                },
                &admin,
            ))
            .await
            .expect("list")
            .into_inner()
            .grants;
        assert_eq!(listed.len(), 1, "{b}");
        assert_eq!(listed[0].permission, "patients:read");
        assert_eq!(listed[0].user_id, staff.id.0);

        let revoked = access(&install)
            .await
            .revoke_resource_access(authed(
                pb::RevokeResourceAccessRequest { grant_id: grant.id },
                &admin,
            ))
            .await
            .expect("revoke")
            .into_inner();
        let after = check(
            &install,
            &clinic,
            &staff,
            "patients:read",
            "p-1",
            revoked.revision,
            None,
        )
        .await;
        assert!(!allowed(&after), "{b}: a revoked grant still allows");
        install.stop().await;
    }
}

#[tokio::test]
async fn a5_elevation_needs_another_approver_and_ends_at_its_expiry() {
    for install in installs().await {
        let clinic = fixture(&install, "Elevation").await;
        let b = &install.backend;
        let staff = clinic.user(UserKind::Staff).clone();
        let staff_token = install.token_for(&staff.email).await;
        let admin = clinic.user(UserKind::EnterpriseAdmin).clone();
        let admin_token = install.token_for(&admin.email).await;
        let request = |token: &str, justification: &str, minutes: i32| {
            let token = token.to_owned();
            let justification = justification.to_owned();
            let practice = clinic.practices[0].id.0.clone();
            let install = &install;
            async move {
                access(install)
                    .await
                    .request_elevation(authed(
                        pb::RequestElevationRequest {
                            role_id: "builtin-billing".into(),
                            practice_id: practice,
                            duration_minutes: minutes,
                            justification,
                        },
                        &token,
                    ))
                    .await
            }
        };
        let short = request(&staff_token, "too short", 0)
            .await
            .expect_err("invalid");
        let mut fields = violated_fields(&short);
        fields.sort();
        assert_eq!(fields, ["duration_minutes", "justification"], "{b}");

        let pending = request(&staff_token, "covering billing while Sam is away", 120)
            .await
            .expect("request")
            .into_inner()
            .elevation
            .expect("elevation");
        assert_eq!(pending.state, i32::from(pb::ElevationState::Pending));
        assert!(
            !allowed(&check(&install, &clinic, &staff, "billing:read", "p-1", 0, None).await),
            "{b}"
        );

        // The requester cannot approve their own; neither can staff anyone's.
        let own = access(&install)
            .await
            .approve_elevation(authed(
                pb::ApproveElevationRequest {
                    elevation_id: pending.id.clone(),
                    note: String::new(),
                },
                &staff_token,
            ))
            .await
            .expect_err("staff approval");
        assert_eq!(own.code(), Code::PermissionDenied, "{b}");
        let admins_own = request(&admin_token, "need the billing view for audit", 30)
            .await
            .expect("admin request")
            .into_inner()
            .elevation
            .expect("elevation");
        let self_approved = access(&install)
            .await
            .approve_elevation(authed(
                pb::ApproveElevationRequest {
                    elevation_id: admins_own.id.clone(),
                    note: String::new(),
                },
                &admin_token,
            ))
            .await
            .expect_err("self-approval");
        assert_eq!(self_approved.code(), Code::FailedPrecondition, "{b}");
        assert!(
            self_approved.message().contains("separation of duties"),
            "{b}"
        );

        let pending_list = access(&install)
            .await
            .list_elevations(authed(
                pb::ListElevationsRequest {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    state: pb::ElevationState::Pending.into(),
                },
                &admin_token,
            ))
            .await
            .expect("list")
            .into_inner()
            .elevations;
        assert_eq!(pending_list.len(), 2, "{b}");

        // The admin approves the staff member's request: someone other than the requester.
        let approved = access(&install)
            .await
            .approve_elevation(authed(
                pb::ApproveElevationRequest {
                    elevation_id: pending.id.clone(),
                    note: "ok for two hours".into(),
                },
                &admin_token,
            ))
            .await
            .expect("approve")
            .into_inner();
        let elevation = approved.elevation.expect("elevation");
        assert_eq!(
            elevation.state,
            i32::from(pb::ElevationState::Active),
            "{b}"
        );
        let now = check(
            &install,
            &clinic,
            &staff,
            "billing:read",
            "p-1",
            approved.revision,
            None,
        )
        .await;
        assert!(allowed(&now), "{b}: {:?}", now.reasons);
        let later = check(
            &install,
            &clinic,
            &staff,
            "billing:read",
            "p-1",
            approved.revision,
            Some(in_minutes(121)),
        )
        .await;
        assert!(!allowed(&later), "{b}: the elevation outlived its expiry");

        let twice = access(&install)
            .await
            .reject_elevation(authed(
                pb::RejectElevationRequest {
                    elevation_id: pending.id.clone(),
                    note: String::new(),
                },
                &admin_token,
            ))
            .await
            .expect_err("decided already");
        assert_eq!(twice.code(), Code::FailedPrecondition, "{b}");
        let active = access(&install)
            .await
            .list_elevations(authed(
                pb::ListElevationsRequest {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    state: pb::ElevationState::Active.into(),
                },
                &staff_token,
            ))
            .await
            .expect("own list")
            .into_inner()
            .elevations;
        assert_eq!(active.len(), 1, "{b}: staff see their own active elevation");
        install.stop().await;
    }
}

#[tokio::test]
async fn a5_break_glass_applies_at_once_alerts_and_waits_for_review() {
    for install in installs().await {
        let clinic = fixture(&install, "Break Glass").await;
        let b = &install.backend;
        let staff = clinic.user(UserKind::Staff).clone();
        let staff_token = install.token_for(&staff.email).await;
        let manager = clinic.user(UserKind::Manager).clone();
        let admin = clinic.user(UserKind::EnterpriseAdmin).clone();
        let admin_token = install.token_for(&admin.email).await;
        let mut enterprise = install
            .directory
            .get_enterprise(&Actor::Operator, &clinic.enterprise.id)
            .await
            .expect("enterprise");
        enterprise.policy.break_glass.user_ids = vec![staff.id.0.clone(), admin.id.0.clone()];
        enterprise.policy.break_glass.max_minutes = 30;
        install
            .directory
            .update_enterprise(
                &Actor::Operator,
                &enterprise.id,
                None,
                praxis_directory::domain::service::EnterpriseChange {
                    policy: Some(enterprise.policy.clone()),
                    ..Default::default()
                },
                chrono::Utc::now(),
            )
            .await
            .expect("policy");
        let invoke = |token: String, minutes: i32| {
            let install = &install;
            async move {
                access(install)
                    .await
                    .invoke_break_glass(authed(
                        pb::InvokeBreakGlassRequest {
                            justification: "patient collapsed in the waiting room".into(),
                            duration_minutes: minutes,
                        },
                        &token,
                    ))
                    .await
            }
        };
        let stranger = invoke(install.token_for(&manager.email).await, 10)
            .await
            .expect_err("not designated");
        assert_eq!(stranger.code(), Code::PermissionDenied, "{b}");
        let too_long = invoke(staff_token.clone(), 31).await.expect_err("too long");
        assert_eq!(violated_fields(&too_long), ["duration_minutes"], "{b}");
        assert!(!allowed(
            &check(
                &install,
                &clinic,
                &staff,
                "clinical_notes:read",
                "p-9",
                0,
                None
            )
            .await
        ));

        let broke = invoke(staff_token.clone(), 0)
            .await
            .expect("invoke")
            .into_inner();
        let used = broke.r#use.expect("use");
        let lasts =
            used.expire_time.expect("expiry").seconds - used.start_time.expect("start").seconds;
        assert_eq!(lasts, 30 * 60, "{b}: 0 means the policy's maximum");
        let now = check(
            &install,
            &clinic,
            &staff,
            "clinical_notes:read",
            "p-9",
            broke.revision,
            None,
        )
        .await;
        assert!(allowed(&now), "{b}: {:?}", now.reasons);
        let after = check(
            &install,
            &clinic,
            &staff,
            "clinical_notes:read",
            "p-9",
            broke.revision,
            Some(in_minutes(31)),
        )
        .await;
        assert!(!allowed(&after), "{b}: break-glass outlived its expiry");

        // The alert is in the trail.
        let query = EventQuery {
            enterprise_id: clinic.enterprise.id.0.clone(),
            action: Some("alert.raised".into()),
            ..EventQuery::default()
        };
        let (events, _) = install
            .directory
            .list_events(&Actor::Operator, &query, 100, "")
            .await
            .expect("events");
        assert!(
            events.iter().any(|e| e.details.contains("break_glass")),
            "{b}: no break-glass alert in {events:?}"
        );

        let unreviewed = |token: String| {
            let install = &install;
            let enterprise_id = clinic.enterprise.id.0.clone();
            async move {
                access(install)
                    .await
                    .list_break_glass_uses(authed(
                        pb::ListBreakGlassUsesRequest {
                            enterprise_id,
                            unreviewed_only: true,
                        },
                        &token,
                    ))
                    .await
            }
        };
        let open = unreviewed(admin_token.clone())
            .await
            .expect("list")
            .into_inner()
            .uses;
        assert_eq!(open.len(), 1, "{b}");
        assert_eq!(open[0].id, used.id);
        let self_review = access(&install)
            .await
            .review_break_glass(authed(
                pb::ReviewBreakGlassRequest {
                    use_id: used.id.clone(),
                    note: "all fine".into(),
                },
                &staff_token,
            ))
            .await
            .expect_err("self review");
        assert_eq!(
            self_review.code(),
            Code::PermissionDenied,
            "{b}: staff are not admins"
        );
        let reviewed = access(&install)
            .await
            .review_break_glass(authed(
                pb::ReviewBreakGlassRequest {
                    use_id: used.id.clone(),
                    note: "chart shows the emergency; justified".into(),
                },
                &admin_token,
            ))
            .await
            .expect("review")
            .into_inner()
            .r#use
            .expect("use");
        assert!(!reviewed.reviewed_by.is_empty());
        assert!(
            unreviewed(admin_token.clone())
                .await
                .expect("list")
                .into_inner()
                .uses
                .is_empty(),
            "{b}"
        );
        // An admin who breaks the glass is reviewed by someone else.
        let own = invoke(admin_token.clone(), 5)
            .await
            .expect("admin invoke")
            .into_inner();
        let refused = access(&install)
            .await
            .review_break_glass(authed(
                pb::ReviewBreakGlassRequest {
                    use_id: own.r#use.expect("use").id,
                    note: "I was there".into(),
                },
                &admin_token,
            ))
            .await
            .expect_err("self review");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{b}");
        assert_eq!(
            unreviewed(admin_token)
                .await
                .expect("list")
                .into_inner()
                .uses
                .len(),
            1,
            "{b}"
        );
        install.stop().await;
    }
}

#[tokio::test]
async fn a5_an_elevation_to_a_role_deleted_meanwhile_is_not_approved() {
    let install = praxis_tests::start(false).await;
    let clinic = fixture(&install, "Gone").await;
    let staff_token = install.token_for(&clinic.user(UserKind::Staff).email).await;
    let admin_token = install
        .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
        .await;
    let (role, _) = install
        .directory
        .create_role(
            &Actor::Operator,
            &clinic.enterprise.id,
            roles::RoleDraft {
                display_name: "Month-end".into(),
                ..Default::default()
            },
            chrono::Utc::now(),
        )
        .await
        .expect("role");
    let asked = access(&install)
        .await
        .request_elevation(authed(
            pb::RequestElevationRequest {
                role_id: role.id.0.clone(),
                practice_id: String::new(),
                duration_minutes: 60,
                justification: "closing the month's books".into(),
            },
            &staff_token,
        ))
        .await
        .expect("request")
        .into_inner()
        .elevation
        .expect("elevation");
    install
        .directory
        .delete_role(&Actor::Operator, &role.id, None, chrono::Utc::now())
        .await
        .expect("delete role");
    let refused = access(&install)
        .await
        .approve_elevation(authed(
            pb::ApproveElevationRequest {
                elevation_id: asked.id,
                note: String::new(),
            },
            &admin_token,
        ))
        .await
        .expect_err("role gone");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("no longer exists"),
        "{refused:?}"
    );
    install.stop().await;
}
