//! SSO over SAML 2.0 (I6): responses made by pysaml2 in the IdP role (the peer in
//! `../shared/peers/saml`), good and hostile (`interop/saml_forge.py`), posted to Praxis's ACS
//! as a browser would. Every hostile one is refused with its reason, audited, and provisions
//! nobody. Needs `PRAXIS_TEST_SAML_PYTHON` (a Python with pysaml2) and `PRAXIS_TEST_SAML_IDP`
//! (the peer's idp.py), and xmlsec1; the browser run is in `sso_browser.rs`.

use crate::sso_browser::{
    PEER_DOMAIN, app_server, complete, free_port, peer_env, peer_install, peer_rules, provisioned,
};
use axum::http::StatusCode;
use praxis_directory::domain::*;
use praxis_directory::store::audit::EventQuery;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::sso_service_client::SsoServiceClient;
use praxis_tests::{Install, authed};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The IdP's key pair (and another, for forgeries) in a temporary directory.
pub struct IdpKeys {
    pub dir: tempfile::TempDir,
}

impl IdpKeys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (sub, name) in [("idp", "test-idp"), ("other", "other-idp")] {
            let at = dir.path().join(sub);
            std::fs::create_dir_all(&at).expect("dir");
            let made = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .arg("-keyout")
                .arg(at.join("idp.key"))
                .arg("-out")
                .arg(at.join("idp.crt"))
                .args(["-subj", &format!("/CN={name}")])
                .output()
                .expect("openssl");
            assert!(made.status.success(), "openssl: {made:?}");
        }
        Self { dir }
    }

    pub fn idp(&self) -> PathBuf {
        self.dir.path().join("idp")
    }

    pub fn other(&self) -> PathBuf {
        self.dir.path().join("other")
    }
}

