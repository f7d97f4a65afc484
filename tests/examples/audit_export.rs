//! Audit export at scale (AU3): appends events through the audit service, then streams the whole
//! trail out as JSON lines over gRPC and reports throughput and the process's peak RSS during
//! the export (reset before it starts), to show that memory stays bounded by the page size, not
//! the trail's length. A measurement, not a test:
//!
//!     cargo run --release -p praxis-tests --example audit_export            # 1,000,000 events
//!     BENCH_EVENTS=100000 cargo run --release -p praxis-tests --example audit_export
#![allow(clippy::unwrap_used, clippy::expect_used)]

use praxis_directory::domain::{Actor, UserKind};
use praxis_proto::audit::v1 as pb;
use praxis_proto::audit::v1::audit_service_client::AuditServiceClient;
use praxis_tests::{authed, fixture};
use std::time::Instant;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Export").await;
    let enterprise = acme.enterprise.id.0.clone();
    let staff = acme.user(UserKind::Staff).id.0.clone();
    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;

    let seeding = Instant::now();
    let mut appended = 0;
    while appended < total {
        let batch: Vec<pb::Event> = (appended..(appended + 500).min(total))
            .map(|i| pb::Event {
                id: uuid::Uuid::now_v7().to_string(),
                enterprise_id: enterprise.clone(),
                time: Some(prost_types::Timestamp {
                    seconds: chrono::Utc::now().timestamp(),
                    nanos: 0,
                }),
                actor: Some(pb::Actor {
                    user_id: staff.clone(),
                    ..Default::default()
                }),
                action: "patient.read".into(),
                target: Some(pb::Target {
                    r#type: "patient".into(),
                    id: format!("p-{}", i % 10_000),
                }),
                outcome: pb::Outcome::Success.into(),
                ip: "198.51.100.7".into(),
                user_agent: "audit-export-bench".into(),
                details: Some(praxis_proto::json::to_struct(
                    &serde_json::json!({"fields": ["name", "dob"], "n": i}),
                )),
                ..Default::default()
            })
            .collect();
        let n = batch.len();
        praxis_directory::grpc::audit::append_proto(&install.directory, &Actor::Operator, batch)
            .await
            .unwrap();
        appended += n;
    }
    let seeded = seeding.elapsed();
    println!(
        "appended {total} events in {:.1} s ({:.0} events/s, through append_proto: checks, chain, alert rules)",
        seeded.as_secs_f64(),
        total as f64 / seeded.as_secs_f64()
    );

    let before = status_kib("VmRSS:");
    // Resets VmHWM to the current RSS, so the peak below is the export's own.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let started = Instant::now();
    let mut stream = AuditServiceClient::new(install.channel(install.addresses.directory).await)
        .max_decoding_message_size(16 * 1024 * 1024)
        .export_events(authed(
            pb::ExportEventsRequest {
                filter: Some(pb::EventFilter {
                    action: "patient.read".into(),
                    ..Default::default()
                }),
                format: pb::ExportFormat::JsonLines.into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    let (mut bytes, mut lines) = (0usize, 0usize);
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes += chunk.chunk.len();
        lines += chunk.chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = started.elapsed();
    assert_eq!(lines, total, "every event exported once");
    println!(
        "exported {lines} events ({:.0} MiB of JSON lines) in {:.1} s: {:.0} events/s, {:.1} MiB/s",
        bytes as f64 / 1048576.0,
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64(),
        bytes as f64 / 1048576.0 / took.as_secs_f64()
    );
    println!(
        "RSS before the export {} MiB; peak during it {} MiB (server and client in this process)",
        before / 1024,
        status_kib("VmHWM:") / 1024
    );
}
