//! Authz speed, a measurement and not a test. The server (the one-process install) runs on its
//! own runtime in its own thread, shaped by `BENCH_SERVER_WORKERS` (1 = current-thread, the
//! default; N = multi-threaded with N workers); the load client runs on a current-thread runtime.
//!
//! 1. Ceiling: grpc.health.v1 Check on the authz port, 1 and 16 calls in flight, one connection.
//! 2. Warm Check (snapshot and policy set cached), 1 and 16 in flight.
//! 3. Cold Check: after every directory write, a Check demanding that write's revision (revision
//!    confirmed with directory, snapshot read from the database, compiled, decided).
//! 4. In-process decision for an enterprise with 100 roles and 20 custom policies.
//!
//! ```text
//! cargo run --release -p praxis-tests --example authz_bench
//! PRAXIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/praxis_test \
//!   BENCH_SERVER_WORKERS=2 cargo run --release -p praxis-tests --example authz_bench
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use praxis_authz::book::{PolicyBook, compile_custom};
use praxis_authz::engine::{CheckInput, ResourceInput, evaluate};
use praxis_authz::model::Model;
use praxis_authz::principal::CompiledPrincipal;
use praxis_directory::domain::UserKind;
use praxis_proto::authz::v1 as pb;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::directory::v1 as directory;
use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
use praxis_tests::bench::report;
use praxis_tests::{authed, fixture};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const PHASE: Duration = Duration::from_secs(4);
const MAX_CALLS: usize = 400_000;
const COLD: usize = 300;

struct Target {
    authz: std::net::SocketAddr,
    directory: std::net::SocketAddr,
    staff_token: String,
    admin_token: String,
    check: pb::CheckRequest,
    staff_id: String,
    practice_id: String,
}

/// Runs `call` with `in_flight` concurrent callers for PHASE; returns (calls/s, latencies).
async fn load<F, Fut>(in_flight: usize, call: F) -> (f64, Vec<Duration>)
where
    F: Fn() -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let started = Instant::now();
    let local = tokio::task::LocalSet::new();
    let results = local
        .run_until(async move {
            let mut tasks = Vec::new();
            for _ in 0..in_flight {
                let call = call.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    let mut samples = Vec::new();
                    while started.elapsed() < PHASE && samples.len() < MAX_CALLS / in_flight {
                        let at = Instant::now();
                        call().await;
                        samples.push(at.elapsed());
                    }
                    samples
                }));
            }
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            all
        })
        .await;
    let rate = results.len() as f64 / started.elapsed().as_secs_f64();
    (rate, results)
}

async fn channel(address: std::net::SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap()
}

fn serve(workers: usize) -> Target {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = if workers <= 1 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
        }
        .unwrap();
        runtime.block_on(async move {
            let postgres = std::env::var(praxis_store::testing::DATABASE_URL_VAR).is_ok();
            let install = praxis_tests::start(postgres).await;
            println!("backend: {}", install.backend);
            let acme = fixture(&install, "Bench").await;
            let staff = acme.user(UserKind::Staff);
            let target = Target {
                authz: install.addresses.authz,
                directory: install.addresses.directory,
                staff_token: install.token_for(&staff.email).await,
                admin_token: install
                    .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
                    .await,
                check: pb::CheckRequest {
                    principal: Some(pb::Principal {
                        user_id: staff.id.0.clone(),
                    }),
                    permission: "appointments:read".into(),
                    resource: Some(pb::Resource {
                        r#type: "appointment".into(),
                        id: "a-1".into(),
                        enterprise_id: acme.enterprise.id.0.clone(),
                        practice_id: acme.practices[0].id.0.clone(),
                        ..Default::default()
                    }),
                    min_revision: 0,
                    context: None,
                },
                staff_id: staff.id.0.clone(),
                practice_id: acme.practices[0].id.0.clone(),
            };
            sender.send(target).unwrap();
            std::future::pending::<()>().await;
            drop(install);
        });
    });
    receiver.recv().unwrap()
}

