//! Logging in and staying logged in through gRPC (I1–I5, I8, D13, D14), including the ways it
//! can be attacked: wrong passwords, locked accounts, replayed codes and refresh tokens, idle
//! sessions, foreign addresses.

use praxis_directory::domain::policy::EnterprisePolicy;
use praxis_directory::domain::service::EnterpriseChange;
use praxis_directory::domain::*;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use praxis_proto::identity::v1::session_service_client::SessionServiceClient;
use praxis_proto::identity::v1::two_factor_service_client::TwoFactorServiceClient;
use praxis_tests::{Fixture, Install, authed, fixture};
use tonic::Code;

const PASSWORD: &str = "plum orbit candle 7";

async fn auth(install: &Install) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::new(install.channel(install.addresses.identity).await)
}

fn login_request(email: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        email: email.to_owned(),
        password: password.to_owned(),
        client: Some(pb::Client {
            device_id: "laptop-1".into(),
            user_agent: "tests".into(),
        }),
    }
}

async fn login(
    install: &Install,
    email: &str,
    password: &str,
) -> Result<pb::LoginStep, tonic::Status> {
    auth(install)
        .await
        .login(login_request(email, password))
        .await
        .map(|r| r.into_inner().step.expect("step"))
}

fn tokens(step: pb::LoginStep) -> pb::Tokens {
    match step.outcome {
        Some(pb::login_step::Outcome::Tokens(tokens)) => tokens,
        other => panic!("expected tokens, got {other:?}"),
    }
}

fn challenge(step: pb::LoginStep) -> pb::Challenge {
    match step.outcome {
        Some(pb::login_step::Outcome::Challenge(challenge)) => challenge,
        other => panic!("expected a challenge, got {other:?}"),
    }
}

async fn with_password(install: &Install, fixture: &Fixture, kind: UserKind) -> User {
    let user = fixture.user(kind).clone();
    install
        .identity
        .seed_password(&user.id.0, PASSWORD, false)
        .await
        .expect("password");
    user
}

async fn introspect(install: &Install, bearer: &str, token: &str) -> pb::IntrospectResponse {
    auth(install)
        .await
        .introspect(authed(
            pb::IntrospectRequest {
                access_token: token.to_owned(),
            },
            bearer,
        ))
        .await
        .expect("introspect")
        .into_inner()
}

async fn refresh(install: &Install, token: &str) -> Result<pb::Tokens, tonic::Status> {
    auth(install)
        .await
        .refresh(pb::RefreshRequest {
            refresh_token: token.to_owned(),
            client: Some(pb::Client {
                device_id: "laptop-1".into(),
                user_agent: "tests".into(),
            }),
        })
        .await
        .map(|r| r.into_inner().tokens.expect("tokens"))
}

async fn set_policy(
    install: &Install,
    fixture: &Fixture,
    change: impl FnOnce(&mut EnterprisePolicy),
) {
    let mut policy = install
        .directory
        .get_enterprise(&Actor::Operator, &fixture.enterprise.id)
        .await
        .expect("enterprise")
        .policy;
    change(&mut policy);
    install
        .directory
        .update_enterprise(
            &Actor::Operator,
            &fixture.enterprise.id,
            None,
            EnterpriseChange {
                display_name: None,
                min_access: None,
                policy: Some(policy),
            },
            chrono::Utc::now(),
        )
        .await
        .expect("policy");
}

fn totp_secret(uri: &str) -> Vec<u8> {
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("secret in the otpauth uri");
    data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("base32")
}

#[tokio::test]
async fn i5_login_refresh_rotation_and_reuse_ends_the_session() {
    for install in praxis_tests::installs().await {
        let b = install.backend.clone();
        let acme = fixture(&install, "Acme").await;
        let staff = with_password(&install, &acme, UserKind::Staff).await;
        let first = tokens(
            login(&install, &staff.email, PASSWORD)
                .await
                .expect("login"),
        );

        // The access token works against another service, and introspects as active.
        let seen = introspect(&install, &first.access_token, &first.access_token).await;
        assert!(seen.active, "{b}");
        assert_eq!(seen.user_id, staff.id.0, "{b}");
        assert_eq!(seen.amr, ["pwd"], "{b}");
        let mut enterprises =
            praxis_proto::directory::v1::enterprise_service_client::EnterpriseServiceClient::new(
                install.channel(install.addresses.directory).await,
            );
        enterprises
            .get_enterprise(authed(
                praxis_proto::directory::v1::GetEnterpriseRequest {
                    enterprise_id: acme.enterprise.id.0.clone(),
                },
                &first.access_token,
            ))
            .await
            .expect("a logged-in user reads their enterprise");

        // Rotation: each refresh token works once.
        let second = refresh(&install, &first.refresh_token)
            .await
            .expect("refresh");
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(second.session_id, first.session_id);
        assert!(
            introspect(&install, &second.access_token, &second.access_token)
                .await
                .active
        );

        // Replaying the spent token ends the session: the newer tokens die with it.
        let replay = refresh(&install, &first.refresh_token).await.unwrap_err();
        assert_eq!(replay.code(), Code::Unauthenticated, "{b}");
        let after = introspect(&install, &second.access_token, &second.access_token).await;
        assert!(!after.active, "{b}: the session was ended by the reuse");
        assert_eq!(
            refresh(&install, &second.refresh_token)
                .await
                .unwrap_err()
                .code(),
            Code::Unauthenticated,
            "{b}"
        );

        // Tokens that are not ours introspect as inactive.
        assert!(
            !introspect(&install, &first.access_token, "garbage")
                .await
                .active
        );
        let status = refresh(&install, "not-a-token").await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{b}");
    }
}

