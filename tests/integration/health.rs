//! Health tells the truth about dependencies, and shutdown drains and stops.

use praxis_tests::REDIS_URL_VAR;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A private Redis for one test; killed and reaped when dropped.
pub struct RedisProcess(Child);

/// A private Redis and its URL, when `redis-server` is on this machine (CI has it).
pub fn redis_for_test() -> Option<(RedisProcess, String)> {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let port = free_port();
    Some((start_redis(port), format!("redis://127.0.0.1:{port}")))
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(port: u16) -> RedisProcess {
    let process = RedisProcess(
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return process;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("redis-server did not start on {port}");
}

async fn wait_for(address: SocketAddr, service: &str, wanted: ServingStatus) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_lazy();
    let mut health = HealthClient::new(channel);
    let mut last = None;
    for _ in 0..150 {
        if let Ok(answer) = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
        {
            let status = answer.into_inner().status();
            if status == wanted {
                return;
            }
            last = Some(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{service} never became {wanted:?} (last {last:?})");
}

/// A service on its own Redis reports NOT_SERVING while Redis is down and SERVING once it is
/// back, without restarting. Needs `redis-server`, which CI has (it sets PRAXIS_TEST_REDIS_URL).
#[tokio::test]
async fn health_follows_redis_down_and_back() {
    if std::env::var(REDIS_URL_VAR).is_err()
        && Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("health_follows_redis_down_and_back: no redis-server here; CI runs it");
        return;
    }
    let port = free_port();
    let redis = start_redis(port);
    let install = praxis_tests::start(false).await;
    let shutdown = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let cache = praxis_cache::open(&format!("redis://127.0.0.1:{port}")).unwrap();
    let directory = Arc::new(
        praxis_authz::principals::GrpcDirectory::new(
            &format!("http://{}", install.addresses.directory),
            &Default::default(),
        )
        .unwrap(),
    );
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
    let auth = praxis_runtime::config::AuthConfig {
        jwks_file: Some(install.config.jwks_file()),
        ..Default::default()
    };
    let verifier = Arc::new(praxis_runtime::TokenVerifier::new(&auth).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let host = service
        .host(verifier, Duration::from_secs(1))
        .health_interval(Duration::from_millis(200));
    let server = tokio::spawn(host.serve(listener, shutdown.clone()));

    let name = "praxis.authz.v1.AuthzService";
    wait_for(address, name, ServingStatus::Serving).await;
    drop(redis);
    wait_for(address, name, ServingStatus::NotServing).await;
    wait_for(address, "", ServingStatus::NotServing).await;
    // Liveness stays up: an outage must make pods unready, never restart them.
    wait_for(
        address,
        praxis_runtime::health::LIVENESS,
        ServingStatus::Serving,
    )
    .await;
    let _redis = start_redis(port);
    wait_for(address, name, ServingStatus::Serving).await;
    assert!(
        !server.is_finished(),
        "the service must ride out the outage"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops after shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_stops_every_server_and_frees_the_ports() {
    let install = praxis_tests::start(false).await;
    let addresses = install.addresses;
    install.stop().await;
    for address in [
        addresses.directory,
        addresses.identity,
        addresses.identity_http,
        addresses.authz,
    ] {
        assert!(
            tokio::net::TcpStream::connect(address).await.is_err(),
            "{address} still accepts connections"
        );
    }
}
