//! Directory at scale, on PostgreSQL: ListUsers pages of 100 over a practice of 100,000 users,
//! and GetPrincipalSnapshot, each through the whole gRPC stack (authentication included).
//! A measurement, not a test:
//!
//!     PRAXIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/praxis_test \
//!       cargo run --release -p praxis-tests --example directory_scale
#![allow(clippy::unwrap_used, clippy::expect_used)]

use praxis_directory::domain::UserKind;
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_store::sea_orm::ConnectionTrait;
use praxis_tests::bench::report;
use praxis_tests::{authed, fixture};
use std::time::Instant;

const USERS: u32 = 100_000;
const PAGES: usize = 300;
const SNAPSHOTS: usize = 1_000;

#[tokio::main]
async fn main() {
    assert!(
        std::env::var(praxis_store::testing::DATABASE_URL_VAR).is_ok(),
        "set PRAXIS_TEST_DATABASE_URL"
    );
    let install = praxis_tests::start(true).await;
    let acme = fixture(&install, "Scale").await;
    let practice = &acme.practices[0];
    let line = &practice.lines[0];
    let db = install.directory.store().connection();
    let seeded = Instant::now();
    let id = "'bench-' || lpad(g::text, 7, '0')";
    db.execute_unprepared(&format!(
        "INSERT INTO users (id, enterprise_id, email, given_name, family_name, kind, status, version, created_at) \
         SELECT {id}, '{}', 'user' || g || '@{}', 'Given' || g, 'Family' || g, 'STAFF', 'ACTIVE', 1, now() \
         FROM generate_series(1, {USERS}) g",
        acme.enterprise.id, acme.domain
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!("INSERT INTO memberships (user_id, practice_id) SELECT {id}, '{}' FROM generate_series(1, {USERS}) g", practice.id)).await.unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO membership_lines (user_id, practice_id, line_id) SELECT {id}, '{}', '{}' FROM generate_series(1, {USERS}) g",
        practice.id, line.id
    ))
    .await
    .unwrap();
    db.execute_unprepared("ANALYZE").await.unwrap();
    println!(
        "seeded {USERS} STAFF users into one practice in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;
    let mut users = UserServiceClient::new(install.channel(install.addresses.directory).await);

    let mut pages = Vec::with_capacity(PAGES);
    let mut token = String::new();
    let mut seen = 0;
    for _ in 0..PAGES {
        let request = pb::ListUsersRequest {
            enterprise_id: acme.enterprise.id.0.clone(),
            practice_id: practice.id.0.clone(),
            page_size: 100,
            page_token: token.clone(),
            ..Default::default()
        };
        let started = Instant::now();
        let page = users
            .list_users(authed(request, &admin))
            .await
            .unwrap()
            .into_inner();
        pages.push(started.elapsed());
        seen += page.users.len();
        token = page.next_page_token;
    }
    println!("ListUsers walked {seen} users");
    report("ListUsers (practice filter, page_size 100)", &mut pages);

    // The same pages read in process, without gRPC, to tell the store's share from the stack's.
    let operator = praxis_directory::domain::Actor::Operator;
    let filter = praxis_directory::domain::UserFilter {
        practice_id: Some(practice.id.clone()),
        ..Default::default()
    };
    let mut direct = Vec::with_capacity(PAGES);
    let mut after = None;
    for _ in 0..PAGES {
        let request = praxis_directory::Directory::page(100, after.clone()).unwrap();
        let started = Instant::now();
        let (page, _) = install
            .directory
            .list_users(&operator, &acme.enterprise.id, &filter, &request)
            .await
            .unwrap();
        direct.push(started.elapsed());
        after = page.next_after;
    }
    report("list_users in process (same pages)", &mut direct);

    let mut snapshots = Vec::with_capacity(SNAPSHOTS);
    for index in 0..SNAPSHOTS {
        let user_id = format!("bench-{:07}", (index as u32 * 97) % USERS + 1);
        let started = Instant::now();
        users
            .get_principal_snapshot(authed(pb::GetPrincipalSnapshotRequest { user_id }, &admin))
            .await
            .unwrap();
        snapshots.push(started.elapsed());
    }
    report("GetPrincipalSnapshot", &mut snapshots);
}