#[tokio::test]
async fn i2_wrong_passwords_lock_the_account_and_unknown_emails_look_the_same() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let admin = with_password(&install, &acme, UserKind::EnterpriseAdmin).await;

    let unknown = login(&install, "nobody@acme.test", PASSWORD)
        .await
        .unwrap_err();
    let wrong = login(&install, &staff.email, "not the password")
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert_eq!(
        (unknown.code(), unknown.message()),
        (wrong.code(), wrong.message()),
        "an unknown email answers exactly like a wrong password"
    );
    for _ in 0..4 {
        login(&install, &staff.email, "still not it")
            .await
            .unwrap_err();
    }
    // Five failures: locked, so even the right password is refused, with the same answer.
    let locked = login(&install, &staff.email, PASSWORD).await.unwrap_err();
    assert_eq!(
        (locked.code(), locked.message()),
        (wrong.code(), wrong.message())
    );

    // An admin unlocks; the right password works again.
    let admin_tokens = tokens(
        login(&install, &admin.email, PASSWORD)
            .await
            .expect("admin"),
    );
    auth(&install)
        .await
        .unlock_user(authed(
            pb::UnlockUserRequest {
                user_id: staff.id.0.clone(),
            },
            &admin_tokens.access_token,
        ))
        .await
        .expect("unlock");
    tokens(
        login(&install, &staff.email, PASSWORD)
            .await
            .expect("unlocked"),
    );

    // Staff cannot unlock anyone.
    let staff_tokens = tokens(
        login(&install, &staff.email, PASSWORD)
            .await
            .expect("login"),
    );
    let status = auth(&install)
        .await
        .unlock_user(authed(
            pb::UnlockUserRequest {
                user_id: admin.id.0.clone(),
            },
            &staff_tokens.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // Every attempt is in the audit outbox, with its reason.
    let db = praxis_store::connect(&install.config.identity().service.database_url)
        .await
        .unwrap();
    use praxis_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let events = praxis_identity::store::audit_outbox::Entity::find()
        .filter(praxis_identity::store::audit_outbox::Column::Action.eq("login"))
        .all(&db)
        .await
        .unwrap();
    let reasons: Vec<String> = events.iter().map(|e| e.details.clone()).collect();
    assert!(
        reasons
            .iter()
            .filter(|d| d.contains("wrong password"))
            .count()
            >= 5,
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|d| d.contains("account locked")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|d| d.contains("unknown email")),
        "{reasons:?}"
    );
    assert!(events.iter().any(|e| e.outcome == "success"));
}

#[tokio::test]
async fn i2_the_lockout_threshold_is_the_enterprise_policy() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    set_policy(&install, &acme, |policy| {
        policy.password.lockout_threshold = 2;
        policy.password.lockout_minutes = 1;
    })
    .await;

    for _ in 0..2 {
        login(&install, &staff.email, "not the password")
            .await
            .unwrap_err();
    }
    let status = login(&install, &staff.email, PASSWORD).await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "two failures lock under this enterprise's policy, not the default five"
    );
    let db = praxis_store::connect(&install.config.identity().service.database_url)
        .await
        .unwrap();
    use praxis_store::sea_orm::EntityTrait;
    let credential = praxis_identity::store::credential::Entity::find_by_id(&staff.id.0)
        .one(&db)
        .await
        .unwrap()
        .expect("credential");
    let locked_for = credential.locked_until.expect("locked") - chrono::Utc::now();
    assert!(
        locked_for <= chrono::Duration::minutes(1) && locked_for > chrono::Duration::zero(),
        "locked for the policy's one minute: {locked_for}"
    );
}

