//! SSO over OIDC (I6) against a scripted identity provider on loopback: the happy path with
//! just-in-time provisioning and later updates, and every way the provider's answer can be
//! forged — each refused with its reason, audited, and nobody provisioned. The same flow with
//! a real provider and a real browser is in `sso_browser.rs`.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use praxis_directory::domain::*;
use praxis_directory::store::audit::EventQuery;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use praxis_proto::identity::v1::sso_service_client::SsoServiceClient;
use praxis_tests::{Fixture, Install, authed, fixture, installs};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::Code;

const CLIENT_ID: &str = "praxis-client";
const CLIENT_SECRET: &str = "scripted-secret-value";
const RETURN_TO: &str = "http://127.0.0.1:3000/after-login";

/// How the token endpoint forges its id_token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forge {
    Good,
    OtherIssuer,
    OtherAudience,
    WrongNonce,
    Expired,
    AlgNone,
    OtherKey,
    Tampered,
    Unverified,
}

struct Grant {
    nonce: String,
    challenge: String,
    claims: serde_json::Value,
    forge: Forge,
}

struct Idp {
    issuer: String,
    key: ed25519_dalek::SigningKey,
    other_key: ed25519_dalek::SigningKey,
    grants: Mutex<HashMap<String, Grant>>,
}

fn jwk(key: &ed25519_dalek::SigningKey, kid: &str) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
    })
}

fn sign(key: &ed25519_dalek::SigningKey, kid: &str, claims: &serde_json::Value) -> String {
    let der = key.to_pkcs8_der().expect("pkcs8");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .expect("sign")
}

impl Idp {
    fn id_token(&self, grant: &Grant) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut claims = grant.claims.clone();
        let fields = claims.as_object_mut().expect("claims object");
        fields.insert("iss".into(), self.issuer.clone().into());
        fields.insert("aud".into(), CLIENT_ID.into());
        fields.insert("iat".into(), now.into());
        fields.insert("exp".into(), (now + 300).into());
        fields.insert("nonce".into(), grant.nonce.clone().into());
        match grant.forge {
            Forge::OtherIssuer => {
                fields.insert("iss".into(), "http://127.0.0.1:9/other".into());
            }
            Forge::OtherAudience => {
                fields.insert("aud".into(), "someone-else".into());
            }
            Forge::WrongNonce => {
                fields.insert("nonce".into(), "not-the-nonce".into());
            }
            Forge::Expired => {
                // Beyond the connection's 60 s of skew.
                fields.insert("iat".into(), (now - 900).into());
                fields.insert("exp".into(), (now - 600).into());
            }
            Forge::Unverified => {
                fields.insert("email_verified".into(), false.into());
            }
            _ => {}
        }
        match grant.forge {
            Forge::AlgNone => {
                let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
                let body = URL_SAFE_NO_PAD.encode(claims.to_string());
                format!("{header}.{body}.")
            }
            Forge::OtherKey => sign(&self.other_key, "k1", &claims),
            Forge::Tampered => {
                let token = sign(&self.key, "k1", &claims);
                let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
                let mut body = claims.clone();
                body["email"] = "mallory@evil.test".into();
                parts[1] = URL_SAFE_NO_PAD.encode(body.to_string());
                parts.join(".")
            }
            _ => sign(&self.key, "k1", &claims),
        }
    }
}

async fn discovery(State(idp): State<Arc<Idp>>) -> axum::Json<serde_json::Value> {
    let issuer = &idp.issuer;
    axum::Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(idp): State<Arc<Idp>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"keys": [jwk(&idp.key, "k1")]}))
}

async fn token(
    State(idp): State<Arc<Idp>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(grant) = idp.grants.lock().expect("grants").remove(&code) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if challenge != grant.challenge {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "PKCE"})),
        )
            .into_response();
    }
    axum::Json(serde_json::json!({
        "access_token": "opaque-access",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": idp.id_token(&grant),
    }))
    .into_response()
}

