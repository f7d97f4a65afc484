//! Caller authentication: every way a bearer token can be wrong is UNAUTHENTICATED, and only a
//! token identity signed, for us, unexpired and untouched, gets through.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use praxis_identity::TokenSubject;
use praxis_proto::directory::v1::GetEnterpriseRequest;
use praxis_proto::directory::v1::enterprise_service_client::EnterpriseServiceClient;
use praxis_runtime::config::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use praxis_tests::{Install, authed};
use tonic::Code;

fn subject() -> TokenSubject {
    TokenSubject {
        user_id: "u-1".into(),
        enterprise_id: "e-1".into(),
        session_id: "s-1".into(),
        kind: "STAFF".into(),
        amr: vec!["pwd".into()],
        auth_time: chrono::Utc::now(),
    }
}

async fn outcome(install: &Install, token: Option<&str>) -> Code {
    let mut client =
        EnterpriseServiceClient::new(install.channel(install.addresses.directory).await);
    let body = GetEnterpriseRequest {
        enterprise_id: "e-1".into(),
    };
    let request = match token {
        Some(token) => authed(body, token),
        None => tonic::Request::new(body),
    };
    match client.get_enterprise(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn split(token: &str) -> (String, String, String) {
    let mut parts = token.split('.').map(str::to_owned);
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

#[tokio::test]
async fn only_valid_tokens_get_through() {
    let install = praxis_tests::start(false).await;
    let now = chrono::Utc::now();
    let keys = install.key_ring(DEFAULT_ISSUER, DEFAULT_AUDIENCE).await;
    let valid = keys
        .issue(&subject(), now, chrono::Duration::minutes(5))
        .await
        .unwrap();
    // Control: a good token passes authentication and meets the tenant rule (no such enterprise).
    assert_eq!(outcome(&install, Some(&valid)).await, Code::NotFound);

    let expired = keys
        .issue(
            &subject(),
            now - chrono::Duration::hours(1),
            chrono::Duration::minutes(10),
        )
        .await
        .unwrap();
    let wrong_audience = install
        .key_ring(DEFAULT_ISSUER, "billing")
        .await
        .issue(&subject(), now, chrono::Duration::minutes(5))
        .await
        .unwrap();
    let wrong_issuer = install
        .key_ring("evil-issuer", DEFAULT_AUDIENCE)
        .await
        .issue(&subject(), now, chrono::Duration::minutes(5))
        .await
        .unwrap();

    // Same claims, signed by a key identity never published.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger_db = praxis_store::connect(&format!(
        "sqlite://{}?mode=rwc",
        stranger_dir.path().join("i.db").display()
    ))
    .await
    .unwrap();
    praxis_store::migrate::<praxis_identity::store::migrations::Migrator>(&stranger_db)
        .await
        .unwrap();
    let stranger = praxis_identity::KeyRing::new(
        stranger_db,
        praxis_identity::secrets::Sealer::from_file(&stranger_dir.path().join("secrets.key"))
            .unwrap(),
        DEFAULT_ISSUER,
        DEFAULT_AUDIENCE,
        chrono::Duration::hours(1),
    );
    stranger.ensure_active(now).await.unwrap();
    let unknown_key = stranger
        .issue(&subject(), now, chrono::Duration::minutes(5))
        .await
        .unwrap();

    // The payload changed after signing: a staff member making themselves admin.
    let (header, payload, signature) = split(&valid);
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).unwrap()).unwrap();
    claims["kind"] = "ENTERPRISE_ADMIN".into();
    let tampered = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );

    // alg=none, and HS256 keyed with the public key (algorithm confusion).
    let kid = jsonwebtoken::decode_header(&valid).unwrap().kid.unwrap();
    let none_header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    let alg_none = format!("{none_header}.{payload}.");
    let jwks: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(install.config.jwks_file()).unwrap())
            .unwrap();
    let public_x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid);
    let confused = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_x.as_bytes()),
    )
    .unwrap();

    let cases: [(&str, Option<&str>); 10] = [
        ("no token", None),
        ("not a jwt", Some("garbage")),
        ("empty", Some("")),
        ("expired", Some(&expired)),
        ("wrong audience", Some(&wrong_audience)),
        ("wrong issuer", Some(&wrong_issuer)),
        ("unknown key", Some(&unknown_key)),
        ("tampered payload", Some(&tampered)),
        ("alg none", Some(&alg_none)),
        ("hs256 confusion", Some(&confused)),
    ];
    for (case, token) in cases {
        assert_eq!(
            outcome(&install, token).await,
            Code::Unauthenticated,
            "{case} was accepted"
        );
    }
}