/// The peer's metadata for an IdP on `port`.
pub fn idp_metadata(python: &str, idp_py: &str, keys: &Path, port: u16) -> String {
    let output = Command::new(python)
        .arg(idp_py)
        .arg("metadata")
        .env("IDP_KEY_DIR", keys)
        .env("IDP_PORT", port.to_string())
        .output()
        .expect("idp.py metadata");
    assert!(output.status.success(), "idp.py metadata: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

pub fn saml_connection(enterprise_id: &str, metadata: &str, north: &Practice) -> pb::SsoConnection {
    pb::SsoConnection {
        enterprise_id: enterprise_id.to_owned(),
        display_name: "Acme ADFS".into(),
        enabled: true,
        domains: vec![PEER_DOMAIN.into()],
        protocol: Some(pb::sso_connection::Protocol::Saml(pb::SamlSettings {
            idp_metadata_xml: metadata.to_owned(),
            ..Default::default()
        })),
        group_rules: peer_rules(north),
        provision_users: true,
        ..Default::default()
    }
}

struct Saml {
    install: Install,
    keys: IdpKeys,
    idp_port: u16,
    python: String,
    idp_py: String,
    connection: pb::SsoConnection,
    admin_token: String,
    enterprise_id: String,
    return_to: String,
    _app: tokio::task::JoinHandle<()>,
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl Saml {
    async fn new() -> Option<Self> {
        let python = peer_env("PRAXIS_TEST_SAML_PYTHON")?;
        let idp_py = peer_env("PRAXIS_TEST_SAML_IDP")?;
        let (app, app_handle) = app_server().await;
        let (install, clinic, admin_token) = peer_install(&app).await;
        let keys = IdpKeys::new();
        let idp_port = free_port();
        let metadata = idp_metadata(&python, &idp_py, &keys.idp(), idp_port);
        let connection = SsoServiceClient::new(install.channel(install.addresses.identity).await)
            .create_connection(authed(
                pb::CreateConnectionRequest {
                    connection: Some(saml_connection(
                        &clinic.enterprise.id.0,
                        &metadata,
                        &clinic.practices[0],
                    )),
                },
                &admin_token,
            ))
            .await
            .expect("connection")
            .into_inner()
            .connection
            .expect("connection");
        Some(Self {
            install,
            keys,
            idp_port,
            python,
            idp_py,
            connection,
            admin_token,
            enterprise_id: clinic.enterprise.id.0.clone(),
            return_to: format!("{app}/after-login"),
            _app: app_handle,
        })
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.install.addresses.identity_http)
    }

    fn acs(&self) -> String {
        self.connection.callback_url.clone()
    }

    fn sp_certificate(&self) -> String {
        match &self.connection.protocol {
            Some(pb::sso_connection::Protocol::Saml(saml)) => saml.sp_certificate.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn sp_entity(&self) -> String {
        match &self.connection.protocol {
            Some(pb::sso_connection::Protocol::Saml(saml)) => saml.sp_entity_id.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// Starts a login: the RelayState and the AuthnRequest's id.
    async fn start(&self) -> (String, String) {
        let start = browser()
            .get(self.http(&format!("/sso/{}/start", self.connection.id)))
            .query(&[("return_to", self.return_to.as_str())])
            .send()
            .await
            .expect("start");
        if start.status() != StatusCode::SEE_OTHER {
            panic!("start: {} {:?}", start.status(), start.text().await);
        }
        let location =
            url::Url::parse(start.headers()["location"].to_str().expect("location")).expect("url");
        let param = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| panic!("no {name} in {location}"))
        };
        let deflated = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            param("SAMLRequest"),
        )
        .expect("base64");
        let mut request = String::new();
        flate2::read::DeflateDecoder::new(deflated.as_slice())
            .read_to_string(&mut request)
            .expect("inflate");
        let id = request
            .split("ID=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("AuthnRequest ID")
            .to_owned();
        (param("RelayState"), id)
    }

    /// A response made by `saml_forge.py` in `mode` for `email`, answering `in_response_to`.
    fn forge(&self, mode: &str, email: &str, in_response_to: &str) -> String {
        self.run_forge(mode, &self.acs(), email, in_response_to)
    }

    /// A LogoutRequest for `email`, signed for the Redirect binding: the query string.
    fn forge_logout(&self, mode: &str, email: &str) -> String {
        self.run_forge(mode, &self.acs().replace("/acs", "/slo"), email, "")
    }

    fn run_forge(&self, mode: &str, to: &str, email: &str, in_response_to: &str) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/saml_forge.py");
        let output = Command::new(&self.python)
            .arg(script)
            .arg(&self.idp_py)
            .arg(mode)
            .arg(to)
            .arg(self.sp_entity())
            .arg(email)
            .arg(in_response_to)
            .arg(self.keys.other())
            .arg(format!("mallory@{PEER_DOMAIN}"))
            .env("IDP_KEY_DIR", self.keys.idp())
            .env("IDP_PORT", self.idp_port.to_string())
            .env("SP_CERT", self.sp_certificate())
            .output()
            .expect("saml_forge.py");
        assert!(
            output.status.success(),
            "saml_forge.py {mode}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .expect("utf-8")
            .trim()
            .to_owned()
    }

    async fn active(&self, tokens: &pb::Tokens) -> bool {
        praxis_proto::identity::v1::auth_service_client::AuthServiceClient::new(
            self.install.channel(self.install.addresses.identity).await,
        )
        .introspect(authed(
            pb::IntrospectRequest {
                access_token: tokens.access_token.clone(),
            },
            &tokens.access_token,
        ))
        .await
        .map(|answer| answer.into_inner().active)
        .unwrap_or(false)
    }

    async fn post(&self, response: &str, relay_state: &str) -> reqwest::Response {
        browser()
            .post(self.acs())
            .form(&[("SAMLResponse", response), ("RelayState", relay_state)])
            .send()
            .await
            .expect("acs")
    }

    async fn set_idp_initiated(&mut self, allowed: bool) {
        let mut changed = self.connection.clone();
        if let Some(pb::sso_connection::Protocol::Saml(saml)) = &mut changed.protocol {
            saml.allow_idp_initiated = allowed;
        }
        self.connection =
            SsoServiceClient::new(self.install.channel(self.install.addresses.identity).await)
                .update_connection(authed(
                    pb::UpdateConnectionRequest {
                        connection: Some(changed),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["saml".into()],
                        }),
                    },
                    &self.admin_token,
                ))
                .await
                .expect("update")
                .into_inner()
                .connection
                .expect("connection");
    }
}

async fn refusal(answer: reqwest::Response) -> (StatusCode, String) {
    let status = answer.status();
    (status, answer.text().await.expect("body"))
}

#[tokio::test]
async fn i6_saml_login_provisions_and_every_forgery_is_refused() {
    let Some(mut saml) = Saml::new().await else {
        return;
    };
    // The SP metadata names the ACS and a certificate for signing and encryption.
    let metadata = reqwest::get(saml.http(&format!("/sso/{}/metadata", saml.connection.id)))
        .await
        .expect("metadata")
        .text()
        .await
        .expect("xml");
    assert!(metadata.contains(&saml.acs()), "{metadata}");
    assert!(metadata.contains(&saml.sp_entity()));
    assert!(metadata.contains("use=\"encryption\""), "{metadata}");
    match &saml.connection.protocol {
        Some(pb::sso_connection::Protocol::Saml(s)) => {
            assert!(s.sp_certificate.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(s.idp_entity_id.ends_with("/metadata"));
        }
        other => panic!("{other:?}"),
    }

    // A good response to our request: a session, and alice provisioned as a manager.
    let alice = format!("alice@{PEER_DOMAIN}");
    let (relay, id) = saml.start().await;
    let good = saml.forge("good", &alice, &id);
    let answer = saml.post(&good, &relay).await;
    assert_eq!(
        answer.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        answer.text().await
    );
    let landed = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(landed.starts_with(&saml.return_to));
    let first_session = complete(&saml.install, &landed, "saml").await;
    assert_eq!(
        provisioned(&saml.install, &alice).await,
        (UserKind::Manager, vec!["builtin-manager".to_owned()])
    );
    // The same response again: its RelayState is spent.
    let (status, body) = refusal(saml.post(&good, &relay).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("used RelayState"), "{body}");

    // An assertion encrypted to the certificate in our metadata is decrypted with our key.
    let (relay, id) = saml.start().await;
    let encrypted = saml.forge("encrypted", &alice, &id);
    let xml = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &encrypted)
            .expect("base64"),
    )
    .expect("utf-8");
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains(&alice),
        "not encrypted"
    );
    let answer = saml.post(&encrypted, &relay).await;
    assert_eq!(
        answer.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        answer.text().await
    );
    let landed = answer.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let second_session = complete(&saml.install, &landed, "saml").await;

    // Single logout from the IdP: a tampered or SHA-1-signed request changes nothing; a good one
    // ends both of alice's SAML sessions, once.
    let slo = |query: String| {
        let url = saml.http(&format!("/sso/{}/slo?{query}", saml.connection.id));
        async move { browser().get(url).send().await.expect("slo") }
    };
    for (mode, reason) in [
        ("logout-tampered", "does not verify"),
        ("logout-sha1", "algorithm is not accepted"),
    ] {
        let (status, body) = refusal(slo(saml.forge_logout(mode, &alice)).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{mode}: {body}");
        assert!(body.contains(reason), "{mode}: {body}");
    }
    assert!(
        saml.active(&first_session).await,
        "a refused logout ended a session"
    );
    let query = saml.forge_logout("logout", &alice);
    let (status, body) = refusal(slo(query.clone()).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("2 sessions ended"), "{body}");
    assert!(!saml.active(&first_session).await);
    assert!(!saml.active(&second_session).await);
    let (status, body) = refusal(slo(query).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("replayed"), "{body}");

    // Forgeries, each for someone new, each with a fresh request.
    let cases = [
        // RSA-SHA1 is off unless the connection allows it.
        ("sha1", "must be signed"),
        ("unsigned", "must be signed"),
        ("other-key", "must be signed"),
        ("tampered", "must be signed"),
        ("xsw", "exactly one is accepted"),
        ("expired", "expired"),
        ("audience", "AudienceRequirement"),
        ("no-audience", "names no audience"),
        ("destination", "destination does not match"),
        ("wrong-request", "InResponseTo"),
    ];
    for (mode, reason) in cases {
        let email = format!("{mode}@{PEER_DOMAIN}");
        let (relay, id) = saml.start().await;
        let response = if mode == "wrong-request" {
            saml.forge("good", &email, "id-not-ours")
        } else {
            saml.forge(mode, &email, &id)
        };
        let (status, body) = refusal(saml.post(&response, &relay).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{mode}: {body}");
        assert!(body.contains(reason), "{mode}: {body}");
        assert!(
            saml.install
                .directory
                .find_user_by_email(&Actor::Operator, &email)
                .await
                .is_err(),
            "{mode} provisioned someone"
        );
    }
    assert!(
        saml.install
            .directory
            .find_user_by_email(&Actor::Operator, &format!("mallory@{PEER_DOMAIN}"))
            .await
            .is_err(),
        "the wrapped assertion provisioned its subject"
    );

    // Unsolicited responses are refused until the connection allows IdP-initiated login; then
    // one works once, and its replay is caught by the assertion id.
    let bob = format!("bob@{PEER_DOMAIN}");
    let unsolicited = saml.forge("good", &bob, "");
    let (status, body) = refusal(saml.post(&unsolicited, &saml.return_to).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("IdP-initiated login is off"), "{body}");
    saml.set_idp_initiated(true).await;
    let answer = saml.post(&unsolicited, &saml.return_to).await;
    assert_eq!(
        answer.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        answer.text().await
    );
    assert_eq!(provisioned(&saml.install, &bob).await.0, UserKind::Staff);
    let (status, body) = refusal(saml.post(&unsolicited, &saml.return_to).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("replayed"), "{body}");

    // Every refusal reached the audit trail.
    let query = EventQuery {
        enterprise_id: saml.enterprise_id.clone(),
        action: Some("sso.login".into()),
        outcome: Some("FAILURE".into()),
        ..EventQuery::default()
    };
    let wanted = 1 + cases.len() + 2;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let events = loop {
        let (events, _) = saml
            .install
            .directory
            .list_events(&Actor::Operator, &query, 1000, "")
            .await
            .expect("events");
        if events.len() >= wanted || std::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        events.len() >= wanted,
        "{} of {wanted} refusals audited",
        events.len()
    );
    assert!(events.iter().any(|e| e.details.contains("exactly one")));
    saml.install.stop().await;
}
