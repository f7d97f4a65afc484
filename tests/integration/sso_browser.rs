//! SSO end to end with software we did not write (I6): the OpenID-certified npm `oidc-provider`
//! and the pysaml2 IdP from `../shared/peers`, driven by headless Chromium through their real
//! login pages. Needs Chromium (`PRAXIS_TEST_CHROMIUM`) and the installed peers
//! (`PRAXIS_TEST_OIDC_PEER`: a copy of peers/oidc with its node_modules); `.ci/run` provides
//! them and sets `PRAXIS_TEST_REQUIRE_PEERS`, which turns a missing peer into a failure.

use praxis_directory::domain::*;
use praxis_proto::directory::v1 as directory_pb;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use praxis_proto::identity::v1::sso_service_client::SsoServiceClient;
use praxis_tests::{Install, authed, fixture};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const PEER_DOMAIN: &str = "acme-health.test";

/// The test's requirement, or `None` (with a note) when this run has no such peer.
pub fn peer_env(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(value) => Some(value),
        None if std::env::var("PRAXIS_TEST_REQUIRE_PEERS").is_ok() => {
            panic!("{var} is required in this run")
        }
        None => {
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

/// A child process killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until `child` prints a line containing `ready`, for at most 20 seconds.
pub fn await_line(child: &mut Child, ready: &str) {
    let stdout = child.stdout.take().expect("peer stdout");
    let (sender, receiver) = std::sync::mpsc::channel();
    let wanted = ready.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = sender.send(());
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("peer did not print {ready:?} in 20 s"));
}

/// A page the logins return to, on loopback; its origin is allowlisted in identity.
pub async fn app_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let app =
        axum::Router::new().route("/after-login", axum::routing::get(|| async { "signed in" }));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (origin, handle)
}

/// An install whose SSO logins may return to `app`, with an enterprise that owns the peers'
/// email domain; and its admin's token.
pub async fn peer_install(app: &str) -> (Install, praxis_tests::Fixture, String) {
    let install = praxis_tests::start_configured(false, |config| {
        config.identity.sso.return_origins = vec![app.to_owned()];
    })
    .await;
    let clinic = fixture(&install, "Acme Health").await;
    install
        .directory
        .add_email_domain(
            &Actor::Operator,
            &clinic.enterprise.id,
            PEER_DOMAIN,
            chrono::Utc::now(),
        )
        .await
        .expect("domain");
    let admin_token = install
        .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
        .await;
    (install, clinic, admin_token)
}

/// Runs the browser from `start` until it is back on `return_prefix`; the final URL.
pub async fn browse(chromium: &str, start: &str, return_prefix: &str, login: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/sso_browser.mjs");
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(script)
            .arg(start)
            .arg(return_prefix)
            .arg(login)
            .env("PRAXIS_TEST_CHROMIUM", chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser finished within 90 s")
    .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "browser said nothing: {stdout} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let answer: serde_json::Value = serde_json::from_str(line).expect("json");
    match answer["url"].as_str() {
        Some(url) if answer.get("error").is_none() => url.to_owned(),
        _ => panic!("browser: {answer}"),
    }
}

/// Rules the peers' users map through: alice (praxis-managers) manages North, bob
/// (praxis-staff) works line 1 of North.
pub fn peer_rules(north: &Practice) -> Vec<pb::GroupRule> {
    group_rules(north, "praxis-managers", "praxis-staff")
}

/// Members of `managers` manage North (Manager role); members of `staff` work its first line
/// (Front Desk).
pub fn group_rules(north: &Practice, managers: &str, staff: &str) -> Vec<pb::GroupRule> {
    vec![
        pb::GroupRule {
            group: managers.into(),
            kind: directory_pb::UserKind::Manager.into(),
            memberships: vec![directory_pb::PracticeMembership {
                practice_id: north.id.0.clone(),
                ..Default::default()
            }],
            role_ids: vec!["builtin-manager".into()],
        },
        pb::GroupRule {
            group: staff.into(),
            kind: directory_pb::UserKind::Staff.into(),
            memberships: vec![directory_pb::PracticeMembership {
                practice_id: north.id.0.clone(),
                line_ids: vec![north.lines[0].id.0.clone()],
                ..Default::default()
            }],
            role_ids: vec!["builtin-front-desk".into()],
        },
    ]
}

/// Trades the sso_code in `url` for a session; checks the session says how it was made.
pub async fn complete(install: &Install, url: &str, protocol: &str) -> pb::Tokens {
    let code = url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "sso_code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no sso_code in {url}"));
    let done = SsoServiceClient::new(install.channel(install.addresses.identity).await)
        .complete_sso_login(pb::CompleteSsoLoginRequest { sso_code: code })
        .await
        .expect("complete")
        .into_inner();
    assert_eq!(done.amr, ["sso", protocol]);
    let tokens = done.tokens.expect("tokens");
    let session = AuthServiceClient::new(install.channel(install.addresses.identity).await)
        .introspect(authed(
            pb::IntrospectRequest {
                access_token: tokens.access_token.clone(),
            },
            &tokens.access_token,
        ))
        .await
        .expect("introspect")
        .into_inner();
    assert!(session.active);
    assert_eq!(session.amr, ["sso", protocol]);
    tokens
}

