//! The install answers: health per service, reflection listing what each port serves, request
//! ids, the JWK Set over HTTP and gRPC.

use praxis_proto::identity::v1::GetJwksRequest;
use praxis_proto::identity::v1::token_service_client::TokenServiceClient;
use praxis_tests::installs;
use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn listed_services(channel: tonic::transport::Channel) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.next().await.expect("an answer").expect("ok");
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
}

#[tokio::test]
async fn every_service_is_serving_and_lists_itself_by_reflection_without_a_token() {
    for install in installs().await {
        let ports = [
            (
                install.addresses.directory,
                vec![
                    "praxis.directory.v1.EnterpriseService",
                    "praxis.directory.v1.PracticeService",
                    "praxis.directory.v1.UserService",
                    "praxis.directory.v1.EmailDomainService",
                    "praxis.directory.v1.RoleService",
                    "praxis.directory.v1.PersonService",
                    "praxis.directory.v1.RoleBindingService",
                    "praxis.directory.v1.AccountService",
                    "praxis.directory.v1.AccessService",
                    "praxis.directory.v1.DirectorySyncService",
                    "praxis.audit.v1.AuditService",
                ],
            ),
            (
                install.addresses.identity,
                vec![
                    "praxis.identity.v1.TokenService",
                    "praxis.identity.v1.AuthService",
                    "praxis.identity.v1.SessionService",
                    "praxis.identity.v1.TwoFactorService",
                    "praxis.identity.v1.SsoService",
                    "praxis.identity.v1.ApiKeyService",
                ],
            ),
            (
                install.addresses.authz,
                vec![
                    "praxis.authz.v1.AuthzService",
                    "praxis.authz.v1.PolicyService",
                ],
            ),
        ];
        for (address, services) in ports {
            let channel = install.channel(address).await;
            let mut health = HealthClient::new(channel.clone());
            for service in services.iter().copied().chain([""]) {
                let mut status = ServingStatus::Unknown;
                for _ in 0..50 {
                    let answer = health
                        .check(HealthCheckRequest {
                            service: service.to_owned(),
                        })
                        .await
                        .expect("health");
                    status = answer.into_inner().status();
                    if status == ServingStatus::Serving {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                assert_eq!(
                    status,
                    ServingStatus::Serving,
                    "{}: {service:?} at {address}",
                    install.backend
                );
            }
            let listed = listed_services(channel).await;
            for service in &services {
                assert!(
                    listed.iter().any(|name| name == service),
                    "{}: {service} missing from {listed:?}",
                    install.backend
                );
            }
            // Each port lists only what it serves.
            let foreign = listed
                .iter()
                .filter(|name| name.starts_with("praxis.") && !services.contains(&name.as_str()));
            assert_eq!(
                foreign.count(),
                0,
                "{}: {listed:?} at {address}",
                install.backend
            );
        }
    }
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let install = praxis_tests::start(false).await;
    let token = install.platform_admin_token().await;
    let mut client = TokenServiceClient::new(install.channel(install.addresses.identity).await);
    let mut request = praxis_tests::authed(GetJwksRequest {}, &token);
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-42".parse().unwrap());
    let response = client.get_jwks(request).await.expect("jwks");
    assert_eq!(
        response
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );
    let response = client
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks without a token is public");
    let made = response
        .metadata()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        uuid::Uuid::parse_str(&made).is_ok(),
        "generated request id {made:?}"
    );
}

#[tokio::test]
async fn jwks_over_http_and_grpc_publish_the_same_ed25519_key() {
    let install = praxis_tests::start(false).await;
    let mut client = TokenServiceClient::new(install.channel(install.addresses.identity).await);
    let grpc = client
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    assert_eq!(grpc.keys.len(), 1);
    let key = &grpc.keys[0];
    assert_eq!(
        (key.kty.as_str(), key.crv.as_str(), key.alg.as_str()),
        ("OKP", "Ed25519", "EdDSA")
    );

    let body = http_get(install.addresses.identity_http, "/.well-known/jwks.json").await;
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).expect("body")).expect("json");
    assert_eq!(json["keys"][0]["kid"], key.kid.as_str());
    assert_eq!(json["keys"][0]["x"], key.x.as_str());
    // The file other processes verify with holds the same set.
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(install.config.jwks_file()).expect("jwks file"),
    )
    .expect("json");
    assert_eq!(file["keys"][0]["kid"], key.kid.as_str());
}

/// A minimal HTTP/1.1 GET, so the test does not need an HTTP client crate.
pub async fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test]
async fn rpc_metrics_are_scrapable_in_prometheus_format() {
    // The provider must be global before the install builds its layers, as `init` does it.
    let (reader, registry) = praxis_runtime::metrics::prometheus_reader().expect("reader");
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let install = praxis_tests::start(false).await;
    let mut client = TokenServiceClient::new(install.channel(install.addresses.identity).await);
    client.get_jwks(GetJwksRequest {}).await.expect("jwks");

    let shutdown = tokio_util::sync::CancellationToken::new();
    let address = praxis_runtime::metrics::start(Some("127.0.0.1:0"), registry, shutdown.clone())
        .await
        .expect("metrics endpoint")
        .expect("an address");
    let scrape = http_get(address, "/metrics").await;
    let line = scrape
        .lines()
        .find(|line| line.starts_with("rpc_server_calls_total") && line.contains("GetJwks"))
        .unwrap_or_else(|| panic!("no rpc_server_calls_total for GetJwks in:\n{scrape}"));
    assert!(line.contains("rpc_grpc_status_code=\"0\""), "{line}");
    // Millisecond buckets: with the SDK's defaults (0, 5, 10 … seconds) every call would land
    // in the first one and the histogram would say nothing.
    let answered_within = |bound: &str| {
        scrape.lines().any(|line| {
            line.starts_with("rpc_server_duration_seconds_bucket")
                && line.contains("GetJwks")
                && line.contains(&format!("le=\"{bound}\""))
        })
    };
    assert!(
        answered_within("0.001") && answered_within("0.01"),
        "no millisecond latency buckets in:\n{scrape}"
    );
    shutdown.cancel();
}
