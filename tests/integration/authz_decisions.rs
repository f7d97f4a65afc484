//! Decisions over roles, bindings and custom policies (A1–A3, A6–A8), through gRPC, with the
//! directory changed between checks and each check asking for the revision the write returned.

use praxis_directory::domain::roles::{
    BindingScope, Grant, GrantScope, Permission, RoleBinding, RoleDraft, RoleId, RoleRules,
    WeeklyWindow,
};
use praxis_directory::domain::*;
use praxis_proto::authz::v1 as pb;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::authz::v1::policy_service_client::PolicyServiceClient;
use praxis_tests::{Fixture, Install, authed, fixture, installs, violated_fields};
use std::net::SocketAddr;
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// Acting for one principal of the fixture, against one authz address.
struct Asker<'a> {
    install: &'a Install,
    fixture: &'a Fixture,
    authz: SocketAddr,
    token: String,
    user_id: String,
}

impl<'a> Asker<'a> {
    async fn new(install: &'a Install, fixture: &'a Fixture, kind: UserKind) -> Self {
        let user = fixture.user(kind);
        Self {
            install,
            fixture,
            authz: install.addresses.authz,
            token: install.token_for(&user.email).await,
            user_id: user.id.0.clone(),
        }
    }

    fn request(&self, permission: &str, resource: pb::Resource) -> pb::CheckRequest {
        pb::CheckRequest {
            principal: Some(pb::Principal {
                user_id: self.user_id.clone(),
            }),
            permission: permission.to_owned(),
            resource: Some(pb::Resource {
                enterprise_id: self.fixture.enterprise.id.0.clone(),
                ..resource
            }),
            min_revision: 0,
            context: None,
        }
    }

    async fn check(&self, request: pb::CheckRequest) -> Result<pb::CheckResponse, tonic::Status> {
        let mut client = AuthzServiceClient::new(self.install.channel(self.authz).await);
        client
            .check(authed(request, &self.token))
            .await
            .map(|r| r.into_inner())
    }

    /// Checks at `revision` and returns the answer, failing the test on an error.
    async fn decide(&self, mut request: pb::CheckRequest, revision: i64) -> pb::CheckResponse {
        request.min_revision = revision;
        let what = format!("{} on {:?}", request.permission, request.resource);
        self.check(request)
            .await
            .unwrap_or_else(|status| panic!("{what}: {status:?}"))
    }
}

fn in_practice(fixture: &Fixture, practice: usize, kind: &str) -> pb::Resource {
    pb::Resource {
        r#type: kind.to_owned(),
        id: format!("{kind}-1"),
        practice_id: fixture.practices[practice].id.0.clone(),
        ..Default::default()
    }
}

fn grants(feature: &str, actions: &[&str], scope: GrantScope) -> Vec<Grant> {
    actions
        .iter()
        .map(|action| Grant {
            permission: Permission::new(feature, action),
            scope,
        })
        .collect()
}

async fn bind(
    install: &Install,
    fixture: &Fixture,
    user: &User,
    role: &str,
    scope: BindingScope,
    shape: impl FnOnce(&mut RoleBinding),
) -> (String, i64) {
    let mut binding = RoleBinding {
        id: String::new(),
        enterprise_id: fixture.enterprise.id.clone(),
        user_id: user.id.clone(),
        role_id: RoleId(role.to_owned()),
        scope,
        valid_from: None,
        valid_until: None,
        weekly_window: None,
        created_at: chrono::Utc::now(),
        source: None,
    };
    shape(&mut binding);
    let (binding, revision) = install
        .directory
        .create_binding(&Actor::Operator, binding, chrono::Utc::now())
        .await
        .expect("binding");
    (binding.id, revision)
}

async fn unbind(install: &Install, id: &str) -> i64 {
    install
        .directory
        .delete_binding(&Actor::Operator, id, chrono::Utc::now())
        .await
        .expect("unbind")
}

async fn role(install: &Install, fixture: &Fixture, name: &str, draft: RoleDraft) -> RoleId {
    let (role, _) = install
        .directory
        .create_role(
            &Actor::Operator,
            &fixture.enterprise.id,
            RoleDraft {
                display_name: name.to_owned(),
                ..draft
            },
            chrono::Utc::now(),
        )
        .await
        .expect("role");
    role.id
}

fn allowed(answer: &pb::CheckResponse) -> bool {
    answer.decision() == pb::Decision::Allow
}