async fn start_idp() -> Arc<Idp> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let mut rng = rand::rngs::OsRng;
    let idp = Arc::new(Idp {
        issuer,
        key: ed25519_dalek::SigningKey::generate(&mut rng),
        other_key: ed25519_dalek::SigningKey::generate(&mut rng),
        grants: Mutex::new(HashMap::new()),
    });
    let app = axum::Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .route("/token", post(token))
        .with_state(idp.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    idp
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

struct Sso<'a> {
    install: &'a Install,
    fixture: Fixture,
    idp: Arc<Idp>,
    connection: pb::SsoConnection,
    admin_token: String,
}

impl Sso<'_> {
    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.install.addresses.identity_http)
    }

    /// Starts a login and has the provider answer with `claims` forged as `forge`; the
    /// callback's response.
    async fn login(&self, claims: serde_json::Value, forge: Forge) -> reqwest::Response {
        let start = browser()
            .get(self.http(&format!("/sso/{}/start", self.connection.id)))
            .query(&[("return_to", RETURN_TO)])
            .send()
            .await
            .expect("start");
        assert_eq!(
            start.status(),
            StatusCode::SEE_OTHER,
            "{}",
            self.install.backend
        );
        let location = start.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        assert!(location.starts_with(&format!("{}/authorize", self.idp.issuer)));
        let params = query(&location);
        assert_eq!(params["code_challenge_method"], "S256");
        assert_eq!(params["client_id"], CLIENT_ID);
        assert!(params["scope"].split(' ').any(|s| s == "openid"));
        assert_eq!(
            params["redirect_uri"],
            self.http(&format!("/sso/{}/callback", self.connection.id))
        );
        let code = uuid::Uuid::now_v7().to_string();
        self.idp.grants.lock().expect("grants").insert(
            code.clone(),
            Grant {
                nonce: params["nonce"].clone(),
                challenge: params["code_challenge"].clone(),
                claims,
                forge,
            },
        );
        self.callback(&code, &params["state"]).await
    }

    async fn callback(&self, code: &str, state: &str) -> reqwest::Response {
        browser()
            .get(self.http(&format!("/sso/{}/callback", self.connection.id)))
            .query(&[("code", code), ("state", state)])
            .send()
            .await
            .expect("callback")
    }

    async fn sso_client(&self) -> SsoServiceClient<tonic::transport::Channel> {
        SsoServiceClient::new(self.install.channel(self.install.addresses.identity).await)
    }
}

fn person(email: &str, groups: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "sub": format!("sub-{email}"), "email": email, "email_verified": true,
        "given_name": "Dana", "family_name": "Reyes", "groups": groups,
    })
}

async fn setup(install: &Install) -> Sso<'_> {
    let idp = start_idp().await;
    let fixture = fixture(install, "SSO Clinic").await;
    let admin = fixture.user(UserKind::EnterpriseAdmin);
    let admin_token = install.token_for(&admin.email).await;
    let north = &fixture.practices[0];
    let connection = pb::SsoConnection {
        enterprise_id: fixture.enterprise.id.0.clone(),
        display_name: "Scripted IdP".into(),
        enabled: true,
        domains: vec![fixture.domain.clone()],
        protocol: Some(pb::sso_connection::Protocol::Oidc(pb::OidcSettings {
            issuer: idp.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            ..Default::default()
        })),
        group_rules: crate::sso_browser::group_rules(north, "clinic-managers", "clinic-staff"),
        provision_users: true,
        ..Default::default()
    };
    let created = SsoServiceClient::new(install.channel(install.addresses.identity).await)
        .create_connection(authed(
            pb::CreateConnectionRequest {
                connection: Some(connection),
            },
            &admin_token,
        ))
        .await
        .expect("create connection")
        .into_inner()
        .connection
        .expect("connection");
    Sso {
        install,
        fixture,
        idp,
        connection: created,
        admin_token,
    }
}

