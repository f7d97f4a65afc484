//! Identity speed, a measurement and not a test:
//!
//! 1. Argon2id (OWASP parameters) hashes per second on one core and on all cores, through the
//!    hasher the server uses (blocking pool, one hash per core at a time).
//! 2. Password logins per second over gRPC, 1 and 4 in flight (Argon2-bound).
//! 3. Access-token verification per second (Ed25519 signature, then remembered).
//! 4. Introspect (token and session validation) over gRPC: p50 and p99.
//!
//! ```text
//! cargo run --release -p praxis-tests --example identity_bench
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use praxis_directory::domain::UserKind;
use praxis_identity::passwords::Hasher;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use praxis_tests::bench::report;
use praxis_tests::{authed, fixture};
use std::time::{Duration, Instant};

const PASSWORD: &str = "plum orbit candle 7";

#[tokio::main]
async fn main() {
    let hasher = Hasher::new().unwrap();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(3) {
        hasher.hash(PASSWORD).await.unwrap();
        n += 1;
    }
    println!(
        "argon2id hashes, one at a time: {:.1}/s",
        f64::from(n) / started.elapsed().as_secs_f64()
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..cores * 2 {
        let hasher = hasher.clone();
        handles.push(tokio::spawn(async move {
            let mut n = 0u32;
            while started.elapsed() < Duration::from_secs(3) {
                hasher.hash(PASSWORD).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    println!(
        "argon2id hashes, {} callers on {cores} cores: {:.1}/s",
        cores * 2,
        f64::from(total) / started.elapsed().as_secs_f64()
    );

    // The per-address throttle would stop a load test from one address after 30 attempts.
    let install = praxis_tests::start_configured(false, |config| {
        config.identity.login.attempts_per_ip_per_minute = i64::MAX / 2;
    })
    .await;
    let acme = fixture(&install, "Bench").await;
    let staff = acme.user(UserKind::Staff).clone();
    install
        .identity
        .seed_password(&staff.id.0, PASSWORD, false)
        .await
        .unwrap();
    let channel = install.channel(install.addresses.identity).await;
    let (login_channel, login_email) = (channel.clone(), staff.email.clone());
    let login = move || {
        let mut client = AuthServiceClient::new(login_channel.clone());
        let email = login_email.clone();
        async move {
            client
                .login(pb::LoginRequest {
                    email,
                    password: PASSWORD.into(),
                    client: None,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    for in_flight in [1usize, 4] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..in_flight {
            let login = login.clone();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::new();
                while started.elapsed() < Duration::from_secs(4) {
                    let at = Instant::now();
                    login().await;
                    samples.push(at.elapsed());
                }
                samples
            }));
        }
        let mut samples = Vec::new();
        for task in tasks {
            samples.extend(task.await.unwrap());
        }
        let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
        report(
            &format!("Login over gRPC, {in_flight} in flight: {rate:.1}/s"),
            &mut samples,
        );
    }

    let step = login().await.step.unwrap();
    let Some(pb::login_step::Outcome::Tokens(tokens)) = step.outcome else {
        panic!("tokens")
    };
    let verifier = praxis_runtime::TokenVerifier::new(&praxis_runtime::config::AuthConfig {
        jwks_file: Some(install.config.jwks_file()),
        ..Default::default()
    })
    .unwrap();
    // Fresh tokens each time measure the signature check; one token repeated, the memory.
    let keys = install
        .key_ring(
            praxis_runtime::config::DEFAULT_ISSUER,
            praxis_runtime::config::DEFAULT_AUDIENCE,
        )
        .await;
    let mut fresh = Vec::new();
    for n in 0..2000 {
        let subject = praxis_identity::TokenSubject {
            user_id: format!("u-{n}"),
            enterprise_id: "e".into(),
            session_id: "s".into(),
            kind: "STAFF".into(),
            amr: vec!["pwd".into()],
            auth_time: chrono::Utc::now(),
        };
        fresh.push(
            keys.issue(&subject, chrono::Utc::now(), chrono::Duration::minutes(5))
                .await
                .unwrap(),
        );
    }
    let started = Instant::now();
    for token in &fresh {
        verifier.verify(token).await.unwrap();
    }
    println!(
        "token verification, new tokens (Ed25519): {:.0}/s",
        fresh.len() as f64 / started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    for _ in 0..100_000 {
        verifier.verify(&tokens.access_token).await.unwrap();
    }
    println!(
        "token verification, a token seen before: {:.0}/s",
        100_000.0 / started.elapsed().as_secs_f64()
    );

    let mut client = AuthServiceClient::new(channel.clone());
    let mut samples = Vec::new();
    for _ in 0..5000 {
        let at = Instant::now();
        let answer = client
            .introspect(authed(
                pb::IntrospectRequest {
                    access_token: tokens.access_token.clone(),
                },
                &tokens.access_token,
            ))
            .await
            .unwrap()
            .into_inner();
        samples.push(at.elapsed());
        assert!(answer.active);
    }
    report(
        "Introspect over gRPC (session validation), 1 in flight",
        &mut samples,
    );
}
