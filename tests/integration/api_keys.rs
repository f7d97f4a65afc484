//! API keys for service accounts (I7): shown once, never retrievable; accepted by every
//! service; refused at once when revoked; the old key of a rotation works for the overlap only;
//! scopes limit what authz allows; the rate limit is one token bucket for every replica that
//! shares the cache.

use praxis_directory::domain::roles::{BindingScope, RoleBinding, RoleId};
use praxis_directory::domain::*;
use praxis_proto::authz::v1 as authz_pb;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::directory::v1 as directory_pb;
use praxis_proto::directory::v1::enterprise_service_client::EnterpriseServiceClient;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::api_key_service_client::ApiKeyServiceClient;
use praxis_runtime::auth::ApiKeyRefusal;
use praxis_tests::{Fixture, Install, authed, fixture, installs, violated_fields};
use std::sync::Arc;
use tonic::Code;
use tonic_types::StatusExt;

fn in_days(days: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (chrono::Utc::now() + chrono::Duration::days(days)).timestamp(),
        nanos: 0,
    }
}

/// Binds `role_id` to `user_id` over the enterprise; the revision it made.
async fn bind(
    install: &Install,
    enterprise_id: EnterpriseId,
    user_id: String,
    role_id: &str,
) -> i64 {
    let binding = RoleBinding {
        id: String::new(),
        enterprise_id,
        user_id: UserId(user_id),
        role_id: RoleId(role_id.to_owned()),
        scope: BindingScope::Enterprise,
        valid_from: None,
        valid_until: None,
        weekly_window: None,
        created_at: chrono::Utc::now(),
        source: None,
    };
    install
        .directory
        .create_binding(&Actor::Operator, binding, chrono::Utc::now())
        .await
        .expect("binding")
        .1
}

/// A service account of `clinic` bound to Billing over the enterprise, and an admin's token.
async fn service_account(install: &Install, clinic: &Fixture) -> (directory_pb::User, String) {
    let admin = install
        .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
        .await;
    let account = UserServiceClient::new(install.channel(install.addresses.directory).await)
        .create_service_account(authed(
            directory_pb::CreateServiceAccountRequest {
                enterprise_id: clinic.enterprise.id.0.clone(),
                display_name: "EHR sync".into(),
            },
            &admin,
        ))
        .await
        .expect("service account")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(
        account.kind,
        i32::from(directory_pb::UserKind::ServiceAccount)
    );
    bind(
        install,
        clinic.enterprise.id.clone(),
        account.id.clone(),
        "builtin-billing",
    )
    .await;
    (account, admin)
}

async fn create_key(
    install: &Install,
    admin: &str,
    principal: &str,
    scopes: &[&str],
    rate: i32,
) -> pb::CreateApiKeyResponse {
    ApiKeyServiceClient::new(install.channel(install.addresses.identity).await)
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                principal_id: principal.to_owned(),
                display_name: "nightly export".into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                expire_time: Some(in_days(30)),
                rate_limit_per_minute: rate,
            },
            admin,
        ))
        .await
        .expect("create key")
        .into_inner()
}

/// The key's own principal asks authz about itself, authenticated by the key.
async fn check(
    install: &Install,
    key: &str,
    principal: &str,
    enterprise: &str,
    permission: &str,
) -> Result<authz_pb::CheckResponse, tonic::Status> {
    check_at(
        install,
        install.addresses.authz,
        key,
        principal,
        enterprise,
        permission,
    )
    .await
}