#[tokio::test]
async fn i2_logins_from_one_address_are_throttled() {
    let install = praxis_tests::start_configured(false, |config| {
        config.identity.login.attempts_per_ip_per_minute = 5;
    })
    .await;
    for n in 0..5 {
        let status = login(&install, &format!("guess{n}@nowhere.test"), "x")
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    let status = login(&install, "guess@nowhere.test", "x")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn i3_totp_enrolment_codes_once_and_recovery_codes_once() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let session = tokens(
        login(&install, &staff.email, PASSWORD)
            .await
            .expect("login"),
    );
    let mut two_factor =
        TwoFactorServiceClient::new(install.channel(install.addresses.identity).await);
    let uri = two_factor
        .start_totp_enrollment(authed(
            pb::StartTotpEnrollmentRequest {},
            &session.access_token,
        ))
        .await
        .expect("start")
        .into_inner()
        .otpauth_uri;
    assert!(uri.starts_with("otpauth://totp/Praxis:"), "{uri}");
    let secret = totp_secret(&uri);
    let now = chrono::Utc::now().timestamp();
    let wrong = two_factor
        .confirm_totp_enrollment(authed(
            pb::ConfirmTotpEnrollmentRequest {
                code: praxis_identity::totp::code_at(&secret, now - 300),
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    let recovery = two_factor
        .confirm_totp_enrollment(authed(
            pb::ConfirmTotpEnrollmentRequest {
                code: praxis_identity::totp::code_at(&secret, now - 30),
            },
            &session.access_token,
        ))
        .await
        .expect("confirm")
        .into_inner()
        .recovery_codes;
    assert_eq!(recovery.len(), 10);

    // From now on the password alone gives a challenge.
    let complete = |id: String, code: String| {
        let install = &install;
        async move {
            auth(install)
                .await
                .complete_challenge(pb::CompleteChallengeRequest {
                    challenge_id: id,
                    code,
                    new_password: String::new(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().step.expect("step"))
        }
    };
    let asked = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(asked.kind(), pb::ChallengeKind::TwoFactor);
    // A code from 3 steps ago, then the code used to confirm (its step is spent): refused.
    let old = praxis_identity::totp::code_at(&secret, now - 90);
    assert_eq!(
        complete(asked.challenge_id.clone(), old)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let spent = praxis_identity::totp::code_at(&secret, now - 30);
    assert_eq!(
        complete(asked.challenge_id.clone(), spent)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let fresh = praxis_identity::totp::code_at(&secret, now + 30);
    let done = tokens(
        complete(asked.challenge_id.clone(), fresh.clone())
            .await
            .expect("code"),
    );
    let seen = introspect(&install, &done.access_token, &done.access_token).await;
    assert_eq!(seen.amr, ["pwd", "otp"]);
    // The challenge is spent; a fresh login cannot reuse the code either.
    assert_eq!(
        complete(asked.challenge_id, fresh.clone())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let again = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(
        complete(again.challenge_id.clone(), fresh)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // A recovery code works once.
    tokens(
        complete(again.challenge_id, recovery[0].clone())
            .await
            .expect("recovery code"),
    );
    let third = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(
        complete(third.challenge_id.clone(), recovery[0].clone())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    tokens(
        complete(third.challenge_id, recovery[1].to_uppercase())
            .await
            .expect("another code"),
    );

    // Too many wrong answers spend the challenge.
    let fourth = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    for _ in 0..5 {
        complete(fourth.challenge_id.clone(), "000000".into())
            .await
            .unwrap_err();
    }
    let status = complete(fourth.challenge_id, recovery[2].clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("challenge"), "{status:?}");
}

#[tokio::test]
async fn i3_enterprises_requiring_2fa_enrol_users_at_their_next_login() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    set_policy(&install, &acme, |policy| policy.two_factor_required = true).await;
    let asked = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(asked.kind(), pb::ChallengeKind::TwoFactorEnrollment);
    let secret = totp_secret(&asked.otpauth_uri);
    let step = auth(&install)
        .await
        .complete_challenge(pb::CompleteChallengeRequest {
            challenge_id: asked.challenge_id,
            code: praxis_identity::totp::code_at(&secret, chrono::Utc::now().timestamp()),
            new_password: String::new(),
            ..Default::default()
        })
        .await
        .expect("enrolled")
        .into_inner()
        .step
        .unwrap();
    assert_eq!(step.recovery_codes.len(), 10);
    tokens(step);
    let next = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(next.kind(), pb::ChallengeKind::TwoFactor);
}

#[tokio::test]
async fn d13_a_temporary_password_must_be_changed_at_first_login() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let admin = with_password(&install, &acme, UserKind::EnterpriseAdmin).await;
    let staff = acme.user(UserKind::Staff).clone();
    let admin_tokens = tokens(login(&install, &admin.email, PASSWORD).await.unwrap());
    let weak = auth(&install)
        .await
        .set_temporary_password(authed(
            pb::SetTemporaryPasswordRequest {
                user_id: staff.id.0.clone(),
                temporary_password: "password123".into(),
            },
            &admin_tokens.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(weak.code(), Code::InvalidArgument);
    auth(&install)
        .await
        .set_temporary_password(authed(
            pb::SetTemporaryPasswordRequest {
                user_id: staff.id.0.clone(),
                temporary_password: "temporary pass 42".into(),
            },
            &admin_tokens.access_token,
        ))
        .await
        .expect("temporary password");
    let asked = challenge(
        login(&install, &staff.email, "temporary pass 42")
            .await
            .unwrap(),
    );
    assert_eq!(asked.kind(), pb::ChallengeKind::PasswordChange);
    let answer = |password: &str| pb::CompleteChallengeRequest {
        challenge_id: asked.challenge_id.clone(),
        code: String::new(),
        new_password: password.to_owned(),
        ..Default::default()
    };
    // A weak or reused password is refused and the challenge stays answerable.
    for bad in ["short", "temporary pass 42", "Welcome2026"] {
        let status = auth(&install)
            .await
            .complete_challenge(answer(bad))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
    }
    let step = auth(&install)
        .await
        .complete_challenge(answer("brand new secret 9"))
        .await
        .expect("changed")
        .into_inner()
        .step
        .unwrap();
    tokens(step);
    assert_eq!(
        login(&install, &staff.email, "temporary pass 42")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    tokens(
        login(&install, &staff.email, "brand new secret 9")
            .await
            .expect("new password"),
    );
}

#[tokio::test]
async fn i4_sessions_listed_ended_limited_and_gone_when_idle() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let mut sessions = SessionServiceClient::new(install.channel(install.addresses.identity).await);
    let one = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let two = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let listed = sessions
        .list_sessions(authed(
            pb::ListSessionsRequest::default(),
            &two.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|s| s.current && s.id == two.session_id));
    assert!(
        listed
            .iter()
            .all(|s| s.device_id == "laptop-1" && s.ip == "127.0.0.1")
    );
    let ended = sessions
        .end_other_sessions(authed(pb::EndOtherSessionsRequest {}, &two.access_token))
        .await
        .unwrap()
        .into_inner()
        .ended;
    assert_eq!(ended, 1);
    assert!(
        !introspect(&install, &two.access_token, &one.access_token)
            .await
            .active
    );
    assert!(
        introspect(&install, &two.access_token, &two.access_token)
            .await
            .active
    );

    // The limit: reject the new one, or end the oldest.
    set_policy(&install, &acme, |policy| {
        policy.session.max_concurrent_sessions = 2;
        policy.session.at_limit = praxis_directory::domain::policy::SessionLimitAction::RejectNew;
    })
    .await;
    let three = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let refused = login(&install, &staff.email, PASSWORD).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    set_policy(&install, &acme, |policy| {
        policy.session.at_limit = praxis_directory::domain::policy::SessionLimitAction::EndOldest;
    })
    .await;
    let four = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert!(
        !introspect(&install, &four.access_token, &two.access_token)
            .await
            .active,
        "oldest ended"
    );
    assert!(
        introspect(&install, &four.access_token, &three.access_token)
            .await
            .active
    );

    // Idle past the timeout: gone.
    let db = praxis_store::connect(&install.config.identity().service.database_url)
        .await
        .unwrap();
    use praxis_store::sea_orm::{ActiveModelTrait, Set};
    praxis_identity::store::session::ActiveModel {
        id: Set(three.session_id.clone()),
        last_seen_at: Set(chrono::Utc::now() - chrono::Duration::hours(2)),
        ..Default::default()
    }
    .update(&db)
    .await
    .unwrap();
    // The row was aged behind identity's back; drop the cached copy as identity's writes do.
    install
        .cache
        .delete(&format!("praxis:identity:session:{}", three.session_id))
        .await
        .unwrap();
    assert!(
        !introspect(&install, &four.access_token, &three.access_token)
            .await
            .active
    );
    assert_eq!(
        refresh(&install, &three.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // Log out everywhere.
    sessions
        .end_all_sessions(authed(pb::EndAllSessionsRequest {}, &four.access_token))
        .await
        .unwrap();
    assert_eq!(
        refresh(&install, &four.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

fn from<T>(ip: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-forwarded-for", ip.parse().unwrap());
    request
}

#[tokio::test]
async fn i4_bound_sessions_end_when_used_from_elsewhere_and_d14_disabling_ends_them() {
    let install = praxis_tests::start_configured(false, |config| {
        config.identity.login.trust_forwarded_for = true;
    })
    .await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    set_policy(&install, &acme, |policy| policy.session.bind_to_ip = true).await;
    let step = auth(&install)
        .await
        .login(from("198.51.100.7", login_request(&staff.email, PASSWORD)))
        .await
        .unwrap()
        .into_inner()
        .step
        .unwrap();
    let bound = tokens(step);
    let moved = auth(&install)
        .await
        .refresh(from(
            "203.0.113.9",
            pb::RefreshRequest {
                refresh_token: bound.refresh_token.clone(),
                client: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(moved.code(), Code::Unauthenticated);
    assert!(
        !introspect(&install, &bound.access_token, &bound.access_token)
            .await
            .active
    );

    // I8: an allowlist for staff keeps them out from elsewhere.
    set_policy(&install, &acme, |policy| {
        policy.session.bind_to_ip = false;
        policy.ip_allowlists = vec![praxis_directory::domain::policy::IpAllowlist {
            kind: Some(UserKind::Staff),
            role_id: None,
            cidrs: vec!["10.0.0.0/8".into()],
        }];
    })
    .await;
    let outside = auth(&install)
        .await
        .login(from("198.51.100.7", login_request(&staff.email, PASSWORD)))
        .await
        .unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied);
    let inside = auth(&install)
        .await
        .login(from("10.1.2.3", login_request(&staff.email, PASSWORD)))
        .await
        .unwrap()
        .into_inner()
        .step
        .unwrap();
    let inside = tokens(inside);

    // D14: disabling the user ends what they have open, and they cannot log in.
    install
        .directory
        .disable_user(&Actor::Operator, &staff.id, None, chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        !introspect(&install, &inside.access_token, &inside.access_token)
            .await
            .active
    );
    assert_eq!(
        auth(&install)
            .await
            .refresh(from(
                "10.1.2.3",
                pb::RefreshRequest {
                    refresh_token: inside.refresh_token,
                    client: None,
                }
            ))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let status = auth(&install)
        .await
        .login(from("10.1.2.3", login_request(&staff.email, PASSWORD)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn i4_step_up_and_password_change() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let first = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let other = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let before = introspect(&install, &first.access_token, &first.access_token).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let wrong = auth(&install)
        .await
        .reauthenticate(authed(
            pb::ReauthenticateRequest {
                password: "nope".into(),
                code: String::new(),
            },
            &first.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::PermissionDenied);
    let stepped = auth(&install)
        .await
        .reauthenticate(authed(
            pb::ReauthenticateRequest {
                password: PASSWORD.into(),
                code: String::new(),
            },
            &first.access_token,
        ))
        .await
        .expect("step-up")
        .into_inner();
    let after = introspect(&install, &stepped.access_token, &stepped.access_token).await;
    assert!(
        after.auth_time.unwrap().seconds > before.auth_time.unwrap().seconds,
        "fresh auth_time"
    );
    assert_eq!(after.session_id, first.session_id);

    // Changing the password needs the current one and ends the other sessions.
    let status = auth(&install)
        .await
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: "wrong".into(),
                new_password: "another good one 5".into(),
            },
            &first.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    auth(&install)
        .await
        .change_password(authed(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: "another good one 5".into(),
            },
            &first.access_token,
        ))
        .await
        .expect("changed");
    assert!(
        !introspect(&install, &first.access_token, &other.access_token)
            .await
            .active
    );
    assert!(
        introspect(&install, &first.access_token, &first.access_token)
            .await
            .active
    );
    tokens(
        login(&install, &staff.email, "another good one 5")
            .await
            .expect("new password"),
    );

    // Each of these is in identity's audit outbox with its outcome (AU2).
    let db = praxis_store::connect(&install.config.identity().service.database_url)
        .await
        .unwrap();
    use praxis_store::sea_orm::EntityTrait;
    let recorded: Vec<(String, String)> = praxis_identity::store::audit_outbox::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.actor == staff.id.0)
        .map(|e| (e.action, e.outcome))
        .collect();
    for wanted in [
        ("session.reauthenticate", "failure"),
        ("session.reauthenticate", "success"),
        ("password.change", "failure"),
        ("password.change", "success"),
        ("session.end", "success"),
    ] {
        assert!(
            recorded
                .iter()
                .any(|(action, outcome)| (action.as_str(), outcome.as_str()) == wanted),
            "{wanted:?} in {recorded:?}"
        );
    }
}

/// A standalone identity (another replica, same database and key) reads accounts from the
/// directory over gRPC with a service token it signs for itself; nobody else may read them.
#[tokio::test]
async fn standalone_identity_reads_accounts_from_directory_over_grpc() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let mut config = install.config.identity();
    config.service.listen = "127.0.0.1:0".into();
    config.directory_url = format!("http://{}", install.addresses.directory);
    let replica = praxis_identity::open(
        &config,
        praxis_cache::open("memory").unwrap(),
        praxis_identity::AccountSource::Directory(config.directory_url.clone()),
    )
    .await
    .unwrap();
    let verifier =
        std::sync::Arc::new(praxis_runtime::TokenVerifier::new(&config.service.auth).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let host = replica.host(verifier, std::time::Duration::from_secs(1));
    tokio::spawn(host.serve(listener, shutdown.clone()));

    let mut client = AuthServiceClient::new(install.channel(address).await);
    let step = client
        .login(login_request(&staff.email, PASSWORD))
        .await
        .expect("login through the standalone identity")
        .into_inner()
        .step
        .unwrap();
    let issued = tokens(step);
    let wrong = client
        .login(login_request(&staff.email, "not it"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    // The login was recorded in the directory (D19).
    let user = install
        .directory
        .store()
        .user(&staff.id)
        .await
        .unwrap()
        .unwrap();
    assert!(user.last_login_at.is_some());

    // A user's token cannot read accounts.
    let mut accounts =
        praxis_proto::directory::v1::account_service_client::AccountServiceClient::new(
            install.channel(install.addresses.directory).await,
        );
    let status = accounts
        .get_account(authed(
            praxis_proto::directory::v1::GetAccountRequest {
                key: Some(
                    praxis_proto::directory::v1::get_account_request::Key::Email(
                        staff.email.clone(),
                    ),
                ),
            },
            &issued.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    shutdown.cancel();
}

/// I1: a forgotten password is reset through a single-use, expiring link; the answer does not
/// say whether the email exists; the reset ends every session.
#[tokio::test]
async fn i1_password_reset_links_are_single_use_and_do_not_reveal_emails() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let open_session = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let ask = |email: &str| {
        let install = &install;
        let email = email.to_owned();
        async move {
            auth(install)
                .await
                .request_password_reset(pb::RequestPasswordResetRequest { email })
                .await
        }
    };
    let known = ask(&staff.email).await.expect("known email");
    let unknown = ask("nobody@acme.test").await.expect("unknown email");
    assert_eq!(known.into_inner(), unknown.into_inner(), "the same answer");

    // Exactly one message goes out, to the known address, with a link.
    let mut link = None;
    for _ in 0..100 {
        let sent: Vec<_> = install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.topic == praxis_identity::resets::RESET_TOPIC)
            .collect();
        if let Some(message) = sent.first() {
            assert_eq!(sent.len(), 1);
            assert_eq!(message.recipient, staff.email);
            let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
            link = payload["link"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let link = link.expect("the reset link was relayed to the notifier");
    let token = link
        .split("token=")
        .nth(1)
        .expect("token in the link")
        .to_owned();

    let reset = |token: &str, password: &str| {
        let install = &install;
        let request = pb::ResetPasswordRequest {
            token: token.to_owned(),
            new_password: password.to_owned(),
        };
        async move { auth(install).await.reset_password(request).await }
    };
    // A weak password is refused and leaves the link usable.
    assert_eq!(
        reset(&token, "password1").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    reset(&token, "fresh start pass 3").await.expect("reset");
    assert_eq!(
        reset(&token, "another fresh one 4")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated,
        "a link works once"
    );
    assert_eq!(
        reset("made-up-token", "another fresh one 4")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert!(
        !introspect(
            &install,
            &open_session.access_token,
            &open_session.access_token
        )
        .await
        .active
    );
    assert_eq!(
        login(&install, &staff.email, PASSWORD)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    tokens(
        login(&install, &staff.email, "fresh start pass 3")
            .await
            .expect("new password"),
    );

    // An expired link does nothing.
    ask(&staff.email).await.unwrap();
    let db = praxis_store::connect(&install.config.identity().service.database_url)
        .await
        .unwrap();
    use praxis_store::sea_orm::sea_query::Expr;
    use praxis_store::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    praxis_identity::store::reset_token::Entity::update_many()
        .col_expr(
            praxis_identity::store::reset_token::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
        )
        .filter(praxis_identity::store::reset_token::Column::UsedAt.is_null())
        .exec(&db)
        .await
        .unwrap();
    let mut expired = None;
    for _ in 0..100 {
        let sent: Vec<_> = install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.topic == praxis_identity::resets::RESET_TOPIC)
            .collect();
        if sent.len() == 2 {
            let payload: serde_json::Value = serde_json::from_str(&sent[1].payload).unwrap();
            expired = payload["link"]
                .as_str()
                .and_then(|l| l.split("token=").nth(1))
                .map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let expired = expired.expect("second link relayed");
    assert_eq!(
        reset(&expired, "late but strong 12")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

/// The token of the invitation link relayed to `email`.
async fn invitation_token(install: &praxis_tests::Install, email: &str) -> String {
    for _ in 0..100 {
        if let Some(message) = install
            .notifier
            .delivered()
            .into_iter()
            .find(|n| n.recipient == email)
        {
            let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
            return payload["activation_url"]
                .as_str()
                .and_then(|url| url.split("token=").nth(1))
                .map(str::to_owned)
                .expect("an activation link");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no invitation was relayed to {email}");
}

/// D13: an invited user activates with the link's token and a first password; the link works
/// once, and the user is ACTIVE in the directory afterwards.
#[tokio::test]
async fn d13_invited_users_activate_with_the_link_once() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let created = install
        .directory
        .create_user(
            &Actor::Operator,
            &acme.enterprise.id,
            praxis_directory::domain::users::CreateUser {
                email: format!("newcomer@{}", acme.domain),
                given_name: "New".into(),
                family_name: "Comer".into(),
                kind: Some(UserKind::EnterpriseAdmin),
                memberships: Vec::new(),
                template_user_id: None,
                request_id: String::new(),
                person_id: None,
            },
            chrono::Utc::now(),
        )
        .await
        .expect("invited");
    assert_eq!(created.user.status, UserStatus::Invited);
    let token = invitation_token(&install, &created.user.email).await;
    // No password yet: logging in fails like any wrong password.
    assert_eq!(
        login(&install, &created.user.email, "first pass phrase 1")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let activate = |token: &str, password: &str| {
        let install = &install;
        let request = pb::ActivateAccountRequest {
            token: token.to_owned(),
            password: password.to_owned(),
        };
        async move { auth(install).await.activate_account(request).await }
    };
    assert_eq!(
        activate(&token, "password123").await.unwrap_err().code(),
        Code::InvalidArgument
    );
    activate(&token, "first pass phrase 1")
        .await
        .expect("activated");
    assert_eq!(
        activate(&token, "second pass phrase 2")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated,
        "the link works once"
    );
    assert_eq!(
        activate("forged-token", "second pass phrase 2")
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let user = install
        .directory
        .store()
        .user(&created.user.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.status, UserStatus::Active);
    tokens(
        login(&install, &created.user.email, "first pass phrase 1")
            .await
            .expect("login"),
    );
}

/// D13: an invited user whom an admin gave a temporary password takes the account at the
/// login that changes it: ACTIVE from then on (so authz decides for them), audited, and the
/// invitation link they never used no longer activates anyone.
#[tokio::test]
async fn d13_an_invited_user_with_a_temporary_password_is_active_after_changing_it() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let admin = with_password(&install, &acme, UserKind::EnterpriseAdmin).await;
    let admin_tokens = tokens(login(&install, &admin.email, PASSWORD).await.unwrap());
    let practice = &acme.practices[0];
    let created = install
        .directory
        .create_user(
            &Actor::Operator,
            &acme.enterprise.id,
            praxis_directory::domain::users::CreateUser {
                email: format!("temp.start@{}", acme.domain),
                given_name: "Temp".into(),
                family_name: "Start".into(),
                kind: Some(UserKind::Staff),
                memberships: vec![praxis_directory::domain::Membership::new(
                    practice.id.clone(),
                    vec![practice.lines[0].id.clone()],
                )],
                template_user_id: None,
                request_id: String::new(),
                person_id: None,
            },
            chrono::Utc::now(),
        )
        .await
        .expect("invited");
    assert_eq!(created.user.status, UserStatus::Invited);
    let link = invitation_token(&install, &created.user.email).await;
    auth(&install)
        .await
        .set_temporary_password(authed(
            pb::SetTemporaryPasswordRequest {
                user_id: created.user.id.0.clone(),
                temporary_password: "temporary pass 42".into(),
            },
            &admin_tokens.access_token,
        ))
        .await
        .expect("temporary password");
    let asked = challenge(
        login(&install, &created.user.email, "temporary pass 42")
            .await
            .unwrap(),
    );
    assert_eq!(asked.kind(), pb::ChallengeKind::PasswordChange);
    let still = install.directory.store().user(&created.user.id).await;
    assert_eq!(
        still.unwrap().unwrap().status,
        UserStatus::Invited,
        "not before the password is changed"
    );
    let session = tokens(
        auth(&install)
            .await
            .complete_challenge(pb::CompleteChallengeRequest {
                challenge_id: asked.challenge_id.clone(),
                new_password: "brand new secret 9".into(),
                ..Default::default()
            })
            .await
            .expect("changed")
            .into_inner()
            .step
            .unwrap(),
    );
    let user = install.directory.store().user(&created.user.id).await;
    assert_eq!(user.unwrap().unwrap().status, UserStatus::Active);

    // authz now decides for them: their practice's appointments, as staff.
    let mut authz = praxis_proto::authz::v1::authz_service_client::AuthzServiceClient::new(
        install.channel(install.addresses.authz).await,
    );
    let decision = authz
        .check(authed(
            praxis_proto::authz::v1::CheckRequest {
                principal: Some(praxis_proto::authz::v1::Principal {
                    user_id: created.user.id.0.clone(),
                }),
                permission: "appointments:read".into(),
                resource: Some(praxis_proto::authz::v1::Resource {
                    r#type: "appointment".into(),
                    id: "a-1".into(),
                    enterprise_id: acme.enterprise.id.0.clone(),
                    practice_id: practice.id.0.clone(),
                    ..Default::default()
                }),
                min_revision: 0,
                context: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        decision.decision(),
        praxis_proto::authz::v1::Decision::Allow,
        "{:?}",
        decision.reasons
    );

    let status = auth(&install)
        .await
        .activate_account(pb::ActivateAccountRequest {
            token: link,
            password: "another pass phrase 3".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unauthenticated,
        "the unused link is spent"
    );
    tokens(
        login(&install, &created.user.email, "brand new secret 9")
            .await
            .expect("the changed password still works"),
    );
    let query = praxis_directory::store::audit::EventQuery {
        enterprise_id: acme.enterprise.id.0.clone(),
        action: Some("user.activate".into()),
        ..Default::default()
    };
    let (events, _) = install
        .directory
        .list_events(&Actor::Operator, &query, 100, "")
        .await
        .expect("events");
    let activations: Vec<_> = events
        .iter()
        .filter(|e| e.target == format!("user:{}", created.user.id.0))
        .collect();
    assert_eq!(activations.len(), 1, "{events:?}");
    assert!(activations[0].details.contains("temporary_password"));
}

/// I3: an emailed one-time code answers a 2FA challenge once, only that challenge, and only
/// three codes are sent per challenge.
#[tokio::test]
async fn i3_emailed_codes_answer_their_challenge_once() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let session = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let mut two_factor =
        TwoFactorServiceClient::new(install.channel(install.addresses.identity).await);
    let uri = two_factor
        .start_totp_enrollment(authed(
            pb::StartTotpEnrollmentRequest {},
            &session.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .otpauth_uri;
    let secret = totp_secret(&uri);
    two_factor
        .confirm_totp_enrollment(authed(
            pb::ConfirmTotpEnrollmentRequest {
                code: praxis_identity::totp::code_at(&secret, chrono::Utc::now().timestamp()),
            },
            &session.access_token,
        ))
        .await
        .unwrap();

    let codes_sent = |install: &Install| {
        install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.topic == "identity.code")
            .map(|n| {
                let payload: serde_json::Value = serde_json::from_str(&n.payload).unwrap();
                payload["code"].as_str().unwrap().to_owned()
            })
            .collect::<Vec<_>>()
    };
    let send = |id: String| {
        let install = &install;
        async move {
            auth(install)
                .await
                .send_challenge_code(pb::SendChallengeCodeRequest {
                    challenge_id: id,
                    ..Default::default()
                })
                .await
        }
    };
    let complete = |id: String, code: String| {
        let install = &install;
        async move {
            auth(install)
                .await
                .complete_challenge(pb::CompleteChallengeRequest {
                    challenge_id: id,
                    code,
                    new_password: String::new(),
                    ..Default::default()
                })
                .await
        }
    };
    let first = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    let sent = send(first.challenge_id.clone())
        .await
        .expect("sent")
        .into_inner();
    assert!(sent.sent_to.starts_with("s***@"), "{}", sent.sent_to);
    let mut code = None;
    for _ in 0..100 {
        if let Some(c) = codes_sent(&install).first() {
            code = Some(c.clone());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let code = code.expect("the code was relayed to the notifier");
    assert_eq!(code.len(), 6);

    // Another challenge does not take this code.
    let second = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(
        complete(second.challenge_id.clone(), code.clone())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    let done = complete(first.challenge_id.clone(), code.clone())
        .await
        .expect("emailed code")
        .into_inner()
        .step
        .unwrap();
    let issued = tokens(done);
    assert_eq!(
        introspect(&install, &issued.access_token, &issued.access_token)
            .await
            .amr,
        ["pwd", "email"]
    );
    assert_eq!(
        complete(first.challenge_id, code).await.unwrap_err().code(),
        Code::Unauthenticated,
        "the challenge and its code are spent"
    );

    // Three sends per challenge.
    let third = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    for _ in 0..3 {
        send(third.challenge_id.clone()).await.expect("sent");
    }
    assert_eq!(
        send(third.challenge_id).await.unwrap_err().code(),
        Code::ResourceExhausted
    );
}

/// D14: disabling a user ends their sessions at once (not at their next use), so enabling them
/// again does not bring old sessions back.
#[tokio::test]
async fn d14_disabling_ends_sessions_at_once_and_enabling_does_not_revive_them() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let open = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    install
        .directory
        .disable_user(&Actor::Operator, &staff.id, None, chrono::Utc::now())
        .await
        .unwrap();
    let db = praxis_store::connect(&install.config.identity().service.database_url)
        .await
        .unwrap();
    use praxis_store::sea_orm::EntityTrait;
    let started = std::time::Instant::now();
    let ended = loop {
        let row = praxis_identity::store::session::Entity::find_by_id(&open.session_id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        if row.ended_at.is_some() {
            break row;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the session of a disabled user stayed open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(
        ended.end_reason.as_deref(),
        Some("user disabled or deleted")
    );
    install
        .directory
        .enable_user(&Actor::Operator, &staff.id, None, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        refresh(&install, &open.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert!(
        !introspect(&install, &open.access_token, &open.access_token)
            .await
            .active
    );
    tokens(
        login(&install, &staff.email, PASSWORD)
            .await
            .expect("a new login works"),
    );
}

/// I2, I4: a user without a second factor who logs in from a device they never used is asked
/// for a code sent to their email, and gets a new-device alert; the first login ever and
/// logins from known devices are not asked.
#[tokio::test]
async fn i2_a_new_device_is_asked_for_an_emailed_code_and_gets_an_alert() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let mut phone = login_request(&staff.email, PASSWORD);
    phone.client = Some(pb::Client {
        device_id: "phone-9".into(),
        user_agent: "Praxis for iOS".into(),
    });
    let asked = challenge(
        auth(&install)
            .await
            .login(phone.clone())
            .await
            .expect("login from a phone")
            .into_inner()
            .step
            .unwrap(),
    );
    assert_eq!(asked.kind, i32::from(pb::ChallengeKind::TwoFactor));
    assert_eq!(asked.methods, ["email"], "nothing but an emailed code");
    let refused = auth(&install)
        .await
        .send_challenge_code(pb::SendChallengeCodeRequest {
            challenge_id: asked.challenge_id.clone(),
            channel: pb::CodeChannel::Sms.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "no phone: no SMS");
    auth(&install)
        .await
        .send_challenge_code(pb::SendChallengeCodeRequest {
            challenge_id: asked.challenge_id.clone(),
            ..Default::default()
        })
        .await
        .expect("code sent");
    let code = wait_for(&install, "identity.code", &staff.email).await;
    let wrong = auth(&install)
        .await
        .complete_challenge(pb::CompleteChallengeRequest {
            challenge_id: asked.challenge_id.clone(),
            code: "000000".into(),
            ..Default::default()
        })
        .await;
    if code != "000000" {
        assert_eq!(wrong.unwrap_err().code(), Code::Unauthenticated);
    }
    let issued = tokens(
        auth(&install)
            .await
            .complete_challenge(pb::CompleteChallengeRequest {
                challenge_id: asked.challenge_id,
                code,
                ..Default::default()
            })
            .await
            .expect("the emailed code")
            .into_inner()
            .step
            .unwrap(),
    );
    assert_eq!(
        introspect(&install, &issued.access_token, &issued.access_token)
            .await
            .amr,
        ["pwd", "email"]
    );
    // The phone is known now: no more questions.
    tokens(
        auth(&install)
            .await
            .login(phone)
            .await
            .unwrap()
            .into_inner()
            .step
            .unwrap(),
    );
    let alerts = |install: &Install| {
        install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.topic == "session.new_device")
            .collect::<Vec<_>>()
    };
    let started = std::time::Instant::now();
    while alerts(&install).is_empty() && started.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Give the relay another round to show nothing else is pending.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let sent = alerts(&install);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].recipient, staff.email);
    let (_, body) = praxis_runtime::notify::render(&sent[0]).expect("template");
    assert!(
        body.contains("Praxis for iOS") && body.contains("127.0.0.1"),
        "{body}"
    );
}

/// The code in the latest `topic` message the relay handed over for `recipient`.
async fn wait_for(install: &Install, topic: &str, recipient: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        let latest = install
            .notifier
            .delivered()
            .into_iter()
            .rev()
            .find(|n| n.topic == topic && n.recipient == recipient);
        if let Some(message) = latest {
            let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
            return payload["code"].as_str().expect("code").to_owned();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "no {topic} message for {recipient}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// I3: a phone confirmed by a texted code answers 2FA challenges by SMS, once per code; bad
/// numbers and guessed confirmation codes get nowhere.
#[tokio::test]
async fn i3_sms_codes_after_the_phone_is_confirmed() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let session = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let mut two_factor =
        TwoFactorServiceClient::new(install.channel(install.addresses.identity).await);
    let bad = two_factor
        .start_sms_enrollment(authed(
            pb::StartSmsEnrollmentRequest {
                phone_number: "555-0123".into(),
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let started = two_factor
        .start_sms_enrollment(authed(
            pb::StartSmsEnrollmentRequest {
                phone_number: "+15555550123".into(),
            },
            &session.access_token,
        ))
        .await
        .expect("code texted")
        .into_inner();
    assert_eq!(started.sent_to, "+*******0123");
    let texted = wait_for(&install, "identity.phone_verification", "+15555550123").await;
    let sms = install
        .notifier
        .delivered()
        .into_iter()
        .find(|n| n.topic == "identity.phone_verification")
        .unwrap();
    assert_eq!(sms.channel, praxis_runtime::notify::Channel::Sms);
    assert!(
        praxis_runtime::notify::render_sms(&sms)
            .unwrap()
            .contains(&texted)
    );

    // Until it is confirmed, the phone is no factor: a login asks nothing.
    tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let confirm = |code: &str| {
        let mut two_factor = two_factor.clone();
        let request = authed(
            pb::ConfirmSmsEnrollmentRequest { code: code.into() },
            &session.access_token,
        );
        async move { two_factor.confirm_sms_enrollment(request).await }
    };
    let wrong = if texted == "111111" {
        "222222"
    } else {
        "111111"
    };
    assert_eq!(
        confirm(wrong).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let recovery = confirm(&texted)
        .await
        .expect("confirmed")
        .into_inner()
        .recovery_codes;
    assert_eq!(
        recovery.len(),
        10,
        "the first factor comes with recovery codes"
    );
    assert_eq!(
        confirm(&texted).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "the confirmation code is spent"
    );

    // Now every login asks; an SMS code answers.
    let asked = challenge(login(&install, &staff.email, PASSWORD).await.unwrap());
    assert_eq!(asked.methods, ["sms", "recovery", "email"]);
    let sent = auth(&install)
        .await
        .send_challenge_code(pb::SendChallengeCodeRequest {
            challenge_id: asked.challenge_id.clone(),
            channel: pb::CodeChannel::Sms.into(),
        })
        .await
        .expect("texted")
        .into_inner();
    assert_eq!(sent.sent_to, "+*******0123");
    let started = std::time::Instant::now();
    let code = loop {
        let codes: Vec<_> = install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.topic == "identity.code" && n.recipient == "+15555550123")
            .collect();
        if let Some(message) = codes.first() {
            let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
            break payload["code"].as_str().unwrap().to_owned();
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let install = &install;
    let answer = |id: String, code: String| async move {
        auth(install)
            .await
            .complete_challenge(pb::CompleteChallengeRequest {
                challenge_id: id,
                code,
                ..Default::default()
            })
            .await
    };
    let issued = tokens(
        answer(asked.challenge_id.clone(), code.clone())
            .await
            .expect("the texted code")
            .into_inner()
            .step
            .unwrap(),
    );
    assert_eq!(
        introspect(install, &issued.access_token, &issued.access_token)
            .await
            .amr,
        ["pwd", "sms"]
    );
    assert_eq!(
        answer(asked.challenge_id, code).await.unwrap_err().code(),
        Code::Unauthenticated,
        "used once"
    );
    // A recovery code still works in its place.
    let asked = challenge(login(install, &staff.email, PASSWORD).await.unwrap());
    let session = tokens(
        answer(asked.challenge_id, recovery[0].clone())
            .await
            .expect("recovery code")
            .into_inner()
            .step
            .unwrap(),
    );

    // I4 step-up for a user whose factor is SMS: the password, then a texted code.
    let reauthenticate = |password: &str| {
        let request = authed(
            pb::ReauthenticateRequest {
                password: password.into(),
                code: String::new(),
            },
            &session.access_token,
        );
        async move { auth(install).await.reauthenticate(request).await }
    };
    assert_eq!(
        reauthenticate("wrong").await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let step_up = reauthenticate(PASSWORD)
        .await
        .expect("password accepted")
        .into_inner();
    assert!(
        step_up.access_token.is_empty(),
        "no token before the factor"
    );
    let asked = step_up.challenge.expect("a step-up challenge");
    assert_eq!(asked.kind, i32::from(pb::ChallengeKind::StepUp));
    assert!(
        asked.methods.contains(&"sms".to_owned()),
        "{:?}",
        asked.methods
    );
    auth(install)
        .await
        .send_challenge_code(pb::SendChallengeCodeRequest {
            challenge_id: asked.challenge_id.clone(),
            channel: pb::CodeChannel::Sms.into(),
        })
        .await
        .expect("texted");
    let waited = std::time::Instant::now();
    let texted = loop {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "texted in time"
        );
        let codes: Vec<String> = install
            .notifier
            .delivered()
            .into_iter()
            .filter(|n| n.topic == "identity.code" && n.recipient == "+15555550123")
            .map(|n| {
                serde_json::from_str::<serde_json::Value>(&n.payload).unwrap()["code"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        if codes.len() >= 2 {
            break codes.last().unwrap().clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let fresh = tokens(
        answer(asked.challenge_id, texted)
            .await
            .expect("the texted code")
            .into_inner()
            .step
            .unwrap(),
    );
    assert_eq!(fresh.session_id, session.session_id, "the same session");
    assert!(
        fresh.refresh_token.is_empty(),
        "the refresh token is unchanged"
    );
    let seen = introspect(install, &fresh.access_token, &fresh.access_token).await;
    assert!(seen.active);
    assert_eq!(seen.amr, ["pwd", "sms"]);
}

/// I4: sessions live in the cache as well as the database; an end reaches the cache at once,
/// and a reader's older copy cannot bring an ended session back.
#[tokio::test]
async fn i4_sessions_are_cached_and_an_end_reaches_the_cache_at_once() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = with_password(&install, &acme, UserKind::Staff).await;
    let session = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    let key = format!("praxis:identity:session:{}", session.session_id);
    assert!(
        introspect(&install, &session.access_token, &session.access_token)
            .await
            .active
    );
    let alive = install
        .cache
        .get(&key)
        .await
        .unwrap()
        .expect("the session is cached once checked");
    let cached: serde_json::Value = serde_json::from_slice(&alive).unwrap();
    assert_eq!(cached["user_id"], staff.id.0.as_str());
    assert!(cached["ended_at"].is_null());

    let other = tokens(login(&install, &staff.email, PASSWORD).await.unwrap());
    SessionServiceClient::new(install.channel(install.addresses.identity).await)
        .end_session(authed(
            pb::EndSessionRequest {
                session_id: session.session_id.clone(),
            },
            &other.access_token,
        ))
        .await
        .expect("ended");
    let cached: serde_json::Value =
        serde_json::from_slice(&install.cache.get(&key).await.unwrap().expect("cached")).unwrap();
    assert!(
        !cached["ended_at"].is_null(),
        "the cache says ended: {cached}"
    );
    assert!(
        !introspect(&install, &other.access_token, &session.access_token)
            .await
            .active
    );
    // A reader that read the row before the end fills the cache only where nothing is.
    assert!(
        !install
            .cache
            .set_if_absent(&key, &alive, std::time::Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        !introspect(&install, &other.access_token, &session.access_token)
            .await
            .active
    );
    // Once the entry is gone, the database answers the same.
    install.cache.delete(&key).await.unwrap();
    assert!(
        !introspect(&install, &other.access_token, &session.access_token)
            .await
            .active
    );
}