#[tokio::test]
async fn a3_built_in_roles_decide_the_guides_examples() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let b = install.backend.clone();
        let staff = acme.user(UserKind::Staff).clone();
        let asker = Asker::new(&install, &acme, UserKind::Staff).await;
        let practice = BindingScope::Practice(acme.practices[0].id.clone());

        // Front Desk schedules, reads no clinical notes or billing, sees patients masked.
        let (front_desk, revision) = bind(
            &install,
            &acme,
            &staff,
            "builtin-front-desk",
            practice.clone(),
            |_| {},
        )
        .await;
        let schedule = asker
            .decide(
                asker.request("appointments:create", in_practice(&acme, 0, "appointment")),
                revision,
            )
            .await;
        assert!(allowed(&schedule), "{b}: {:?}", schedule.reasons);
        assert!(
            schedule.reasons.iter().any(|r| r.contains("Front Desk")),
            "{b}: {:?}",
            schedule.reasons
        );
        assert_eq!(schedule.decided_at_revision, revision, "{b}");
        for denied in ["clinical_notes:read", "billing:read"] {
            let answer = asker
                .decide(
                    asker.request(denied, in_practice(&acme, 0, "patient")),
                    revision,
                )
                .await;
            assert!(!allowed(&answer), "{b}: front desk {denied}");
        }
        let patient = asker
            .decide(
                asker.request("patients:read", in_practice(&acme, 0, "patient")),
                revision,
            )
            .await;
        assert!(allowed(&patient), "{b}");
        let mut masked = patient.obligation.expect("obligation").masked_fields;
        masked.sort();
        assert_eq!(masked, ["insurance", "ssn"], "{b}");
        // The role is bound in practice 0 only.
        let elsewhere = asker
            .decide(
                asker.request("appointments:create", in_practice(&acme, 1, "appointment")),
                revision,
            )
            .await;
        assert!(!allowed(&elsewhere), "{b}");
        unbind(&install, &front_desk).await;

        // Billing reads billing, no clinical records.
        let (billing, revision) = bind(
            &install,
            &acme,
            &staff,
            "builtin-billing",
            practice.clone(),
            |_| {},
        )
        .await;
        let read_billing = asker
            .decide(
                asker.request("billing:read", in_practice(&acme, 0, "invoice")),
                revision,
            )
            .await;
        assert!(allowed(&read_billing), "{b}: {:?}", read_billing.reasons);
        let notes = asker
            .decide(
                asker.request("clinical_notes:read", in_practice(&acme, 0, "note")),
                revision,
            )
            .await;
        assert!(!allowed(&notes), "{b}");
        unbind(&install, &billing).await;

        // A provider reads their own patients only.
        let (provider, revision) = bind(
            &install,
            &acme,
            &staff,
            "builtin-provider",
            practice.clone(),
            |_| {},
        )
        .await;
        let mut own = in_practice(&acme, 0, "patient");
        own.owner_id = staff.id.0.clone();
        let mut someone_elses = in_practice(&acme, 0, "patient");
        someone_elses.owner_id = acme.user(UserKind::Manager).id.0.clone();
        let answer = asker
            .decide(asker.request("patients:read", own), revision)
            .await;
        assert!(allowed(&answer), "{b}: {:?}", answer.reasons);
        assert!(answer.reasons.iter().any(|r| r.contains("OWN")), "{b}");
        let answer = asker
            .decide(asker.request("patients:read", someone_elses), revision)
            .await;
        assert!(!allowed(&answer), "{b}: {:?}", answer.reasons);
        unbind(&install, &provider).await;
    }
}

