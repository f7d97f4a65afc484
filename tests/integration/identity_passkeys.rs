//! Passkeys (I3) with a real browser as the WebAuthn client: Chromium's virtual authenticator
//! creates and uses the credential, identity verifies with `webauthn-rs`. Needs Chromium and
//! Node's playwright-core; CI sets PRAXIS_TEST_CHROMIUM after installing them.

use praxis_directory::domain::*;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use praxis_proto::identity::v1::two_factor_service_client::TwoFactorServiceClient;
use praxis_tests::{Install, authed, fixture};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use tonic::Code;

const PASSWORD: &str = "plum orbit candle 7";

/// The browser process; one JSON line out, one back.
struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    fn start() -> Option<Self> {
        let chromium = std::env::var("PRAXIS_TEST_CHROMIUM").ok()?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/passkey_browser.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("PRAXIS_TEST_CHROMIUM", chromium)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ready = String::new();
        stdout.read_line(&mut ready).expect("browser started");
        assert!(ready.contains("ready"), "browser: {ready}");
        Some(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// `create` or `get` with the server's options; the credential JSON, or the browser's error.
    fn ceremony(&mut self, op: &str, options: &str) -> Result<String, String> {
        let request = serde_json::json!({"op": op, "options": options});
        writeln!(self.stdin, "{request}").expect("to the browser");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("from the browser");
        let answer: serde_json::Value = serde_json::from_str(&line).expect("json line");
        match answer["ok"].as_str() {
            Some(credential) => Ok(credential.to_owned()),
            None => Err(answer["error"].to_string()),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(install: &Install, email: &str) -> pb::LoginStep {
    AuthServiceClient::new(install.channel(install.addresses.identity).await)
        .login(pb::LoginRequest {
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            client: Some(pb::Client {
                device_id: "laptop-1".into(),
                user_agent: "tests".into(),
            }),
        })
        .await
        .expect("login")
        .into_inner()
        .step
        .expect("step")
}

async fn answer(
    install: &Install,
    challenge_id: &str,
    assertion: &str,
) -> Result<pb::Tokens, tonic::Status> {
    let step = AuthServiceClient::new(install.channel(install.addresses.identity).await)
        .complete_challenge(pb::CompleteChallengeRequest {
            challenge_id: challenge_id.to_owned(),
            passkey_assertion: assertion.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .step
        .expect("step");
    match step.outcome {
        Some(pb::login_step::Outcome::Tokens(tokens)) => Ok(tokens),
        other => panic!("expected tokens, got {other:?}"),
    }
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

/// Flips one bit of a base64url field inside the credential JSON's `response`.
fn tamper(credential: &str, field: &str) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut value: serde_json::Value = serde_json::from_str(credential).unwrap();
    let encoded = value["response"][field].as_str().expect("field").to_owned();
    let mut bytes = URL_SAFE_NO_PAD.decode(encoded).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    value["response"][field] = URL_SAFE_NO_PAD.encode(bytes).into();
    value.to_string()
}

/// I3: a passkey made in a real browser is registered, answers a 2FA challenge, and cannot be
/// fooled: a tampered registration or assertion, an assertion replayed on another challenge,
/// a registration finished by someone else, deleting without a recent authentication.
#[tokio::test]
async fn i3_passkeys_from_a_real_browser() {
    let Some(mut browser) = Browser::start() else {
        eprintln!("i3_passkeys_from_a_real_browser: PRAXIS_TEST_CHROMIUM unset; CI runs it");
        return;
    };
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let staff = acme.user(UserKind::Staff).clone();
    let other = acme.user(UserKind::Manager).clone();
    for user in [&staff, &other] {
        install
            .identity
            .seed_password(&user.id.0, PASSWORD, false)
            .await
            .expect("password");
    }
    let session = tokens(login(&install, &staff.email).await);
    let other_session = tokens(login(&install, &other.email).await);
    let mut two_factor =
        TwoFactorServiceClient::new(install.channel(install.addresses.identity).await);
    let start = |two_factor: &TwoFactorServiceClient<_>, bearer: &str| {
        let request = authed(pb::StartPasskeyRegistrationRequest {}, bearer);
        let mut two_factor = two_factor.clone();
        async move {
            two_factor
                .start_passkey_registration(request)
                .await
                .expect("start")
                .into_inner()
        }
    };
    let finish = |registration_id: &str, credential: &str, bearer: &str| {
        let request = authed(
            pb::FinishPasskeyRegistrationRequest {
                registration_id: registration_id.to_owned(),
                credential: credential.to_owned(),
                name: "Work laptop".into(),
            },
            bearer,
        );
        let mut two_factor = two_factor.clone();
        async move { two_factor.finish_passkey_registration(request).await }
    };

    // A tampered attestation does not verify, and spends the registration.
    let started = start(&two_factor, &session.access_token).await;
    let made = browser
        .ceremony("create", &started.creation_options)
        .expect("the browser made a passkey");
    let status = finish(
        &started.registration_id,
        &tamper(&made, "clientDataJSON"),
        &session.access_token,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = finish(&started.registration_id, &made, &session.access_token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "used once");

    // Another user cannot finish this user's registration.
    let started = start(&two_factor, &session.access_token).await;
    let made = browser
        .ceremony("create", &started.creation_options)
        .expect("passkey");
    let status = finish(&started.registration_id, &made, &other_session.access_token)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    let started = start(&two_factor, &session.access_token).await;
    let made = browser
        .ceremony("create", &started.creation_options)
        .expect("passkey");
    let registered = finish(&started.registration_id, &made, &session.access_token)
        .await
        .expect("registered")
        .into_inner();
    assert_eq!(registered.recovery_codes.len(), 10);
    let passkey = registered.passkey.expect("passkey");
    assert_eq!(passkey.name, "Work laptop");
    let listed = two_factor
        .list_passkeys(authed(pb::ListPasskeysRequest {}, &session.access_token))
        .await
        .unwrap()
        .into_inner()
        .passkeys;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, passkey.id);

    // The next login asks; the browser's assertion answers.
    let asked = challenge(login(&install, &staff.email).await);
    assert_eq!(asked.methods, ["passkey", "recovery", "email"]);
    let assertion = browser
        .ceremony("get", &asked.passkey_request_options)
        .expect("the browser signed");
    let status = answer(
        &install,
        &asked.challenge_id,
        &tamper(&assertion, "signature"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "a tampered signature");
    let status = answer(
        &install,
        &asked.challenge_id,
        &tamper(&assertion, "clientDataJSON"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "tampered client data");
    let issued = answer(&install, &asked.challenge_id, &assertion)
        .await
        .expect("the passkey answers");
    let introspected = AuthServiceClient::new(install.channel(install.addresses.identity).await)
        .introspect(authed(
            pb::IntrospectRequest {
                access_token: issued.access_token.clone(),
            },
            &issued.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(introspected.amr, ["pwd", "passkey"]);

    // The same assertion on a new challenge is a replay: its challenge is not this one.
    let asked = challenge(login(&install, &staff.email).await);
    let status = answer(&install, &asked.challenge_id, &assertion)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "replayed assertion");

    // Only the owner deletes, with a recent authentication (the passkey login is one).
    let status = two_factor
        .delete_passkey(authed(
            pb::DeletePasskeyRequest {
                passkey_id: passkey.id.clone(),
            },
            &other_session.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "not someone else's passkey");
    two_factor
        .delete_passkey(authed(
            pb::DeletePasskeyRequest {
                passkey_id: passkey.id.clone(),
            },
            &issued.access_token,
        ))
        .await
        .expect("deleted");
    assert!(
        two_factor
            .list_passkeys(authed(pb::ListPasskeysRequest {}, &session.access_token))
            .await
            .unwrap()
            .into_inner()
            .passkeys
            .is_empty()
    );
    // Without a second factor and from a known device, the login asks nothing.
    tokens(login(&install, &staff.email).await);
}