async fn over_grpc(target: &Target) {
    let authz = channel(target.authz).await;
    for in_flight in [1, 16] {
        let health = HealthClient::new(authz.clone());
        let (rate, mut samples) = load(in_flight, move || {
            let mut health = health.clone();
            async move {
                health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .unwrap();
            }
        })
        .await;
        report(
            &format!("health ceiling, {in_flight} in flight: {rate:.0} req/s"),
            &mut samples,
        );

        let client = AuthzServiceClient::new(authz.clone());
        let (check, token) = (target.check.clone(), target.staff_token.clone());
        let (rate, mut samples) = load(in_flight, move || {
            let mut client = client.clone();
            let request = authed(check.clone(), &token);
            async move {
                let answer = client.check(request).await.unwrap().into_inner();
                assert_eq!(answer.decision(), pb::Decision::Allow);
            }
        })
        .await;
        report(
            &format!("warm Check, {in_flight} in flight: {rate:.0} req/s"),
            &mut samples,
        );
    }

    // Cold: every Check follows a directory write and demands its revision.
    let mut bindings = RoleBindingServiceClient::new(channel(target.directory).await);
    let mut client = AuthzServiceClient::new(authz.clone());
    let mut samples = Vec::new();
    let mut bound: Option<String> = None;
    for _ in 0..COLD {
        let revision = match bound.take() {
            Some(id) => {
                bindings
                    .delete_role_binding(authed(
                        directory::DeleteRoleBindingRequest { binding_id: id },
                        &target.admin_token,
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .revision
            }
            None => {
                let created = bindings
                    .create_role_binding(authed(
                        directory::CreateRoleBindingRequest {
                            binding: Some(directory::RoleBinding {
                                user_id: target.staff_id.clone(),
                                role_id: "builtin-inventory".into(),
                                practice_id: target.practice_id.clone(),
                                ..Default::default()
                            }),
                        },
                        &target.admin_token,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                bound = created.binding.map(|b| b.id);
                created.revision
            }
        };
        let mut check = target.check.clone();
        check.min_revision = revision;
        let at = Instant::now();
        let answer = client
            .check(authed(check, &target.staff_token))
            .await
            .unwrap()
            .into_inner();
        samples.push(at.elapsed());
        assert!(answer.decided_at_revision >= revision);
    }
    report("cold Check (after a write, at its revision)", &mut samples);
}

fn in_process() {
    let model = Model::load().unwrap();
    let features = praxis_proto::catalogue::FEATURES;
    let permissions: Vec<(String, String)> = features
        .iter()
        .flat_map(|f| {
            f.actions
                .iter()
                .map(move |a| (f.name.to_owned(), (*a).to_owned()))
        })
        .collect();
    let roles: Vec<directory::SnapshotBinding> = (0..100)
        .map(|n| directory::SnapshotBinding {
            binding: Some(directory::RoleBinding {
                id: format!("b-{n}"),
                role_id: format!("r-{n}"),
                practice_id: format!("p-{}", n % 10),
                ..Default::default()
            }),
            roles: vec![directory::Role {
                id: format!("r-{n}"),
                display_name: format!("Role {n}"),
                grants: (0..12)
                    .map(|g| {
                        let (feature, action) = &permissions[(n * 7 + g) % permissions.len()];
                        directory::Grant {
                            permission: Some(directory::Permission {
                                feature: feature.clone(),
                                action: action.clone(),
                            }),
                            scope: directory::GrantScope::All.into(),
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
        })
        .collect();
    let snapshot = directory::PrincipalSnapshot {
        user_id: "u-1".into(),
        enterprise_id: "e-1".into(),
        kind: directory::UserKind::Staff.into(),
        status: directory::UserStatus::Active.into(),
        memberships: vec![directory::PracticeMembership {
            practice_id: "p-1".into(),
            line_ids: vec!["l-1".into()],
            ..Default::default()
        }],
        bindings: roles,
        revision: 1,
        locations: Default::default(),
    };
    let mut custom = Vec::new();
    for n in 0..20 {
        let (feature, action) = &permissions[(n * 5) % permissions.len()];
        let text = format!(
            "forbid (principal, action == Praxis::Action::\"{feature}:{action}\", resource) \
             when {{ context has amount && context.amount >= {} }};",
            1000 + n
        );
        custom.extend(compile_custom(&model, &format!("c-{n}"), &text).unwrap());
    }
    let book = PolicyBook::build(&model, custom).unwrap();
    let principal = CompiledPrincipal::compile(snapshot).unwrap();
    let input = |permission: &str| CheckInput {
        permission: permission.to_owned(),
        resource: ResourceInput {
            kind: "patient".into(),
            id: "x".into(),
            enterprise_id: "e-1".into(),
            practice_id: Some("p-1".into()),
            ..Default::default()
        },
        time: 1_764_000_000,
        ip: None,
        amount: Some(10),
    };
    let inputs: Vec<CheckInput> = permissions
        .iter()
        .map(|(f, a)| input(&format!("{f}:{a}")))
        .collect();
    let mut samples = Vec::with_capacity(200_000);
    let mut allowed = 0;
    for round in 0..200_000 {
        let input = &inputs[round % inputs.len()];
        let at = Instant::now();
        let evaluation = evaluate(&model, &book, &principal, input, false).unwrap();
        samples.push(at.elapsed());
        allowed += usize::from(evaluation.allow);
    }
    println!("in-process: {allowed} of {} allowed", samples.len());
    report(
        "in-process decision (100 roles, 20 custom policies)",
        &mut samples,
    );
}

fn main() {
    in_process();
    let workers: usize = std::env::var("BENCH_SERVER_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    println!(
        "server runtime: {}",
        if workers <= 1 {
            "current-thread".to_owned()
        } else {
            format!("multi-thread, {workers} workers")
        }
    );
    let target = serve(workers);
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client.block_on(over_grpc(&target));
}
