//! Check through gRPC: in one process (principals read in process) and as a separate authz that
//! reads the directory over gRPC and verifies tokens against identity's JWKS URL.

use praxis_directory::domain::UserKind;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::authz::v1::{CheckRequest, CheckResponse, Decision, Principal, Resource};
use praxis_runtime::config::AuthConfig;
use praxis_tests::{Fixture, Install, authed, fixture, installs, violated_fields};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_types::StatusExt;

/// A standalone authz on its own port, reading principals from `directory_url`.
pub async fn standalone_authz(
    install: &Install,
    directory_url: &str,
    shutdown: CancellationToken,
) -> SocketAddr {
    standalone_authz_with(
        install,
        directory_url,
        praxis_cache::open("memory").unwrap(),
        shutdown,
    )
    .await
    .0
}

/// Like [`standalone_authz`] with its own cache; also returns the service's principal cache.
pub async fn standalone_authz_with(
    install: &Install,
    directory_url: &str,
    cache: Arc<dyn praxis_cache::Cache>,
    shutdown: CancellationToken,
) -> (SocketAddr, Arc<praxis_authz::snapshots::Snapshots>) {
    let auth = AuthConfig {
        jwks_url: Some(format!(
            "http://{}/.well-known/jwks.json",
            install.addresses.identity_http
        )),
        api_key_url: Some(format!(
            "http://{}/api-keys/verify",
            install.addresses.identity_http
        )),
        ..AuthConfig::default()
    };
    let verifier = Arc::new(praxis_runtime::TokenVerifier::new(&auth).unwrap());
    let directory = Arc::new(
        praxis_authz::principals::GrpcDirectory::new(directory_url, &Default::default()).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("authz.db").display()
    );
    let service = praxis_authz::open(
        &praxis_runtime::config::ServiceConfig {
            database_url: url,
            ..Default::default()
        },
        &praxis_authz::DecisionSettings::default(),
        directory,
        cache,
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let host = service.host(verifier, std::time::Duration::from_secs(1));
    service.spawn_workers(shutdown.clone(), None);
    let snapshots = service.snapshots();
    tokio::spawn(async move {
        let _keep = dir;
        host.serve(listener, shutdown).await
    });
    (address, snapshots)
}

fn check(
    fixture: &Fixture,
    kind: UserKind,
    permission: &str,
    practice: usize,
    line: Option<usize>,
) -> CheckRequest {
    let practice = &fixture.practices[practice];
    CheckRequest {
        principal: Some(Principal {
            user_id: fixture.user(kind).id.0.clone(),
        }),
        permission: permission.into(),
        resource: Some(Resource {
            r#type: "conversation".into(),
            id: "c-1".into(),
            enterprise_id: fixture.enterprise.id.0.clone(),
            practice_id: practice.id.0.clone(),
            line_id: line
                .map(|l| practice.lines[l].id.0.clone())
                .unwrap_or_default(),
            ..Default::default()
        }),
        min_revision: 0,
        context: None,
    }
}

async fn ask(
    install: &Install,
    authz: SocketAddr,
    fixture: &Fixture,
    kind: UserKind,
    request: CheckRequest,
) -> Result<CheckResponse, tonic::Status> {
    let token = install.token_for(&fixture.user(kind).email).await;
    let mut client = AuthzServiceClient::new(install.channel(authz).await);
    client
        .check(authed(request, &token))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a2_baselines_decide_alike_in_process_and_across_processes() {
    for install in installs().await {
        let acme = fixture(&install, "Acme").await;
        let shutdown = CancellationToken::new();
        let remote = standalone_authz(
            &install,
            &format!("http://{}", install.addresses.directory),
            shutdown.clone(),
        )
        .await;
        for authz in [install.addresses.authz, remote] {
            let b = format!("{} via {authz}", install.backend);
            let cases = [
                (
                    UserKind::Staff,
                    "messages:send",
                    0,
                    Some(0),
                    Decision::Allow,
                ),
                (UserKind::Staff, "messages:send", 0, Some(1), Decision::Deny),
                (
                    UserKind::Staff,
                    "appointments:read",
                    0,
                    None,
                    Decision::Allow,
                ),
                (
                    UserKind::Staff,
                    "appointments:read",
                    1,
                    None,
                    Decision::Deny,
                ),
                (UserKind::Manager, "patients:edit", 0, None, Decision::Allow),
                (UserKind::Manager, "patients:edit", 1, None, Decision::Deny),
                (
                    UserKind::EnterpriseContentManager,
                    "campaigns:edit",
                    1,
                    None,
                    Decision::Allow,
                ),
                (
                    UserKind::EnterpriseContentManager,
                    "triggers:toggle",
                    1,
                    None,
                    Decision::Deny,
                ),
                (
                    UserKind::EnterpriseContentManager,
                    "patients:read",
                    1,
                    None,
                    Decision::Deny,
                ),
                (
                    UserKind::EnterpriseAdmin,
                    "patients:export",
                    1,
                    None,
                    Decision::Allow,
                ),
            ];
            for (kind, permission, practice, line, expected) in cases {
                let answer = ask(
                    &install,
                    authz,
                    &acme,
                    kind,
                    check(&acme, kind, permission, practice, line),
                )
                .await
                .unwrap_or_else(|status| panic!("{b}: {kind:?} {permission}: {status:?}"));
                assert_eq!(
                    answer.decision(),
                    expected,
                    "{b}: {kind:?} {permission} practice {practice} line {line:?}: {:?}",
                    answer.reasons
                );
                assert!(!answer.reasons.is_empty(), "{b}: every answer says why");
                assert_eq!(answer.decided_at_revision, acme.enterprise.revision, "{b}");
            }
        }
        shutdown.cancel();
    }
}

#[tokio::test]
async fn refusals_are_errors_with_details_never_allow() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let authz = install.addresses.authz;

    // A user asks only about themselves.
    let mut about_admin = check(&acme, UserKind::EnterpriseAdmin, "patients:read", 0, None);
    about_admin.principal = Some(Principal {
        user_id: acme.user(UserKind::EnterpriseAdmin).id.0.clone(),
    });
    let status = ask(&install, authz, &acme, UserKind::Staff, about_admin)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let mut bad = check(&acme, UserKind::Staff, "Read Everything", 0, None);
    bad.resource.as_mut().unwrap().enterprise_id.clear();
    bad.min_revision = -1;
    let status = ask(&install, authz, &acme, UserKind::Staff, bad)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        ["permission", "resource.enterprise_id", "min_revision"]
    );

    // Warm the cache first: a cached snapshot must not answer for a revision it has not reached.
    ask(
        &install,
        authz,
        &acme,
        UserKind::Staff,
        check(&acme, UserKind::Staff, "appointments:read", 0, None),
    )
    .await
    .unwrap();
    let mut future = check(&acme, UserKind::Staff, "appointments:read", 0, None);
    future.min_revision = acme.enterprise.revision + 1_000;
    let status = ask(&install, authz, &acme, UserKind::Staff, future)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status
            .get_error_details()
            .error_info()
            .map(|i| i.reason.as_str()),
        Some("REVISION_NOT_REACHED")
    );

    // A directory that cannot be reached gives no decision at all.
    let shutdown = CancellationToken::new();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let blind = standalone_authz(&install, &nowhere, shutdown.clone()).await;
    let status = ask(
        &install,
        blind,
        &acme,
        UserKind::EnterpriseAdmin,
        check(&acme, UserKind::EnterpriseAdmin, "patients:read", 0, None),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    shutdown.cancel();
}
