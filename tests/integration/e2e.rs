//! End to end, across processes (issue "Client SDK"): directory, identity and authz as separate
//! binaries (and once as one `praxis serve`), the example `praxis-patients` built on
//! praxis-client, and a clinic's day: an admin sets up an enterprise, a staff member activates,
//! logs in with a password and TOTP, works on patient records as the rules allow, an admin
//! changes a role and the decisions follow, and the audit trail holds all of it. The fault run
//! restarts authz and directory under the example service.

use praxis_example_patients::pb as patients;
use praxis_example_patients::pb::patient_service_client::PatientServiceClient;
use praxis_proto::audit::v1 as audit;
use praxis_proto::directory::v1 as pb;
use praxis_proto::identity::v1 as identity;
use praxis_tests::authed;
use praxis_tests::system::{Layout, System};
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;

const PASSWORD: &str = "correct horse battery staple 7";

/// Skips (with the reason) when the binaries were not built, unless this run requires them.
fn runnable() -> bool {
    match praxis_tests::system::binaries_missing() {
        None => true,
        Some(reason) if std::env::var_os("PRAXIS_TEST_REQUIRE_PEERS").is_some() => {
            panic!("end-to-end suite required: {reason}")
        }
        Some(reason) => {
            eprintln!("end-to-end suite skipped: {reason}");
            false
        }
    }
}

struct Clinic {
    enterprise_id: String,
    north: String,
    south: String,
    front_desk: String,
    editor_role: String,
    staff: pb::User,
}

