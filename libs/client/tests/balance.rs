//! Several endpoints of one service: calls spread over them, and one that is down does not
//! stop the others from answering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use praxis_client::Target;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A health server on a loopback port that counts the calls it answers.
async fn counted_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(tower::ServiceBuilder::new().map_request(
                move |request: http::Request<tonic::body::Body>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    request
                },
            ))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (format!("http://{address}"), calls)
}

async fn check(client: &mut HealthClient<praxis_client::channel::Balanced>) -> bool {
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .is_ok()
}

#[tokio::test]
async fn calls_spread_over_every_endpoint() {
    let (a, a_calls) = counted_server().await;
    let (b, b_calls) = counted_server().await;
    let channel = Target::balanced([a, b]).channel().unwrap();
    let mut client = HealthClient::new(channel);
    for _ in 0..40 {
        assert!(check(&mut client).await);
    }
    let (a, b) = (
        a_calls.load(Ordering::SeqCst),
        b_calls.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 40);
    assert!(a > 0 && b > 0, "both endpoints answer: {a} and {b}");
}

#[tokio::test]
async fn an_endpoint_that_is_down_is_passed_over() {
    let (live, live_calls) = counted_server().await;
    // A port nothing listens on.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let target = Target {
        connect_timeout: Duration::from_millis(300),
        ..Target::balanced([live, dead])
    };
    let client = HealthClient::new(target.channel().unwrap());
    let retry = praxis_client::retry::Retry::default();
    let mut answered = 0;
    for _ in 0..20 {
        let asked = retry.idempotent(|| {
            let mut client = client.clone();
            async move {
                client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
            }
        });
        if tokio::time::timeout(Duration::from_secs(5), asked)
            .await
            .is_ok_and(|answer| answer.is_ok())
        {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 20,
        "every call answered, once retried on the live endpoint"
    );
    assert_eq!(live_calls.load(Ordering::SeqCst), 20);
}