/// I9: signing keys are stored sealed; a key stored in the clear by an older version is sealed
/// at the next start; and under another secrets key nothing can be signed.
#[tokio::test]
async fn i9_signing_keys_are_sealed_at_rest() {
    use praxis_identity::store::signing_key;
    use praxis_store::sea_orm::{ActiveModelTrait, EntityTrait, Set};
    let dir = tempfile::tempdir().unwrap();
    let db = praxis_store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("i.db").display()
    ))
    .await
    .unwrap();
    praxis_store::migrate::<praxis_identity::store::migrations::Migrator>(&db)
        .await
        .unwrap();
    let sealer =
        praxis_identity::secrets::Sealer::from_file(&dir.path().join("secrets.key")).unwrap();
    let ring = |sealer| {
        praxis_identity::KeyRing::new(
            db.clone(),
            sealer,
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE,
            chrono::Duration::hours(1),
        )
    };
    let now = chrono::Utc::now();

    // An older install's key, stored in the clear.
    let legacy = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let der = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_der(&legacy).unwrap();
    signing_key::ActiveModel {
        kid: Set("legacy".into()),
        private_key: Set(der.as_bytes().to_vec()),
        public_x: Set(URL_SAFE_NO_PAD.encode(legacy.verifying_key().as_bytes())),
        created_at: Set(now),
        retired_at: Set(None),
    }
    .insert(&db)
    .await
    .unwrap();

    let keys = ring(sealer.clone());
    keys.ensure_active(now).await.unwrap();
    let rows = signing_key::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(praxis_identity::secrets::Sealer::is_sealed(
        &rows[0].private_key
    ));
    assert!(
        !rows[0]
            .private_key
            .windows(der.as_bytes().len())
            .any(|w| w == der.as_bytes()),
        "the clear key is gone"
    );
    let token = keys
        .issue(&subject(), now, chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
        Some("legacy")
    );
    keys.rotate(now).await.unwrap();
    for row in signing_key::Entity::find().all(&db).await.unwrap() {
        assert!(praxis_identity::secrets::Sealer::is_sealed(
            &row.private_key
        ));
    }

    // Under another secrets key, the stored keys do not open.
    let stranger =
        praxis_identity::secrets::Sealer::from_file(&dir.path().join("other.key")).unwrap();
    assert!(
        ring(stranger)
            .issue(&subject(), now, chrono::Duration::minutes(5))
            .await
            .is_err()
    );
}

/// I5: a key older than the rotation age is replaced; the retired key stays published for the
/// overlap, so tokens it signed keep verifying, and leaves the JWK Set after it.
#[tokio::test]
async fn i5_signing_keys_rotate_when_due_with_an_overlap() {
    let install = praxis_tests::start(false).await;
    let keys = install.key_ring(DEFAULT_ISSUER, DEFAULT_AUDIENCE).await;
    let now = chrono::Utc::now();
    let month = chrono::Duration::days(30);
    assert_eq!(
        keys.rotate_if_due(now, month).await.unwrap(),
        None,
        "not due yet"
    );
    let before = keys
        .issue(&subject(), now, chrono::Duration::minutes(5))
        .await
        .unwrap();
    let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid.unwrap();
    let later = now + chrono::Duration::days(31);
    let new_kid = keys
        .rotate_if_due(later, month)
        .await
        .unwrap()
        .expect("rotated");
    assert_ne!(new_kid, old_kid);
    let published: Vec<String> = keys
        .jwks(later)
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert!(
        published.contains(&old_kid) && published.contains(&new_kid),
        "{published:?}"
    );
    // The key ring's overlap in this kit is one hour.
    let gone: Vec<String> = keys
        .jwks(later + chrono::Duration::hours(2))
        .await
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(gone, std::slice::from_ref(&new_kid));
    let after = keys
        .issue(&subject(), later, chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(),
        Some(new_kid.as_str())
    );
}