async fn check_at(
    install: &Install,
    authz: std::net::SocketAddr,
    key: &str,
    principal: &str,
    enterprise: &str,
    permission: &str,
) -> Result<authz_pb::CheckResponse, tonic::Status> {
    AuthzServiceClient::new(install.channel(authz).await)
        .check(authed(
            authz_pb::CheckRequest {
                principal: Some(authz_pb::Principal {
                    user_id: principal.to_owned(),
                }),
                permission: permission.to_owned(),
                resource: Some(authz_pb::Resource {
                    r#type: "invoice".into(),
                    id: "i-1".into(),
                    enterprise_id: enterprise.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            key,
        ))
        .await
        .map(|answer| answer.into_inner())
}

fn allowed(answer: &authz_pb::CheckResponse) -> bool {
    answer.decision == i32::from(authz_pb::Decision::Allow)
}

#[tokio::test]
async fn i7_keys_are_shown_once_work_everywhere_within_their_scopes_and_stop_when_revoked() {
    for install in installs().await {
        let clinic = fixture(&install, "Keys").await;
        let b = &install.backend;
        let enterprise = clinic.enterprise.id.0.clone();
        let (account, admin) = service_account(&install, &clinic).await;
        let created = create_key(&install, &admin, &account.id, &["billing:read"], 0).await;
        let secret = created.secret.clone();
        assert!(secret.starts_with("prx_"), "{b}");
        let key = created.api_key.expect("key");
        assert!(secret.starts_with(&key.prefix), "{b}: the prefix is public");
        assert_eq!(key.rate_limit_per_minute, 600);

        // Within its scopes and its roles: allowed. Its role gives more, its scopes do not.
        let read = check(&install, &secret, &account.id, &enterprise, "billing:read").await;
        assert!(allowed(&read.expect("check")), "{b}");
        let edit = check(&install, &secret, &account.id, &enterprise, "billing:edit")
            .await
            .expect("check");
        assert!(!allowed(&edit), "{b}");
        assert!(
            edit.reasons.iter().any(|r| r.contains("scopes")),
            "{b}: {:?}",
            edit.reasons
        );
        // Directory accepts it too.
        EnterpriseServiceClient::new(install.channel(install.addresses.directory).await)
            .get_enterprise(authed(
                directory_pb::GetEnterpriseRequest {
                    enterprise_id: enterprise.clone(),
                },
                &secret,
            ))
            .await
            .expect("directory with an API key");

        // Listed with its use, never with the secret.
        let listed = ApiKeyServiceClient::new(install.channel(install.addresses.identity).await)
            .list_api_keys(authed(
                pb::ListApiKeysRequest {
                    enterprise_id: enterprise.clone(),
                    principal_id: account.id.clone(),
                },
                &admin,
            ))
            .await
            .expect("list")
            .into_inner()
            .api_keys;
        assert_eq!(listed.len(), 1, "{b}");
        assert!(listed[0].use_count >= 3, "{b}: {}", listed[0].use_count);
        assert!(listed[0].last_use_time.is_some());
        // `prx_<prefix>_<secret>`; the secret is URL-safe base64 and may hold `_` itself, so
        // the part after the prefix (its last `_`-piece can be a letter or two, found anywhere).
        let secret_part = secret
            .strip_prefix("prx_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(_, secret)| secret)
            .expect("secret part");
        assert!(
            !format!("{listed:?}").contains(secret_part),
            "{b}: the secret came back"
        );

        // Only admins make keys; bad requests name their fields.
        let staff = install.token_for(&clinic.user(UserKind::Staff).email).await;
        let refused = ApiKeyServiceClient::new(install.channel(install.addresses.identity).await)
            .create_api_key(authed(
                pb::CreateApiKeyRequest {
                    principal_id: account.id.clone(),
                    display_name: "mine".into(),
                    expire_time: Some(in_days(1)),
                    ..Default::default()
                },
                &staff,
            ))
            .await
            .expect_err("staff");
        assert_eq!(refused.code(), Code::PermissionDenied, "{b}");
        let invalid = ApiKeyServiceClient::new(install.channel(install.addresses.identity).await)
            .create_api_key(authed(
                pb::CreateApiKeyRequest {
                    principal_id: account.id.clone(),
                    display_name: String::new(),
                    scopes: vec!["billing:fly".into()],
                    expire_time: Some(in_days(400)),
                    rate_limit_per_minute: -1,
                },
                &admin,
            ))
            .await
            .expect_err("invalid");
        let mut fields = violated_fields(&invalid);
        fields.sort();
        assert_eq!(
            fields,
            [
                "display_name",
                "expire_time",
                "rate_limit_per_minute",
                "scopes[0]"
            ],
            "{b}"
        );

        // Revoked: refused at the very next call, by every service.
        ApiKeyServiceClient::new(install.channel(install.addresses.identity).await)
            .revoke_api_key(authed(
                pb::RevokeApiKeyRequest {
                    key_id: key.id.clone(),
                },
                &admin,
            ))
            .await
            .expect("revoke");
        let after = check(&install, &secret, &account.id, &enterprise, "billing:read")
            .await
            .expect_err("revoked");
        assert_eq!(after.code(), Code::Unauthenticated, "{b}");
        install.stop().await;
    }
}

#[tokio::test]
async fn i7_a_rotated_key_works_for_the_overlap_and_then_stops() {
    let install = praxis_tests::start(false).await;
    let clinic = fixture(&install, "Rotation").await;
    let enterprise = clinic.enterprise.id.0.clone();
    let (account, admin) = service_account(&install, &clinic).await;
    let old = create_key(&install, &admin, &account.id, &[], 0).await;
    let rotated = ApiKeyServiceClient::new(install.channel(install.addresses.identity).await)
        .rotate_api_key(authed(
            pb::RotateApiKeyRequest {
                key_id: old.api_key.expect("key").id,
                overlap_seconds: Some(2),
            },
            &admin,
        ))
        .await
        .expect("rotate")
        .into_inner();
    assert_ne!(rotated.secret, old.secret);
    assert!(rotated.replaced.expect("old").retire_time.is_some());
    for key in [&old.secret, &rotated.secret] {
        let answer = check(&install, key, &account.id, &enterprise, "billing:read").await;
        assert!(allowed(&answer.expect("within the overlap")));
    }
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let stale = check(
        &install,
        &old.secret,
        &account.id,
        &enterprise,
        "billing:read",
    )
    .await
    .expect_err("after the overlap");
    assert_eq!(stale.code(), Code::Unauthenticated);
    let fresh = check(
        &install,
        &rotated.secret,
        &account.id,
        &enterprise,
        "billing:read",
    )
    .await;
    assert!(allowed(&fresh.expect("the new key")));
    install.stop().await;
}

#[tokio::test]
async fn i7_the_rate_limit_is_one_bucket_for_every_replica_sharing_redis() {
    let Some(redis) = std::env::var(praxis_tests::REDIS_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("skipped: {} is not set", praxis_tests::REDIS_URL_VAR);
        return;
    };
    let Some(install) = installs()
        .await
        .into_iter()
        .find(|i| i.backend == "postgres+redis")
    else {
        eprintln!("skipped: no PostgreSQL + Redis install");
        return;
    };
    let clinic = fixture(&install, "Rate").await;
    let enterprise = clinic.enterprise.id.0.clone();
    let (account, admin) = service_account(&install, &clinic).await;
    let created = create_key(&install, &admin, &account.id, &[], 4).await;

    // Two more identity replicas: their own database connections and Redis clients, the same
    // database and Redis as the install's.
    let database_url = install.config.identity().service.database_url;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let db = praxis_store::connect(&database_url)
            .await
            .expect("database");
        let cache = praxis_cache::open(&redis).expect("redis");
        let accounts = Arc::new(praxis::inprocess::DirectoryAccounts(
            install.directory.clone(),
        ));
        replicas.push(praxis_identity::api_keys::ApiKeys::new(db, cache, accounts));
    }
    let mut taken = 0;
    let mut waits = Vec::new();
    for round in 0..10 {
        match replicas[round % 2]
            .verify(&created.secret, chrono::Utc::now())
            .await
        {
            Ok(caller) => {
                assert_eq!(caller.user_id, account.id);
                taken += 1;
            }
            Err(ApiKeyRefusal::RateLimited(wait)) => waits.push(wait),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(
        taken, 4,
        "four a minute across both replicas; waits {waits:?}"
    );
    assert!(waits.iter().all(|w| w.as_secs() <= 15), "{waits:?}");
    // Through a service, the refusal is RESOURCE_EXHAUSTED with when to retry.
    let limited = check(
        &install,
        &created.secret,
        &account.id,
        &enterprise,
        "billing:read",
    )
    .await
    .expect_err("rate limited");
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert!(limited.get_details_retry_info().is_some(), "{limited:?}");
    install.stop().await;
}

#[tokio::test]
async fn i7_a_service_in_another_process_checks_keys_with_identity_over_http() {
    let install = praxis_tests::start(false).await;
    let clinic = fixture(&install, "Remote").await;
    let enterprise = clinic.enterprise.id.0.clone();
    let (account, admin) = service_account(&install, &clinic).await;
    let created = create_key(&install, &admin, &account.id, &[], 5).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let remote = crate::authz::standalone_authz(
        &install,
        &format!("http://{}", install.addresses.directory),
        shutdown.clone(),
    )
    .await;
    let first = check_at(
        &install,
        remote,
        &created.secret,
        &account.id,
        &enterprise,
        "billing:read",
    )
    .await;
    assert!(allowed(&first.expect("allowed over HTTP")));
    // Every hop spends a token (authz's check of the key, directory's for the lookups authz
    // makes with it), so the bucket runs dry within a few calls, and authz says so.
    let mut refusal = None;
    for _ in 0..10 {
        if let Err(status) = check_at(
            &install,
            remote,
            &created.secret,
            &account.id,
            &enterprise,
            "billing:read",
        )
        .await
        {
            refusal = Some(status);
            break;
        }
    }
    let limited = refusal.expect("the rate limit never held");
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(limited.get_details_retry_info().is_some());
    let garbage = check_at(
        &install,
        remote,
        "prx_aaaaaaaaaaaaa_nope",
        &account.id,
        &enterprise,
        "billing:read",
    )
    .await
    .expect_err("garbage");
    assert_eq!(garbage.code(), Code::Unauthenticated);
    shutdown.cancel();
    install.stop().await;
}

#[tokio::test]
async fn a1_a_service_account_holding_authz_check_asks_about_anyone_in_its_enterprise() {
    for install in installs().await {
        let clinic = fixture(&install, "Asking").await;
        let b = &install.backend;
        let enterprise = clinic.enterprise.id.0.clone();
        let staff = clinic.user(UserKind::Staff).clone();
        let (checker, admin) = service_account(&install, &clinic).await;
        let (other, _) = service_account(&install, &clinic).await;
        let revision = bind(
            &install,
            clinic.enterprise.id.clone(),
            checker.id.clone(),
            "permission:authz:check",
        )
        .await;
        let ask = |key: String| {
            let install = &install;
            let staff_id = staff.id.0.clone();
            let enterprise = enterprise.clone();
            let practice = clinic.practices[0].id.0.clone();
            async move {
                AuthzServiceClient::new(install.channel(install.addresses.authz).await)
                    .check(authed(
                        authz_pb::CheckRequest {
                            principal: Some(authz_pb::Principal { user_id: staff_id }),
                            permission: "appointments:read".into(),
                            resource: Some(authz_pb::Resource {
                                r#type: "appointment".into(),
                                id: "a-1".into(),
                                enterprise_id: enterprise,
                                practice_id: practice,
                                ..Default::default()
                            }),
                            min_revision: revision,
                            ..Default::default()
                        },
                        &key,
                    ))
                    .await
            }
        };
        let holding = create_key(&install, &admin, &checker.id, &[], 0)
            .await
            .secret;
        let answer = ask(holding).await.expect("a checking service asks");
        assert!(
            allowed(&answer.into_inner()),
            "{b}: staff read their practice's appointments"
        );
        let narrow = create_key(&install, &admin, &checker.id, &["billing:read"], 0)
            .await
            .secret;
        let refused = ask(narrow).await.expect_err("scopes without authz:check");
        assert_eq!(refused.code(), Code::PermissionDenied, "{b}");
        let lacking = create_key(&install, &admin, &other.id, &[], 0).await.secret;
        let refused = ask(lacking).await.expect_err("no authz:check");
        assert_eq!(refused.code(), Code::PermissionDenied, "{b}");
        // Nobody across enterprises.
        let elsewhere = fixture(&install, "Elsewhere").await;
        let (stranger, stranger_admin) = service_account(&install, &elsewhere).await;
        bind(
            &install,
            elsewhere.enterprise.id.clone(),
            stranger.id.clone(),
            "permission:authz:check",
        )
        .await;
        let foreign = create_key(&install, &stranger_admin, &stranger.id, &[], 0)
            .await
            .secret;
        let refused = ask(foreign).await.expect_err("another enterprise");
        assert!(
            matches!(refused.code(), Code::PermissionDenied | Code::NotFound),
            "{b}: {refused:?}"
        );
        install.stop().await;
    }
}

/// A8: what authz waits on when a service account asks about someone (the snapshot, the reads
/// that show the account holds `authz:check`, the enterprise's revision) is read on directory's
/// snapshot connections, not behind writers holding every connection of the main pool.
#[tokio::test]
async fn a8_a_service_accounts_question_is_read_while_every_writer_connection_is_held() {
    use std::time::Duration;
    use tokio::time::timeout;

    for install in installs().await {
        if !install.backend.starts_with("postgres") {
            continue;
        }
        let b = install.backend.clone();
        let clinic = fixture(&install, "Held").await;
        let staff = clinic.user(UserKind::Staff).clone();
        let (checker, _) = service_account(&install, &clinic).await;
        bind(
            &install,
            clinic.enterprise.id.clone(),
            checker.id.clone(),
            "permission:authz:check",
        )
        .await;
        let actor = Actor::Caller(praxis_runtime::Caller {
            user_id: checker.id.clone(),
            enterprise_id: clinic.enterprise.id.0.clone(),
            session_id: String::new(),
            kind: "SERVICE_ACCOUNT".into(),
            auth_time: 0,
            amr: Vec::new(),
            scopes: Vec::new(),
        });
        let directory = &install.directory;
        let held = praxis_tests::hold_every_connection(directory.store().connection()).await;

        let snapshot = timeout(
            Duration::from_secs(3),
            directory.principal_snapshot(&actor, &staff.id),
        )
        .await
        .unwrap_or_else(|_| panic!("{b}: the snapshot waited for the writers' connections"))
        .expect("the account may read anyone's snapshot");
        assert_eq!(snapshot.user.id, staff.id, "{b}");
        let revision = timeout(
            Duration::from_secs(3),
            directory.revision(&clinic.enterprise.id),
        )
        .await
        .unwrap_or_else(|_| panic!("{b}: the revision waited for the writers' connections"))
        .expect("the revision");
        assert_eq!(revision, snapshot.revision, "{b}");
        drop(held);
        install.stop().await;
    }
}