#[tokio::test]
async fn a3_time_windows_validity_denials_and_conditions() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let b = install.backend.clone();
        let staff = acme.user(UserKind::Staff).clone();
        let asker = Asker::new(&install, &acme, UserKind::Staff).await;
        let (location, _) = install
            .directory
            .add_resource(
                &Actor::Operator,
                &acme.practices[0].id,
                ResourceKind::Location,
                "Uptown",
                Some("America/New_York"),
                chrono::Utc::now(),
            )
            .await
            .expect("location");
        let inventory = role(
            &install,
            &acme,
            "Stock clerk",
            RoleDraft {
                rules: RoleRules {
                    grants: grants("inventory", &["read", "edit"], GrantScope::All),
                    ..RoleRules::default()
                },
                ..RoleDraft::default()
            },
        )
        .await;

        // Business hours (Mon–Fri 9:00–17:00 New York time).
        let (hours, revision) = bind(
            &install,
            &acme,
            &staff,
            &inventory.0,
            BindingScope::Location(location.id.clone()),
            |binding| {
                binding.weekly_window = Some(WeeklyWindow {
                    days: vec![1, 2, 3, 4, 5],
                    start_minute: 9 * 60,
                    end_minute: 17 * 60,
                })
            },
        )
        .await;
        let at = |utc: &str| {
            let time = chrono::DateTime::parse_from_rfc3339(utc).unwrap();
            Some(pb::Context {
                time: Some(prost_types::Timestamp {
                    seconds: time.timestamp(),
                    nanos: 0,
                }),
                ..Default::default()
            })
        };
        let stock = pb::Resource {
            r#type: "stock".into(),
            id: "s-1".into(),
            location_id: location.id.0.clone(),
            ..Default::default()
        };
        // Wednesday 2026-11-25: 10:00 and 22:00 in New York are 15:00Z and 03:00Z next day.
        let mut morning = asker.request("inventory:edit", stock.clone());
        morning.context = at("2026-11-25T15:00:00Z");
        let answer = asker.decide(morning, revision).await;
        assert!(allowed(&answer), "{b}: {:?}", answer.reasons);
        let mut night = asker.request("inventory:edit", stock.clone());
        night.context = at("2026-11-26T03:00:00Z");
        let answer = asker.decide(night, revision).await;
        assert!(!allowed(&answer), "{b}: 22:00 location time");
        assert!(
            answer
                .reasons
                .iter()
                .any(|r| r.contains("weekly window") && r.contains("America/New_York")),
            "{b}: {:?}",
            answer.reasons
        );
        unbind(&install, &hours).await;

        // An expired contractor binding.
        let (contract, revision) = bind(
            &install,
            &acme,
            &staff,
            &inventory.0,
            BindingScope::Practice(acme.practices[0].id.clone()),
            |binding| {
                binding.valid_from = Some(chrono::Utc::now() - chrono::Duration::days(30));
                binding.valid_until = Some(chrono::Utc::now() - chrono::Duration::days(1));
            },
        )
        .await;
        let answer = asker
            .decide(
                asker.request("inventory:read", in_practice(&acme, 0, "stock")),
                revision,
            )
            .await;
        assert!(!allowed(&answer), "{b}: expired binding");
        assert!(
            answer.reasons.iter().any(|r| r.contains("ended at")),
            "{b}: {:?}",
            answer.reasons
        );
        unbind(&install, &contract).await;

        // A child role's denial beats its parent's grant.
        let child = role(
            &install,
            &acme,
            "Stock viewer",
            RoleDraft {
                parent_role_id: Some(inventory.clone()),
                rules: RoleRules {
                    denials: vec![Permission::new("inventory", "edit")],
                    ..RoleRules::default()
                },
                ..RoleDraft::default()
            },
        )
        .await;
        let (viewer, revision) = bind(
            &install,
            &acme,
            &staff,
            &child.0,
            BindingScope::Practice(acme.practices[0].id.clone()),
            |_| {},
        )
        .await;
        let read = asker
            .decide(
                asker.request("inventory:read", in_practice(&acme, 0, "stock")),
                revision,
            )
            .await;
        assert!(allowed(&read), "{b}: inherited grant: {:?}", read.reasons);
        let edit = asker
            .decide(
                asker.request("inventory:edit", in_practice(&acme, 0, "stock")),
                revision,
            )
            .await;
        assert!(!allowed(&edit), "{b}: child denial");
        assert!(
            edit.reasons
                .iter()
                .any(|r| r.contains("Stock viewer") && r.contains("denies")),
            "{b}: {:?}",
            edit.reasons
        );
        unbind(&install, &viewer).await;

        // "Approve charge" below 500 only: a role grant plus the enterprise's custom policy.
        let approver = role(
            &install,
            &acme,
            "Charge approver",
            RoleDraft {
                rules: RoleRules {
                    grants: grants("charges", &["approve"], GrantScope::All),
                    ..RoleRules::default()
                },
                ..RoleDraft::default()
            },
        )
        .await;
        let (approving, revision) = bind(
            &install,
            &acme,
            &staff,
            &approver.0,
            BindingScope::Practice(acme.practices[0].id.clone()),
            |_| {},
        )
        .await;
        let admin_token = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let mut policies = PolicyServiceClient::new(install.channel(install.addresses.authz).await);
        policies
            .put_policy(authed(
                pb::PutPolicyRequest {
                    policy: Some(pb::Policy {
                        id: "charge-limit".into(),
                        enterprise_id: acme.enterprise.id.0.clone(),
                        description: "Charges of 500 and more need a manager.".into(),
                        text: "forbid (principal, action == Praxis::Action::\"charges:approve\", resource)\n\
                               when { context has amount && context.amount >= 500 }\n\
                               unless { principal.kind == \"MANAGER\" || principal.kind == \"ENTERPRISE_ADMIN\" };"
                            .into(),
                        ..Default::default()
                    }),
                },
                &admin_token,
            ))
            .await
            .expect("policy");
        for (amount, expected) in [(499, true), (500, false), (10_000, false)] {
            let mut request = asker.request("charges:approve", in_practice(&acme, 0, "charge"));
            request.context = Some(pb::Context {
                amount: Some(amount),
                ..Default::default()
            });
            let answer = asker.decide(request, revision).await;
            assert_eq!(
                allowed(&answer),
                expected,
                "{b}: amount {amount}: {:?}",
                answer.reasons
            );
            if !expected {
                assert!(
                    answer.reasons.iter().any(|r| r.contains("charge-limit")),
                    "{b}: {:?}",
                    answer.reasons
                );
            }
        }
        unbind(&install, &approving).await;
    }
}