/// The user's kind and the roles SSO gave them.
pub async fn provisioned(install: &Install, email: &str) -> (UserKind, Vec<String>) {
    let user = install
        .directory
        .find_user_by_email(&Actor::Operator, email)
        .await
        .unwrap_or_else(|e| panic!("{email} was not provisioned: {e}"));
    let filter = roles::BindingFilter {
        user_id: Some(user.id.clone()),
        ..Default::default()
    };
    let (bindings, _) = install
        .directory
        .list_bindings(&Actor::Operator, &user.enterprise_id, &filter)
        .await
        .expect("bindings");
    (
        user.kind,
        bindings.into_iter().map(|b| b.role_id.0).collect(),
    )
}

#[tokio::test]
async fn i6_oidc_login_through_oidc_provider_in_chromium() {
    let (Some(chromium), Some(peer)) = (
        peer_env("PRAXIS_TEST_CHROMIUM"),
        peer_env("PRAXIS_TEST_OIDC_PEER"),
    ) else {
        return;
    };
    let (app, _app) = app_server().await;
    let (install, clinic, admin_token) = peer_install(&app).await;
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let connection = SsoServiceClient::new(install.channel(install.addresses.identity).await)
        .create_connection(authed(
            pb::CreateConnectionRequest {
                connection: Some(pb::SsoConnection {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    display_name: "Acme Okta".into(),
                    enabled: true,
                    domains: vec![PEER_DOMAIN.into()],
                    protocol: Some(pb::sso_connection::Protocol::Oidc(pb::OidcSettings {
                        issuer: issuer.clone(),
                        client_id: "praxis".into(),
                        client_secret: "praxis-secret".into(),
                        scopes: vec!["email".into(), "profile".into(), "groups".into()],
                        ..Default::default()
                    })),
                    group_rules: peer_rules(&clinic.practices[0]),
                    provision_users: true,
                    ..Default::default()
                }),
            },
            &admin_token,
        ))
        .await
        .expect("connection")
        .into_inner()
        .connection
        .expect("connection");
    let mut provider = Peer(
        Command::new("node")
            .arg("provider.mjs")
            .arg(port.to_string())
            .arg(&connection.callback_url)
            .current_dir(&peer)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node provider.mjs"),
    );
    await_line(&mut provider.0, "listening");

    let start = format!(
        "http://{}/sso/{}/start?return_to={}",
        install.addresses.identity_http,
        connection.id,
        url::form_urlencoded::byte_serialize(format!("{app}/after-login").as_bytes())
            .collect::<String>()
    );
    let prefix = format!("{app}/after-login");
    for (login, kind, role) in [
        (
            "alice@acme-health.test",
            UserKind::Manager,
            "builtin-manager",
        ),
        (
            "bob@acme-health.test",
            UserKind::Staff,
            "builtin-front-desk",
        ),
    ] {
        let landed = browse(&chromium, &start, &prefix, login).await;
        complete(&install, &landed, "oidc").await;
        let (held_kind, roles) = provisioned(&install, login).await;
        assert_eq!(held_kind, kind, "{login}");
        assert_eq!(roles, [role], "{login}");
    }
    drop(provider);
    install.stop().await;
}

#[tokio::test]
async fn i6_saml_login_through_pysaml2_in_chromium() {
    let (Some(chromium), Some(python), Some(idp_py)) = (
        peer_env("PRAXIS_TEST_CHROMIUM"),
        peer_env("PRAXIS_TEST_SAML_PYTHON"),
        peer_env("PRAXIS_TEST_SAML_IDP"),
    ) else {
        return;
    };
    let (app, _app) = app_server().await;
    let (install, clinic, admin_token) = peer_install(&app).await;
    let keys = crate::sso_saml::IdpKeys::new();
    let port = free_port();
    let metadata = crate::sso_saml::idp_metadata(&python, &idp_py, &keys.idp(), port);
    let mut wanted =
        crate::sso_saml::saml_connection(&clinic.enterprise.id.0, &metadata, &clinic.practices[0]);
    // pysaml2 signs this peer's responses with RSA-SHA1.
    if let Some(pb::sso_connection::Protocol::Saml(saml)) = &mut wanted.protocol {
        saml.allow_rsa_sha1 = true;
    }
    let connection = SsoServiceClient::new(install.channel(install.addresses.identity).await)
        .create_connection(authed(
            pb::CreateConnectionRequest {
                connection: Some(wanted),
            },
            &admin_token,
        ))
        .await
        .expect("connection")
        .into_inner()
        .connection
        .expect("connection");
    // The IdP knows Praxis by the metadata Praxis serves.
    let sp_metadata = reqwest::get(format!(
        "http://{}/sso/{}/metadata",
        install.addresses.identity_http, connection.id
    ))
    .await
    .expect("metadata")
    .text()
    .await
    .expect("xml");
    let sp_file = keys.dir.path().join("sp-metadata.xml");
    std::fs::write(&sp_file, sp_metadata).expect("write");
    let _idp = Peer(
        Command::new(&python)
            .arg(&idp_py)
            .arg("serve")
            .arg(port.to_string())
            .env("IDP_KEY_DIR", keys.idp())
            .env("IDP_PORT", port.to_string())
            .env("SP_METADATA", &sp_file)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("idp.py serve"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the IdP did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = format!(
        "http://{}/sso/{}/start?return_to={}",
        install.addresses.identity_http,
        connection.id,
        url::form_urlencoded::byte_serialize(format!("{app}/after-login").as_bytes())
            .collect::<String>()
    );
    let landed = browse(&chromium, &start, &format!("{app}/after-login"), "").await;
    complete(&install, &landed, "saml").await;
    assert_eq!(
        provisioned(&install, "alice@acme-health.test").await,
        (UserKind::Manager, vec!["builtin-manager".to_owned()])
    );
    install.stop().await;
}