async fn set_up_clinic(system: &System) -> Clinic {
    let directory = system.channel(&system.urls.directory).await;
    let token = &system.platform_token;
    let enterprise = pb::enterprise_service_client::EnterpriseServiceClient::new(directory.clone())
        .create_enterprise(authed(
            pb::CreateEnterpriseRequest {
                display_name: "Northwind Health".into(),
                request_id: String::new(),
            },
            token,
        ))
        .await
        .expect("create enterprise")
        .into_inner()
        .enterprise
        .expect("enterprise");
    let domain = format!("{}.northwind.test", uuid::Uuid::now_v7().simple());
    pb::email_domain_service_client::EmailDomainServiceClient::new(directory.clone())
        .add_email_domain(authed(
            pb::AddEmailDomainRequest {
                enterprise_id: enterprise.id.clone(),
                domain: domain.clone(),
            },
            token,
        ))
        .await
        .expect("email domain");
    let practices = pb::practice_service_client::PracticeServiceClient::new(directory.clone());
    let practice = |name: &'static str| {
        let enterprise_id = enterprise.id.clone();
        let mut practices = practices.clone();
        async move {
            practices
                .create_practice(authed(
                    pb::CreatePracticeRequest {
                        enterprise_id,
                        display_name: name.into(),
                        request_id: String::new(),
                    },
                    token,
                ))
                .await
                .expect("practice")
                .into_inner()
                .practice
                .expect("practice")
                .id
        }
    };
    let north = practice("North Clinic").await;
    // Staff work on lines (D6): the front desk's phone line.
    let line = practices
        .clone()
        .create_line(authed(
            pb::CreateLineRequest {
                practice_id: north.clone(),
                line: Some(pb::Line {
                    display_name: "Front desk".into(),
                    phone_number: "+15550100001".into(),
                    ..Default::default()
                }),
            },
            token,
        ))
        .await
        .expect("line")
        .into_inner()
        .line
        .expect("line");
    let south = practice("South Clinic").await;
    let roles = pb::role_service_client::RoleServiceClient::new(directory.clone());
    let role = |name: &'static str, actions: &'static [&'static str]| {
        let enterprise_id = enterprise.id.clone();
        let mut roles = roles.clone();
        async move {
            roles
                .create_role(authed(
                    pb::CreateRoleRequest {
                        enterprise_id,
                        role: Some(pb::Role {
                            display_name: name.into(),
                            grants: actions
                                .iter()
                                .map(|action| pb::Grant {
                                    permission: Some(pb::Permission {
                                        feature: "patients".into(),
                                        action: (*action).into(),
                                    }),
                                    scope: pb::GrantScope::All.into(),
                                })
                                .collect(),
                            ..Default::default()
                        }),
                        request_id: String::new(),
                    },
                    token,
                ))
                .await
                .expect("role")
                .into_inner()
                .role
                .expect("role")
                .id
        }
    };
    let front_desk = role("Front desk", &["read", "create"]).await;
    let editor_role = role("Records editor", &["edit"]).await;
    let staff = pb::user_service_client::UserServiceClient::new(directory.clone())
        .create_user(authed(
            pb::CreateUserRequest {
                enterprise_id: enterprise.id.clone(),
                email: format!("bob@{domain}"),
                given_name: "Bob".into(),
                family_name: "Front".into(),
                kind: pb::UserKind::Staff.into(),
                memberships: vec![pb::PracticeMembership {
                    practice_id: north.clone(),
                    line_ids: vec![line.id],
                    ..Default::default()
                }],
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("staff user")
        .into_inner()
        .user
        .expect("user");
    bind(&directory, token, &staff.id, &front_desk, &north).await;
    Clinic {
        enterprise_id: enterprise.id,
        north,
        south,
        front_desk,
        editor_role,
        staff,
    }
}

async fn bind(directory: &Channel, token: &str, user: &str, role: &str, practice: &str) {
    pb::role_binding_service_client::RoleBindingServiceClient::new(directory.clone())
        .create_role_binding(authed(
            pb::CreateRoleBindingRequest {
                binding: Some(pb::RoleBinding {
                    user_id: user.into(),
                    role_id: role.into(),
                    practice_id: practice.into(),
                    ..Default::default()
                }),
            },
            token,
        ))
        .await
        .expect("role binding");
}

fn outcome(step: Option<identity::LoginStep>) -> Option<identity::login_step::Outcome> {
    step.and_then(|step| step.outcome)
}

/// A TOTP authenticator app: each code is for a later time step than the one before (identity
/// refuses a step already used), within the one step of skew identity allows.
struct Totp {
    secret: Vec<u8>,
    last_step: std::sync::Mutex<i64>,
}

impl Totp {
    async fn next_code(&self) -> String {
        const STEP: i64 = praxis_identity::totp::STEP_SECONDS;
        loop {
            let now = chrono::Utc::now().timestamp().div_euclid(STEP);
            {
                let mut last = self.last_step.lock().expect("lock");
                let step = (*last + 1).max(now - 1);
                if step <= now + 1 {
                    *last = step;
                    return praxis_identity::totp::code_at(&self.secret, step * STEP);
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The staff member's first day: the admin's temporary password, their own password, then
/// TOTP; returns their authenticator.
async fn activate_with_totp(system: &System, clinic: &Clinic) -> Totp {
    let identity_channel = system.channel(&system.urls.identity).await;
    let user = praxis_tests::datagen::GeneratedUser {
        id: clinic.staff.id.clone(),
        email: clinic.staff.email.clone(),
        kind: pb::UserKind::Staff,
        practice_id: clinic.north.clone(),
        role_ids: Vec::new(),
    };
    let first = praxis_tests::datagen::first_login(
        identity_channel.clone(),
        &system.platform_token,
        &user,
        PASSWORD,
    )
    .await
    .expect("first login: temporary password, then a new one");
    let mut two_factor =
        identity::two_factor_service_client::TwoFactorServiceClient::new(identity_channel);
    let uri = two_factor
        .start_totp_enrollment(authed(identity::StartTotpEnrollmentRequest {}, &first))
        .await
        .expect("start TOTP")
        .into_inner()
        .otpauth_uri;
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .and_then(|base32| data_encoding::BASE32_NOPAD.decode(base32.as_bytes()).ok())
        .expect("secret in the otpauth uri");
    let totp = Totp {
        secret,
        last_step: std::sync::Mutex::new(0),
    };
    two_factor
        .confirm_totp_enrollment(authed(
            identity::ConfirmTotpEnrollmentRequest {
                code: totp.next_code().await,
            },
            &first,
        ))
        .await
        .expect("confirm TOTP");
    totp
}

/// Password, then the TOTP challenge; the access token.
async fn login(system: &System, email: &str, totp: &Totp) -> Result<String, tonic::Status> {
    let mut auth = identity::auth_service_client::AuthServiceClient::new(
        system.channel(&system.urls.identity).await,
    );
    let step = auth
        .login(identity::LoginRequest {
            email: email.into(),
            password: PASSWORD.into(),
            client: None,
        })
        .await?
        .into_inner()
        .step;
    let challenge = match outcome(step) {
        Some(identity::login_step::Outcome::Challenge(challenge))
            if challenge.kind() == identity::ChallengeKind::TwoFactor =>
        {
            challenge
        }
        other => panic!("expected the TOTP challenge, got {other:?}"),
    };
    let step = auth
        .complete_challenge(identity::CompleteChallengeRequest {
            challenge_id: challenge.challenge_id,
            code: totp.next_code().await,
            ..Default::default()
        })
        .await?
        .into_inner()
        .step;
    match outcome(step) {
        Some(identity::login_step::Outcome::Tokens(tokens)) => Ok(tokens.access_token),
        other => panic!("expected tokens after TOTP, got {other:?}"),
    }
}

fn patients_client(channel: Channel) -> PatientServiceClient<Channel> {
    PatientServiceClient::new(channel)
}

async fn create_patient(
    system: &System,
    token: &str,
    practice_id: &str,
    name: &str,
) -> Result<patients::Patient, tonic::Status> {
    patients_client(system.channel(&system.urls.patients).await)
        .create_patient(authed(
            patients::CreatePatientRequest {
                practice_id: practice_id.into(),
                name: name.into(),
            },
            token,
        ))
        .await
        .map(|answer| answer.into_inner().patient.expect("patient"))
}

async fn read_patient(
    system: &System,
    token: &str,
    id: &str,
) -> Result<patients::Patient, tonic::Status> {
    patients_client(system.channel(&system.urls.patients).await)
        .get_patient(authed(patients::GetPatientRequest { id: id.into() }, token))
        .await
        .map(|answer| answer.into_inner().patient.expect("patient"))
}

async fn update_patient(
    system: &System,
    token: &str,
    id: &str,
    notes: &str,
) -> Result<patients::Patient, tonic::Status> {
    patients_client(system.channel(&system.urls.patients).await)
        .update_patient(authed(
            patients::UpdatePatientRequest {
                id: id.into(),
                notes: notes.into(),
            },
            token,
        ))
        .await
        .map(|answer| answer.into_inner().patient.expect("patient"))
}

/// The enterprise's events about `patient`, oldest first, once at least `expected` are there
/// (they arrive in the background); panics after 30 s.
async fn patient_events(
    system: &System,
    clinic: &Clinic,
    patient: &str,
    ready: impl Fn(&[audit::Event]) -> bool,
) -> Vec<audit::Event> {
    let mut client = audit::audit_service_client::AuditServiceClient::new(
        system.channel(&system.urls.directory).await,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = client
            .list_events(authed(
                audit::ListEventsRequest {
                    filter: Some(audit::EventFilter {
                        enterprise_id: clinic.enterprise_id.clone(),
                        target_type: "patient".into(),
                        target_id: patient.into(),
                        ..Default::default()
                    }),
                    page_size: 1000,
                    page_token: String::new(),
                },
                &system.platform_token,
            ))
            .await
            .map(|answer| answer.into_inner().events);
        if let Ok(mut events) = events {
            events.reverse();
            if ready(&events) {
                return events;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the events about {patient} after 30 s are not what was awaited: {events:?}"
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "audit trail unreadable for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn summary(events: &[audit::Event]) -> Vec<(String, i32)> {
    events
        .iter()
        .map(|event| (event.action.clone(), event.outcome))
        .collect()
}

/// Retries `call` for up to 20 s until `done` says its answer is the one expected.
async fn eventually<T, F, Fut>(
    what: &str,
    mut call: F,
    done: impl Fn(&Result<T, tonic::Status>) -> bool,
) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = call().await;
        if done(&answer) {
            return answer;
        }
        if let Err(status) = &answer {
            eprintln!("{what}: not yet: {:?} {}", status.code(), status.message());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {answer:?} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A service account's API key (I7) at the example service: checked with identity, held to
/// its scopes by authz, and refused once revoked (after the example's one-second key cache).
async fn api_key_reads(system: &System, clinic: &Clinic, patient: &str) -> String {
    let b = &system.backend;
    let token = &system.platform_token;
    let directory = system.channel(&system.urls.directory).await;
    let account = pb::user_service_client::UserServiceClient::new(directory.clone())
        .create_service_account(authed(
            pb::CreateServiceAccountRequest {
                enterprise_id: clinic.enterprise_id.clone(),
                display_name: "Records export".into(),
            },
            token,
        ))
        .await
        .expect("service account")
        .into_inner()
        .user
        .expect("user");
    bind(&directory, token, &account.id, &clinic.front_desk, "").await;
    let mut keys = identity::api_key_service_client::ApiKeyServiceClient::new(
        system.channel(&system.urls.identity).await,
    );
    let created = keys
        .create_api_key(authed(
            identity::CreateApiKeyRequest {
                principal_id: account.id.clone(),
                display_name: "export job".into(),
                scopes: vec!["patients:read".into()],
                expire_time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp() + 86_400,
                    nanos: 0,
                }),
                rate_limit_per_minute: 0,
            },
            token,
        ))
        .await
        .expect("API key")
        .into_inner();
    let key = created.secret;
    let read = eventually(
        "read with the API key",
        || read_patient(system, &key, patient),
        Result::is_ok,
    )
    .await
    .expect("read");
    assert_eq!(read.id, patient, "{b}");
    // The role allows creating patients; the key's scopes do not.
    let refused = create_patient(system, &key, &clinic.north, "Via Key")
        .await
        .expect_err("outside the key's scopes");
    assert_eq!(refused.code(), Code::PermissionDenied, "{b}: {refused:?}");
    keys.revoke_api_key(authed(
        identity::RevokeApiKeyRequest {
            key_id: created.api_key.expect("key").id,
        },
        token,
    ))
    .await
    .expect("revoke");
    eventually(
        "the revoked key refused",
        || read_patient(system, &key, patient),
        |answer| matches!(answer, Err(status) if status.code() == Code::Unauthenticated),
    )
    .await
    .expect_err("refused");
    account.id
}

const SUCCESS: i32 = audit::Outcome::Success as i32;
const DENIED: i32 = audit::Outcome::Denied as i32;

/// The day in the clinic; returns what later steps need.
async fn clinic_day(system: &System) -> (Clinic, Totp, String, String) {
    let b = &system.backend;
    let clinic = set_up_clinic(system).await;
    let totp = activate_with_totp(system, &clinic).await;
    let token = login(system, &clinic.staff.email, &totp)
        .await
        .expect("password + TOTP login");

    // No credential, or a forged one: the example service's layer refuses before any handler.
    let unauthenticated = patients_client(system.channel(&system.urls.patients).await)
        .get_patient(patients::GetPatientRequest { id: "p".into() })
        .await
        .expect_err("no token");
    assert_eq!(unauthenticated.code(), Code::Unauthenticated, "{b}");
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let refused = read_patient(system, &forged, "p")
        .await
        .expect_err("forged");
    assert_eq!(refused.code(), Code::Unauthenticated, "{b}: {refused:?}");

    // Allowed where the front-desk role reaches (north), denied elsewhere (south).
    let patient = create_patient(system, &token, &clinic.north, "Ada Patient")
        .await
        .unwrap_or_else(|e| panic!("{b}: create in north: {e:?}"));
    let read = read_patient(system, &token, &patient.id)
        .await
        .expect("read");
    assert_eq!(read.name, "Ada Patient");
    let elsewhere = create_patient(system, &token, &clinic.south, "Not Mine")
        .await
        .expect_err("south is not the staff member's practice");
    assert_eq!(
        elsewhere.code(),
        Code::PermissionDenied,
        "{b}: {elsewhere:?}"
    );
    let not_yet = update_patient(system, &token, &patient.id, "allergic to penicillin")
        .await
        .expect_err("no edit grant yet");
    assert_eq!(not_yet.code(), Code::PermissionDenied, "{b}");
    assert!(not_yet.message().contains("patients:edit") || !not_yet.message().is_empty());

    // The admin grants the editor role; the decision follows within the example's cache time.
    let directory = system.channel(&system.urls.directory).await;
    bind(
        &directory,
        &system.platform_token,
        &clinic.staff.id,
        &clinic.editor_role,
        &clinic.north,
    )
    .await;
    let updated = eventually(
        "edit after the role change",
        || update_patient(system, &token, &patient.id, "allergic to penicillin"),
        Result::is_ok,
    )
    .await
    .expect("updated");
    assert_eq!(updated.notes, "allergic to penicillin");

    let account = api_key_reads(system, &clinic, &patient.id).await;

    // The caller's trace reaches the audit trail through the example service.
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let mut traced = authed(
        patients::GetPatientRequest {
            id: patient.id.clone(),
        },
        &token,
    );
    traced.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .expect("header"),
    );
    patients_client(system.channel(&system.urls.patients).await)
        .get_patient(traced)
        .await
        .expect("traced read");

    // create, read, update DENIED, (update DENIED while the cache held), update, traced read.
    let events = patient_events(system, &clinic, &patient.id, |events| events.len() >= 4).await;
    let seen = summary(&events);
    assert_eq!(
        seen.first(),
        Some(&("patient.create".to_owned(), SUCCESS)),
        "{b}: {seen:?}"
    );
    assert!(
        seen.contains(&("patient.read".to_owned(), SUCCESS)),
        "{b}: {seen:?}"
    );
    assert!(
        seen.contains(&("patient.update".to_owned(), DENIED)),
        "{b}: {seen:?}"
    );
    // The example passed its caller's trace on to authz: authz's own record of the denial
    // carries the trace id of the example's event.
    let denied = events
        .iter()
        .find(|e| e.action == "patient.update" && e.outcome == DENIED)
        .expect("denied update");
    assert_eq!(denied.trace_id.len(), 32, "{b}: {denied:?}");
    assert!(
        events
            .iter()
            .any(|e| e.action == "authz.check" && e.trace_id == denied.trace_id),
        "{b}: no authz.check event in trace {}: {seen:?}",
        denied.trace_id
    );
    let events = eventually(
        "the traced read in the audit trail",
        || async {
            Ok(patient_events(system, &clinic, &patient.id, |events| !events.is_empty()).await)
        },
        |events| {
            events
                .as_ref()
                .is_ok_and(|events| events.iter().any(|e| e.trace_id == trace_id))
        },
    )
    .await
    .expect("events");
    assert!(
        summary(&events).contains(&("patient.update".to_owned(), SUCCESS)),
        "{b}: {:?}",
        summary(&events)
    );
    for event in &events {
        let actor = event.actor.as_ref().map_or("", |a| a.user_id.as_str());
        assert!(
            actor == clinic.staff.id || actor == account,
            "{b}: {event:?}"
        );
        assert_eq!(event.enterprise_id, clinic.enterprise_id);
    }
    assert!(
        events.iter().any(|e| e.action == "patient.read"
            && e.outcome == SUCCESS
            && e.actor.as_ref().is_some_and(|a| a.user_id == account)),
        "{b}: the API key's read is in the trail"
    );
    (clinic, totp, token, patient.id)
}

#[tokio::test]
async fn e2e_separate_processes_clinic_day_and_faults() {
    if !runnable() {
        return;
    }
    let mut system = System::start(Layout::Separate).await;
    let b = system.backend.clone();
    let (clinic, totp, token, first_patient) = clinic_day(&system).await;
    let mut reads_of_first = 0;

    // Authz goes away: no ALLOW from the example service, for a record it never decided on
    // nor (after its cache time) for one it did; it recovers by itself when authz is back.
    let second = create_patient(&system, &token, &clinic.north, "Bea Patient")
        .await
        .expect("second patient");
    system.kill_process("authz").await;
    let down = read_patient(&system, &token, &second.id)
        .await
        .expect_err("no decision without authz");
    assert_eq!(down.code(), Code::Unavailable, "{b}: {down:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let down = read_patient(&system, &token, &first_patient)
        .await
        .expect_err("cached decision expired; authz still down");
    assert_eq!(down.code(), Code::Unavailable, "{b}: {down:?}");
    system.start_process("authz").await;
    eventually(
        "read after authz is back",
        || read_patient(&system, &token, &second.id),
        Result::is_ok,
    )
    .await
    .expect("recovered");

    // Directory goes away: logins that need it fail clearly; reads still decided by authz
    // from its caches keep being audited, held by the example until directory is back.
    system.stop_process("directory").await;
    let refused = login(&system, &clinic.staff.email, &totp).await;
    assert!(
        matches!(
            refused.as_ref().map_err(tonic::Status::code),
            Err(Code::Unavailable)
        ),
        "{b}: login without directory: {refused:?}"
    );
    for _ in 0..3 {
        if read_patient(&system, &token, &first_patient).await.is_ok() {
            reads_of_first += 1;
        }
    }
    system.start_process("directory").await;
    eventually(
        "login after directory is back",
        || login(&system, &clinic.staff.email, &totp),
        Result::is_ok,
    )
    .await
    .expect("login again");

    // Nothing lost: every read answered while directory was down is in the trail, and the
    // chain verifies.
    let staff_reads = |events: &[audit::Event]| {
        events
            .iter()
            .filter(|e| {
                e.action == "patient.read"
                    && e.outcome == SUCCESS
                    && e.actor
                        .as_ref()
                        .is_some_and(|a| a.user_id == clinic.staff.id)
            })
            .count()
    };
    let expected = 2 + reads_of_first;
    patient_events(&system, &clinic, &first_patient, |events| {
        staff_reads(events) >= expected
    })
    .await;
    // A redelivered batch would show up after the first delivery: give it time to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events = patient_events(&system, &clinic, &first_patient, |_| true).await;
    let reads = staff_reads(&events);
    eprintln!("{b}: {reads_of_first} of 3 reads answered while directory was down");
    // Exactly: the staff member's two reads of the clinic day and those answered during the
    // outage, none twice (redelivery is idempotent).
    assert_eq!(reads, expected, "{b}: {:?}", summary(&events));
    let verified = audit::audit_service_client::AuditServiceClient::new(
        system.channel(&system.urls.directory).await,
    )
    .verify_chain(authed(
        audit::VerifyChainRequest {
            enterprise_id: clinic.enterprise_id.clone(),
        },
        &system.platform_token,
    ))
    .await
    .expect("verify chain")
    .into_inner();
    assert!(verified.intact, "{b}: {verified:?}");
}

#[tokio::test]
async fn e2e_praxis_serve_clinic_day() {
    if !runnable() {
        return;
    }
    let system = System::start(Layout::Serve).await;
    clinic_day(&system).await;
}

/// The same day with every listener on TLS and every gRPC listener requiring a client
/// certificate: the processes present theirs to each other; callers without one get nowhere.
#[tokio::test]
async fn e2e_separate_processes_over_mutual_tls() {
    if !runnable() {
        return;
    }
    let system = System::start_mutual_tls(Layout::Separate).await;
    let b = system.backend.clone();
    let health = |endpoint: tonic::transport::Endpoint| async move {
        let channel = endpoint
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(3))
            .connect_lazy();
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
    };
    // Trusting the CA but holding no certificate: refused at the handshake.
    let anonymous = praxis_runtime::tls::TlsConfig {
        ca_file: system.tls.ca_file.clone(),
        ..Default::default()
    };
    for url in [
        &system.urls.directory,
        &system.urls.authz,
        &system.urls.patients,
    ] {
        let refused = health(anonymous.endpoint(url).expect("endpoint")).await;
        assert!(
            refused.is_err(),
            "{b}: {url} answered a caller without a certificate"
        );
        let plain = url.replace("https://", "http://");
        let refused =
            health(tonic::transport::Endpoint::from_shared(plain.clone()).expect("endpoint")).await;
        assert!(refused.is_err(), "{b}: {plain} answered without TLS");
        let admitted = health(system.tls.endpoint(url).expect("endpoint")).await;
        assert!(
            admitted.is_ok(),
            "{b}: {url} refused a caller with a certificate: {admitted:?}"
        );
    }
    // Identity's HTTP is TLS too (browsers present no certificate there).
    let jwks = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(system.tls.ca_file.as_ref().expect("ca")).expect("ca file"),
            )
            .expect("ca"),
        )
        .build()
        .expect("http client")
        .get(format!(
            "{}/.well-known/jwks.json",
            system.urls.identity_http
        ))
        .send()
        .await
        .expect("JWK Set over https");
    assert!(jwks.status().is_success(), "{b}: {}", jwks.status());
    clinic_day(&system).await;
}