async fn sso_events(
    install: &Install,
    enterprise_id: &str,
    outcome: &str,
    at_least: usize,
) -> Vec<String> {
    let query = EventQuery {
        enterprise_id: enterprise_id.to_owned(),
        action: Some("sso.login".into()),
        outcome: Some(outcome.to_owned()),
        ..EventQuery::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (events, _) = install
            .directory
            .list_events(&Actor::Operator, &query, 1000, "")
            .await
            .expect("events");
        if events.len() >= at_least || std::time::Instant::now() > deadline {
            return events.into_iter().map(|e| e.details).collect();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn i6_oidc_login_provisions_then_updates_and_hands_over_a_session_once() {
    for install in installs().await {
        let sso = setup(&install).await;
        let backend = &install.backend;
        assert!(sso.connection.etag.len() > 2);
        match &sso.connection.protocol {
            Some(pb::sso_connection::Protocol::Oidc(oidc)) => {
                assert!(
                    oidc.client_secret.is_empty(),
                    "{backend}: the secret is never returned"
                );
                assert!(oidc.client_secret_set);
            }
            other => panic!("{backend}: {other:?}"),
        }
        let email = format!("dana@{}", sso.fixture.domain);

        // Home-realm discovery points the domain at the connection.
        let found = sso
            .sso_client()
            .await
            .discover_login(pb::DiscoverLoginRequest {
                email: email.clone(),
            })
            .await
            .expect("discover")
            .into_inner();
        assert_eq!(found.method, i32::from(pb::LoginMethod::Sso), "{backend}");
        assert_eq!(found.connection_id, sso.connection.id);
        let elsewhere = sso
            .sso_client()
            .await
            .discover_login(pb::DiscoverLoginRequest {
                email: "x@unrelated.test".into(),
            })
            .await
            .expect("discover")
            .into_inner();
        assert_eq!(elsewhere.method, i32::from(pb::LoginMethod::Password));

        // First login: provisioned as STAFF on line 1 of North with Front Desk.
        let answer = sso
            .login(person(&email, &["clinic-staff"]), Forge::Good)
            .await;
        assert_eq!(
            answer.status(),
            StatusCode::SEE_OTHER,
            "{backend}: {:?}",
            answer.text().await
        );
        let location = answer.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        assert!(location.starts_with(RETURN_TO), "{backend}: {location}");
        let code = query(&location)["sso_code"].clone();
        let done = sso
            .sso_client()
            .await
            .complete_sso_login(pb::CompleteSsoLoginRequest {
                sso_code: code.clone(),
            })
            .await
            .expect("complete")
            .into_inner();
        assert_eq!(done.amr, ["sso", "oidc"], "{backend}");
        let vouched = sso_events(&install, &sso.fixture.enterprise.id.0, "SUCCESS", 1).await;
        assert!(
            vouched.iter().any(|d| d.contains(&sso.connection.id)),
            "{backend}: no sso.login success naming the connection: {vouched:?}"
        );
        let tokens = done.tokens.expect("tokens");
        let introspected =
            AuthServiceClient::new(install.channel(install.addresses.identity).await)
                .introspect(authed(
                    pb::IntrospectRequest {
                        access_token: tokens.access_token.clone(),
                    },
                    &tokens.access_token,
                ))
                .await
                .expect("introspect")
                .into_inner();
        assert!(introspected.active, "{backend}");
        let user = install
            .directory
            .find_user_by_email(&Actor::Operator, &email)
            .await
            .expect("provisioned");
        assert_eq!(user.kind, UserKind::Staff, "{backend}");
        assert_eq!(user.status, UserStatus::Active);
        assert_eq!(user.given_name, "Dana");
        assert_eq!(user.memberships[0].practice_id, sso.fixture.practices[0].id);
        let roles = |user: &User| {
            let user = user.clone();
            let install = &install;
            async move {
                let filter = roles::BindingFilter {
                    user_id: Some(user.id.clone()),
                    ..Default::default()
                };
                let (bindings, _) = install
                    .directory
                    .list_bindings(&Actor::Operator, &user.enterprise_id, &filter)
                    .await
                    .expect("bindings");
                bindings
                    .into_iter()
                    .map(|b| (b.role_id.0, b.source))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            roles(&user).await,
            [(
                "builtin-front-desk".to_owned(),
                Some(format!("sso:{}", sso.connection.id))
            )],
            "{backend}"
        );

        // The code works once.
        let again = sso
            .sso_client()
            .await
            .complete_sso_login(pb::CompleteSsoLoginRequest { sso_code: code })
            .await
            .expect_err("a used code");
        assert_eq!(again.code(), Code::FailedPrecondition, "{backend}");

        // An admin's own binding survives SSO's reconciliation.
        let (manual, _) = install
            .directory
            .create_binding(
                &Actor::Operator,
                roles::RoleBinding {
                    id: String::new(),
                    enterprise_id: user.enterprise_id.clone(),
                    user_id: user.id.clone(),
                    role_id: roles::RoleId("builtin-billing".into()),
                    scope: roles::BindingScope::Enterprise,
                    valid_from: None,
                    valid_until: None,
                    weekly_window: None,
                    created_at: chrono::Utc::now(),
                    source: None,
                },
                chrono::Utc::now(),
            )
            .await
            .expect("manual binding");

        // Promoted at the provider: the next login makes them a manager, with the manager role
        // instead of Front Desk, and the new name.
        let mut promoted = person(&email, &["clinic-managers"]);
        promoted["given_name"] = "Danielle".into();
        let answer = sso.login(promoted, Forge::Good).await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{backend}");
        let user = install
            .directory
            .find_user_by_email(&Actor::Operator, &email)
            .await
            .expect("user");
        assert_eq!(user.kind, UserKind::Manager, "{backend}");
        assert_eq!(user.given_name, "Danielle");
        let mut held = roles(&user).await;
        held.sort();
        assert_eq!(
            held,
            [
                ("builtin-billing".to_owned(), None),
                (
                    "builtin-manager".to_owned(),
                    Some(format!("sso:{}", sso.connection.id))
                ),
            ],
            "{backend}: manual binding {} kept",
            manual.id
        );

        // Disabled in directory: the provider's word does not bring them back (D14).
        install
            .directory
            .disable_user(&Actor::Operator, &user.id, None, chrono::Utc::now())
            .await
            .expect("disable");
        let refused = sso
            .login(person(&email, &["clinic-managers"]), Forge::Good)
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend}");
        assert!(
            refused
                .text()
                .await
                .expect("body")
                .contains("user disabled")
        );
        install.stop().await;
    }
}

#[tokio::test]
async fn i6_forged_oidc_answers_are_refused_audited_and_provision_nobody() {
    for install in installs().await {
        let sso = setup(&install).await;
        let backend = &install.backend;
        let cases = [
            (Forge::OtherIssuer, "issuer"),
            (Forge::OtherAudience, "audience"),
            (Forge::WrongNonce, "nonce"),
            (Forge::Expired, "expired"),
            (Forge::AlgNone, "id_token refused"),
            (Forge::OtherKey, "id_token refused"),
            (Forge::Tampered, "id_token refused"),
            (Forge::Unverified, "not verified"),
        ];
        for (index, (forge, reason)) in cases.iter().enumerate() {
            let email = format!("forged{index}@{}", sso.fixture.domain);
            let answer = sso.login(person(&email, &["clinic-staff"]), *forge).await;
            assert_eq!(
                answer.status(),
                StatusCode::FORBIDDEN,
                "{backend}: {forge:?}"
            );
            let body = answer.text().await.expect("body").to_lowercase();
            assert!(body.contains(reason), "{backend}: {forge:?}: {body}");
            assert!(
                install
                    .directory
                    .find_user_by_email(&Actor::Operator, &email)
                    .await
                    .is_err(),
                "{backend}: {forge:?} provisioned someone"
            );
        }

        // A state we never issued, and one already answered.
        let unknown = sso.callback("any-code", "never-issued").await;
        assert_eq!(unknown.status(), StatusCode::FORBIDDEN);
        assert!(
            unknown
                .text()
                .await
                .expect("body")
                .contains("state unknown")
        );
        let email = format!("replay@{}", sso.fixture.domain);
        let start = browser()
            .get(sso.http(&format!("/sso/{}/start", sso.connection.id)))
            .query(&[("return_to", RETURN_TO)])
            .send()
            .await
            .expect("start");
        let params = query(start.headers()["location"].to_str().expect("location"));
        for round in 0..2 {
            let code = uuid::Uuid::now_v7().to_string();
            sso.idp.grants.lock().expect("grants").insert(
                code.clone(),
                Grant {
                    nonce: params["nonce"].clone(),
                    challenge: params["code_challenge"].clone(),
                    claims: person(&email, &["clinic-staff"]),
                    forge: Forge::Good,
                },
            );
            let answer = sso.callback(&code, &params["state"]).await;
            let expected = if round == 0 {
                StatusCode::SEE_OTHER
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(
                answer.status(),
                expected,
                "{backend}: replayed state, round {round}"
            );
        }

        // An email outside the connection's domains, and a return_to off the allowlist.
        let outsider = sso
            .login(person("eve@elsewhere.test", &["clinic-staff"]), Forge::Good)
            .await;
        assert_eq!(outsider.status(), StatusCode::FORBIDDEN);
        assert!(
            outsider
                .text()
                .await
                .expect("body")
                .contains("not a domain this connection serves")
        );
        let open_redirect = browser()
            .get(sso.http(&format!("/sso/{}/start", sso.connection.id)))
            .query(&[("return_to", "https://evil.test/steal")])
            .send()
            .await
            .expect("start");
        assert_eq!(open_redirect.status(), StatusCode::FORBIDDEN, "{backend}");

        // Every refusal reached the audit trail with its reason.
        let refusals = cases.len() + 2 + 1 + 1;
        let events = sso_events(&install, &sso.fixture.enterprise.id.0, "FAILURE", refusals).await;
        assert!(
            events.len() >= refusals,
            "{backend}: {} of {refusals}: {events:?}",
            events.len()
        );
        assert!(
            events.iter().any(|d| d.contains("nonce")),
            "{backend}: {events:?}"
        );
        install.stop().await;
    }
}

#[tokio::test]
async fn i6_connections_are_validated_and_belong_to_their_enterprise() {
    let install = praxis_tests::start(false).await;
    let sso = setup(&install).await;
    let mut client = sso.sso_client().await;
    // A second connection may not claim the same domain.
    let clash = client
        .create_connection(authed(
            pb::CreateConnectionRequest {
                connection: Some(pb::SsoConnection {
                    enterprise_id: sso.fixture.enterprise.id.0.clone(),
                    display_name: "Second".into(),
                    domains: vec![sso.fixture.domain.clone()],
                    protocol: sso.connection.protocol.clone().map(|p| match p {
                        pb::sso_connection::Protocol::Oidc(mut o) => {
                            o.client_secret = "another-secret".into();
                            pb::sso_connection::Protocol::Oidc(o)
                        }
                        other => other,
                    }),
                    ..Default::default()
                }),
            },
            &sso.admin_token,
        ))
        .await
        .expect_err("domain clash");
    assert_eq!(clash.code(), Code::FailedPrecondition);
    // Bad settings: every problem named.
    let invalid = client
        .create_connection(authed(
            pb::CreateConnectionRequest {
                connection: Some(pb::SsoConnection {
                    enterprise_id: sso.fixture.enterprise.id.0.clone(),
                    domains: vec!["not a domain".into()],
                    protocol: Some(pb::sso_connection::Protocol::Oidc(pb::OidcSettings {
                        issuer: "ftp://x".into(),
                        clock_skew_seconds: 9_999,
                        ..Default::default()
                    })),
                    group_rules: vec![pb::GroupRule::default()],
                    ..Default::default()
                }),
            },
            &sso.admin_token,
        ))
        .await
        .expect_err("invalid");
    let fields = praxis_tests::violated_fields(&invalid);
    for field in [
        "connection.display_name",
        "connection.domains[0]",
        "connection.oidc.issuer",
        "connection.oidc.client_id",
        "connection.oidc.client_secret",
        "connection.oidc.clock_skew_seconds",
        "connection.group_rules[0].group",
        "connection.group_rules[0].kind",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    // A domain the enterprise has not allowlisted would send others' people to this IdP.
    let foreign = client
        .create_connection(authed(
            pb::CreateConnectionRequest {
                connection: Some(pb::SsoConnection {
                    enterprise_id: sso.fixture.enterprise.id.0.clone(),
                    display_name: "Foreign".into(),
                    domains: vec!["big-hospital.test".into()],
                    protocol: Some(pb::sso_connection::Protocol::Oidc(pb::OidcSettings {
                        issuer: sso.idp.issuer.clone(),
                        client_id: "x".into(),
                        client_secret: "y".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
            },
            &sso.admin_token,
        ))
        .await
        .expect_err("foreign domain");
    assert_eq!(
        praxis_tests::violated_fields(&foreign),
        ["connection.domains[0]"]
    );
    // Another enterprise's admin sees nothing; a staff member may not manage.
    let other = fixture(&install, "Other Clinic").await;
    let stranger = install
        .token_for(&other.user(UserKind::EnterpriseAdmin).email)
        .await;
    let hidden = client
        .get_connection(authed(
            pb::GetConnectionRequest {
                connection_id: sso.connection.id.clone(),
            },
            &stranger,
        ))
        .await
        .expect_err("hidden");
    assert_eq!(hidden.code(), Code::NotFound);
    let staff = install
        .token_for(&sso.fixture.user(UserKind::Staff).email)
        .await;
    let refused = client
        .list_connections(authed(
            pb::ListConnectionsRequest {
                enterprise_id: sso.fixture.enterprise.id.0.clone(),
            },
            &staff,
        ))
        .await
        .expect_err("staff");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // Update with the etag; a stale etag is refused; disabling stops logins.
    let mut changed = sso.connection.clone();
    changed.enabled = false;
    let updated = client
        .update_connection(authed(
            pb::UpdateConnectionRequest {
                connection: Some(changed.clone()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["enabled".into()],
                }),
            },
            &sso.admin_token,
        ))
        .await
        .expect("update")
        .into_inner()
        .connection
        .expect("connection");
    assert!(!updated.enabled);
    let stale = client
        .update_connection(authed(
            pb::UpdateConnectionRequest {
                connection: Some(changed),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["enabled".into()],
                }),
            },
            &sso.admin_token,
        ))
        .await
        .expect_err("stale");
    assert_eq!(stale.code(), Code::Aborted);
    let start = browser()
        .get(sso.http(&format!("/sso/{}/start", sso.connection.id)))
        .query(&[("return_to", RETURN_TO)])
        .send()
        .await
        .expect("start");
    assert_eq!(start.status(), StatusCode::FORBIDDEN);
    install.stop().await;
}

#[tokio::test]
async fn i6_sso_required_refuses_password_logins() {
    let install = praxis_tests::start(false).await;
    let sso = setup(&install).await;
    let staff = sso.fixture.user(UserKind::Staff).clone();
    install
        .identity
        .seed_password(&staff.id.0, "plum orbit candle 7", false)
        .await
        .expect("password");
    assert!(
        password_login(&install, &staff.email).await.is_ok(),
        "password works before"
    );
    let mut enterprise = install
        .directory
        .get_enterprise(&Actor::Operator, &sso.fixture.enterprise.id)
        .await
        .expect("enterprise");
    enterprise.policy.sso_required = true;
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
    let refused = password_login(&install, &staff.email)
        .await
        .expect_err("SSO required");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("SSO"), "{}", refused.message());
    let found = sso
        .sso_client()
        .await
        .discover_login(pb::DiscoverLoginRequest {
            email: staff.email.clone(),
        })
        .await
        .expect("discover")
        .into_inner();
    assert!(found.sso_required);
    // Someone without an account on the same domain gets the same answer.
    let nobody = sso
        .sso_client()
        .await
        .discover_login(pb::DiscoverLoginRequest {
            email: format!("nobody-here@{}", sso.fixture.domain),
        })
        .await
        .expect("discover")
        .into_inner();
    assert_eq!(nobody, found);
    install.stop().await;
}

async fn password_login(
    install: &Install,
    email: &str,
) -> Result<tonic::Response<pb::LoginResponse>, tonic::Status> {
    AuthServiceClient::new(install.channel(install.addresses.identity).await)
        .login(pb::LoginRequest {
            email: email.to_owned(),
            password: "plum orbit candle 7".into(),
            client: None,
        })
        .await
}