#[tokio::test]
async fn a6_batch_check_answers_in_order_and_explain_traces_every_step() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = acme.user(UserKind::Staff).clone();
    let asker = Asker::new(&install, &acme, UserKind::Staff).await;
    let (_, revision) = bind(
        &install,
        &acme,
        &staff,
        "builtin-inventory",
        BindingScope::Practice(acme.practices[0].id.clone()),
        |_| {},
    )
    .await;
    let mut checks = Vec::new();
    for (permission, practice) in [
        ("inventory:read", 0),
        ("inventory:read", 1),
        ("appointments:read", 0),
        ("patients:delete", 0),
    ] {
        let mut check = asker.request(permission, in_practice(&acme, practice, "thing"));
        check.min_revision = revision;
        checks.push(check);
    }
    let mut client = AuthzServiceClient::new(install.channel(install.addresses.authz).await);
    let answers = client
        .batch_check(authed(
            pb::BatchCheckRequest {
                checks: checks.clone(),
            },
            &asker.token,
        ))
        .await
        .expect("batch")
        .into_inner()
        .results;
    let decisions: Vec<bool> = answers.iter().map(allowed).collect();
    assert_eq!(decisions, [true, false, true, false]);

    // Over 100 checks, or one malformed, is refused whole with the field named.
    let status = client
        .batch_check(authed(
            pb::BatchCheckRequest {
                checks: vec![checks[0].clone(); 101],
            },
            &asker.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut broken = checks.clone();
    broken[2].permission = "appointments:fly".into();
    let status = client
        .batch_check(authed(
            pb::BatchCheckRequest { checks: broken },
            &asker.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["checks[2].permission"]);

    // An admin asks why the staff member cannot delete patients.
    let admin = Asker::new(&install, &acme, UserKind::EnterpriseAdmin).await;
    let explained = client
        .explain(authed(
            pb::ExplainRequest {
                check: Some(checks[3].clone()),
            },
            &admin.token,
        ))
        .await
        .expect("explain")
        .into_inner();
    assert_eq!(
        explained.result.as_ref().map(allowed),
        Some(false),
        "{explained:?}"
    );
    let subjects: Vec<&str> = explained.steps.iter().map(|s| s.subject.as_str()).collect();
    assert!(subjects.contains(&"principal"), "{subjects:?}");
    assert!(
        explained
            .steps
            .iter()
            .any(|s| s.subject.starts_with("binding ") && s.effect == "no match"),
        "{:?}",
        explained.steps
    );
    assert!(
        explained
            .steps
            .iter()
            .any(|s| s.subject == "policy kind:enterprise-admin" && s.effect == "not satisfied"),
        "{:?}",
        explained.steps
    );
    // Staff may not explain someone else's access.
    let status = client
        .explain(authed(
            pb::ExplainRequest {
                check: Some(admin.request("patients:read", in_practice(&acme, 0, "patient"))),
            },
            &asker.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a7_custom_policies_are_validated_versioned_and_admin_only() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let other = fixture(&install, "Other").await;
    let admin = Asker::new(&install, &acme, UserKind::EnterpriseAdmin).await;
    let staff = Asker::new(&install, &acme, UserKind::Staff).await;
    let mut client = PolicyServiceClient::new(install.channel(install.addresses.authz).await);
    let policy = |text: &str, etag: &str| pb::PutPolicyRequest {
        policy: Some(pb::Policy {
            id: "no-exports".into(),
            enterprise_id: acme.enterprise.id.0.clone(),
            text: text.into(),
            etag: etag.into(),
            ..Default::default()
        }),
    };

    // Errors come back with line and column, and nothing is stored.
    let status = client
        .put_policy(authed(
            policy(
                "forbid (principal, action, resource)\nwhen { context.amont > 1 };",
                "",
            ),
            &admin.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = tonic_types::StatusExt::get_error_details(&status);
    let violation = &details.bad_request().unwrap().field_violations[0];
    assert_eq!(violation.field, "policy.text");
    assert!(violation.description.starts_with("2:"), "{violation:?}");
    let listed = client
        .list_policies(authed(
            pb::ListPoliciesRequest {
                enterprise_id: acme.enterprise.id.0.clone(),
            },
            &admin.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.policies.is_empty());
    let checked = client
        .validate_policy(authed(
            pb::ValidatePolicyRequest {
                text: "permit (principal, action, resource) when { resource.nope };".into(),
            },
            &staff.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!checked.valid);
    assert_eq!(checked.problems[0].line, 1);

    // Staff read but do not write; other enterprises see nothing.
    let text = "forbid (principal, action in Praxis::Action::\"reports\", resource)\nwhen { principal.kind == \"MANAGER\" };";
    let status = client
        .put_policy(authed(policy(text, ""), &staff.token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let stored = client
        .put_policy(authed(policy(text, ""), &admin.token))
        .await
        .expect("put")
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(stored.etag, "1");
    let outsider = Asker::new(&install, &other, UserKind::EnterpriseAdmin).await;
    let status = client
        .get_policy(authed(
            pb::GetPolicyRequest {
                enterprise_id: acme.enterprise.id.0.clone(),
                policy_id: "no-exports".into(),
            },
            &outsider.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // The policy applies at once: the manager loses reports the kind baseline gave.
    let manager = Asker::new(&install, &acme, UserKind::Manager).await;
    let answer = manager
        .decide(
            manager.request("reports:read", in_practice(&acme, 0, "report")),
            0,
        )
        .await;
    assert!(!allowed(&answer), "{:?}", answer.reasons);
    assert!(answer.reasons.iter().any(|r| r.contains("no-exports")));

    // Stale etags are refused; the right one replaces, then delete restores the baseline.
    let status = client
        .put_policy(authed(policy(text, "7"), &admin.token))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let status = client
        .put_policy(authed(policy(text, ""), &admin.token))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Aborted,
        "a second create is a conflict"
    );
    client
        .delete_policy(authed(
            pb::DeletePolicyRequest {
                enterprise_id: acme.enterprise.id.0.clone(),
                policy_id: "no-exports".into(),
                etag: "1".into(),
            },
            &admin.token,
        ))
        .await
        .expect("delete");
    let answer = manager
        .decide(
            manager.request("reports:read", in_practice(&acme, 0, "report")),
            0,
        )
        .await;
    assert!(allowed(&answer), "{:?}", answer.reasons);
}

#[tokio::test]
async fn a7_a_forbid_policy_that_fails_to_evaluate_denies() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let admin = Asker::new(&install, &acme, UserKind::EnterpriseAdmin).await;
    let mut client = PolicyServiceClient::new(install.channel(install.addresses.authz).await);
    // Valid against the schema, but overflows at run time for large amounts.
    client
        .put_policy(authed(
            pb::PutPolicyRequest {
                policy: Some(pb::Policy {
                    id: "overflowing".into(),
                    enterprise_id: acme.enterprise.id.0.clone(),
                    text: "forbid (principal, action == Praxis::Action::\"billing:approve\", resource)\n\
                           when { context has amount && context.amount * 1000000000000 > 5 };"
                        .into(),
                    ..Default::default()
                }),
            },
            &admin.token,
        ))
        .await
        .expect("policy");
    let mut request = admin.request("billing:approve", in_practice(&acme, 0, "invoice"));
    request.context = Some(pb::Context {
        amount: Some(i64::MAX / 1000),
        ..Default::default()
    });
    let answer = admin.decide(request, 0).await;
    assert!(
        !allowed(&answer),
        "an erroring forbid must not become ALLOW"
    );
    assert!(
        answer
            .reasons
            .iter()
            .any(|r| r.contains("failed to evaluate")),
        "{:?}",
        answer.reasons
    );
}

/// A role change reaches Check: at once with the write's revision, and without it within the
/// staleness bound even on an authz that hears no announcements (its own memory cache).
#[tokio::test]
async fn a8_role_changes_reach_checks_at_once_with_the_revision_and_within_the_bound_without() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let b = install.backend.clone();
        let staff = acme.user(UserKind::Staff).clone();
        let shutdown = CancellationToken::new();
        let (remote, _) = crate::authz::standalone_authz_with(
            &install,
            &format!("http://{}", install.addresses.directory),
            praxis_cache::open("memory").unwrap(),
            shutdown.clone(),
        )
        .await;
        for authz in [install.addresses.authz, remote] {
            let mut asker = Asker::new(&install, &acme, UserKind::Staff).await;
            asker.authz = authz;
            let stock = || asker.request("inventory:read", in_practice(&acme, 0, "stock"));
            let before = asker.decide(stock(), 0).await;
            assert!(!allowed(&before), "{b} {authz}");
            let (binding, revision) = bind(
                &install,
                &acme,
                &staff,
                "builtin-inventory",
                BindingScope::Practice(acme.practices[0].id.clone()),
                |_| {},
            )
            .await;
            let answer = asker.decide(stock(), revision).await;
            assert!(allowed(&answer), "{b} {authz}: with min_revision");
            assert!(answer.decided_at_revision >= revision);

            let revision = unbind(&install, &binding).await;
            let started = std::time::Instant::now();
            loop {
                let answer = asker.decide(stock(), 0).await;
                if !allowed(&answer) {
                    assert!(answer.decided_at_revision >= revision, "{b} {authz}");
                    break;
                }
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(3),
                    "{b} {authz}: still ALLOW {:?} after the binding was removed",
                    started.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        shutdown.cancel();
    }
}

/// Shared-cache faults: a corrupt entry is dropped and read again from directory; with Redis
/// gone mid-run decisions come from the in-process level or directory, never a wrong ALLOW.
#[tokio::test]
async fn a8_corrupt_cache_entries_and_a_redis_outage_never_give_a_wrong_allow() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = acme.user(UserKind::Staff).clone();
    let shutdown = CancellationToken::new();
    let redis = crate::health::redis_for_test();
    let cache = match &redis {
        Some((_, url)) => praxis_cache::open(url).unwrap(),
        None => praxis_cache::open("memory").unwrap(),
    };
    let (authz, snapshots) = crate::authz::standalone_authz_with(
        &install,
        &format!("http://{}", install.addresses.directory),
        cache.clone(),
        shutdown.clone(),
    )
    .await;
    let mut asker = Asker::new(&install, &acme, UserKind::Staff).await;
    asker.authz = authz;
    let (binding, revision) = bind(
        &install,
        &acme,
        &staff,
        "builtin-inventory",
        BindingScope::Practice(acme.practices[0].id.clone()),
        |_| {},
    )
    .await;
    let stock = || asker.request("inventory:read", in_practice(&acme, 0, "stock"));
    assert!(allowed(&asker.decide(stock(), revision).await));

    // Garbage where the snapshot was, and the in-process level emptied.
    // The shared level is filled in the background, after the answer.
    let key = format!("praxis:authz:principal:{}:{revision}", staff.id.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cache.get(&key).await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the snapshot was not shared within 5 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    cache
        .set(
            &key,
            b"\x08\xff\xff garbage",
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    snapshots.clear_local();
    let answer = asker.decide(stock(), revision).await;
    assert!(
        allowed(&answer),
        "read again from directory: {:?}",
        answer.reasons
    );
    let garbage_for_deny = asker.decide(
        asker.request("patients:delete", in_practice(&acme, 0, "patient")),
        revision,
    );
    assert!(!allowed(&garbage_for_deny.await));

    // Redis goes away: decisions continue, and a revoked binding is still seen as revoked.
    if let Some((process, _)) = redis {
        drop(process);
        assert!(allowed(&asker.decide(stock(), revision).await), "warm");
        let revision = unbind(&install, &binding).await;
        let answer = asker.decide(stock(), revision).await;
        assert!(!allowed(&answer), "revoked while Redis is down");
        snapshots.clear_local();
        let answer = asker.decide(stock(), revision).await;
        assert!(!allowed(&answer), "cold while Redis is down");
    }
    shutdown.cancel();
}
