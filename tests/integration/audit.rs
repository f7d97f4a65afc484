//! The audit trail (AU1–AU4) through `praxis.audit.v1.AuditService`, on SQLite and PostgreSQL:
//! appends are idempotent, the database refuses changes, VerifyChain finds the exact event
//! that was altered, removed or moved, identity's events arrive once, alerts fire at their
//! threshold and not below it, exports stream.

use praxis_directory::domain::*;
use praxis_proto::audit::v1 as pb;
use praxis_proto::audit::v1::audit_service_client::AuditServiceClient;
use praxis_store::sea_orm::ConnectionTrait;
use praxis_tests::{Install, authed, fixture, violated_fields};
use tonic::Code;

async fn audit(install: &Install) -> AuditServiceClient<tonic::transport::Channel> {
    AuditServiceClient::new(install.channel(install.addresses.directory).await)
}

fn now() -> prost_types::Timestamp {
    let now = chrono::Utc::now();
    prost_types::Timestamp {
        seconds: now.timestamp(),
        nanos: i32::try_from(now.timestamp_subsec_nanos()).unwrap(),
    }
}

/// A data-access event by `user_id`: "opened patient P".
fn read_patient(enterprise_id: &str, user_id: &str, patient: &str) -> pb::Event {
    pb::Event {
        id: uuid::Uuid::now_v7().to_string(),
        enterprise_id: enterprise_id.to_owned(),
        time: Some(now()),
        actor: Some(pb::Actor {
            user_id: user_id.to_owned(),
            ..Default::default()
        }),
        action: "patient.read".into(),
        target: Some(pb::Target {
            r#type: "patient".into(),
            id: patient.to_owned(),
        }),
        outcome: pb::Outcome::Success.into(),
        ip: "198.51.100.7".into(),
        user_agent: "patients-service/1.0".into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        details: Some(praxis_proto::json::to_struct(
            &serde_json::json!({"fields": ["name", "dob"]}),
        )),
        ..Default::default()
    }
}

fn login(enterprise_id: &str, user_id: &str, ip: &str, outcome: pb::Outcome) -> pb::Event {
    pb::Event {
        action: "login".into(),
        target: Some(pb::Target {
            r#type: "user".into(),
            id: user_id.to_owned(),
        }),
        outcome: outcome.into(),
        ip: ip.to_owned(),
        trace_id: String::new(),
        ..read_patient(enterprise_id, user_id, "x")
    }
}

async fn list(install: &Install, token: &str, filter: pb::EventFilter) -> Vec<pb::Event> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit(install)
            .await
            .list_events(authed(
                pb::ListEventsRequest {
                    filter: Some(filter.clone()),
                    page_size: 2,
                    page_token: page_token.clone(),
                },
                token,
            ))
            .await
            .expect("list")
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

async fn verify(install: &Install, token: &str) -> pb::VerifyChainResponse {
    audit(install)
        .await
        .verify_chain(authed(pb::VerifyChainRequest::default(), token))
        .await
        .expect("verify")
        .into_inner()
}

/// Changes the enterprise's audit policy (retention, alert rules) as the operator.
async fn set_audit_policy(
    install: &Install,
    enterprise: &EnterpriseId,
    change: impl FnOnce(&mut praxis_directory::domain::policy::AuditPolicy),
) {
    let mut policy = install
        .directory
        .get_enterprise(&Actor::Operator, enterprise)
        .await
        .unwrap()
        .policy;
    change(&mut policy.audit);
    install
        .directory
        .update_enterprise(
            &Actor::Operator,
            enterprise,
            None,
            praxis_directory::domain::service::EnterpriseChange {
                display_name: None,
                min_access: None,
                policy: Some(policy),
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn au1_au2_appends_are_idempotent_queryable_and_tamper_evident() {
    for install in praxis_tests::installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff = acme.user(UserKind::Staff);
        let staff_token = install.token_for(&staff.email).await;
        let enterprise = acme.enterprise.id.0.clone();

        let events: Vec<pb::Event> = ["p-1", "p-2", "p-3"]
            .iter()
            .map(|p| read_patient(&enterprise, &staff.id.0, p))
            .collect();
        let appended = audit(&install)
            .await
            .append_events(authed(
                pb::AppendEventsRequest {
                    events: events.clone(),
                },
                &staff_token,
            ))
            .await
            .expect("append")
            .into_inner()
            .appended;
        assert_eq!(appended, 3, "{b}");
        let again = audit(&install)
            .await
            .append_events(authed(
                pb::AppendEventsRequest {
                    events: events.clone(),
                },
                &staff_token,
            ))
            .await
            .expect("append again")
            .into_inner()
            .appended;
        assert_eq!(again, 0, "{b}: the same ids are stored once");

        // Someone else's name, another enterprise, or a malformed event: refused, nothing stored.
        let mut forged = read_patient(&enterprise, &acme.user(UserKind::Manager).id.0, "p-9");
        let status = audit(&install)
            .await
            .append_events(authed(
                pb::AppendEventsRequest {
                    events: vec![forged.clone()],
                },
                &staff_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");
        forged.actor = Some(pb::Actor {
            user_id: staff.id.0.clone(),
            ..Default::default()
        });
        // Nor may a caller append what Praxis records itself, even as themselves.
        let status = audit(&install)
            .await
            .append_events(authed(
                pb::AppendEventsRequest {
                    events: vec![login(
                        &enterprise,
                        &staff.id.0,
                        "192.0.2.1",
                        pb::Outcome::Success,
                    )],
                },
                &staff_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}: a forged login");
        forged.ip = "not an address".into();
        forged.outcome = 0;
        let status = audit(&install)
            .await
            .append_events(authed(
                pb::AppendEventsRequest {
                    events: vec![forged],
                },
                &staff_token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{b}");
        assert_eq!(
            violated_fields(&status),
            ["events[0].outcome", "events[0].ip"],
            "{b}"
        );

        // Queries: by target, by action prefix, paginated without gaps or repeats.
        let reads = list(
            &install,
            &admin,
            pb::EventFilter {
                target_type: "patient".into(),
                target_id: "p-2".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(reads.len(), 1, "{b}");
        assert_eq!(reads[0].id, events[1].id, "{b}");
        assert_eq!(reads[0].trace_id, events[1].trace_id, "{b}");
        assert_eq!(reads[0].user_agent, "patients-service/1.0", "{b}");
        let by_staff = list(
            &install,
            &admin,
            pb::EventFilter {
                actor: Some(pb::Actor {
                    user_id: staff.id.0.clone(),
                    ..Default::default()
                }),
                action: "patient.*".into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(by_staff.len(), 3, "{b}");
        let everything = list(&install, &admin, pb::EventFilter::default()).await;
        let mut ids: Vec<&str> = everything.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), everything.len(), "{b}: no repeats across pages");
        assert!(
            everything.windows(2).all(|w| w[0].sequence > w[1].sequence),
            "{b}: newest first"
        );
        assert!(
            everything.iter().any(|e| e.action == "enterprise.create"),
            "{b}: directory's own writes are in the same chain"
        );

        // Only the enterprise's admins read it.
        let status = audit(&install)
            .await
            .list_events(authed(pb::ListEventsRequest::default(), &staff_token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");
        let other = fixture(&install, "Globex").await;
        let other_admin = install
            .token_for(&other.user(UserKind::EnterpriseAdmin).email)
            .await;
        let status = audit(&install)
            .await
            .list_events(authed(
                pb::ListEventsRequest {
                    filter: Some(pb::EventFilter {
                        enterprise_id: enterprise.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                &other_admin,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{b}");

        let verified = verify(&install, &admin).await;
        assert!(verified.intact, "{b}: {verified:?}");
        assert_eq!(
            verified.events_checked,
            i64::try_from(everything.len()).unwrap(),
            "{b}"
        );

        // The database refuses changes and removals.
        let db = install.directory.store().connection();
        let target = everything[everything.len() / 2].clone();
        let update = format!(
            "UPDATE audit_events SET target = 'patient:someone-else' WHERE id = '{}'",
            target.id
        );
        let delete = format!("DELETE FROM audit_events WHERE id = '{}'", target.id);
        assert!(
            db.execute_unprepared(&update).await.is_err(),
            "{b}: UPDATE refused"
        );
        assert!(
            db.execute_unprepared(&delete).await.is_err(),
            "{b}: DELETE refused"
        );

        // Past the guard: altering, moving or removing an event is found at that event.
        praxis_tests::drop_audit_guard(db).await;
        db.execute_unprepared(&update).await.unwrap();
        let broken = verify(&install, &admin).await;
        assert!(!broken.intact, "{b}");
        assert_eq!(
            broken.first_broken.as_ref().unwrap().event_id,
            target.id,
            "{b}: altered"
        );
        db.execute_unprepared(&format!(
            "UPDATE audit_events SET target = '{}:{}' WHERE id = '{}'",
            target.target.as_ref().unwrap().r#type,
            target.target.as_ref().unwrap().id,
            target.id
        ))
        .await
        .unwrap();
        assert!(verify(&install, &admin).await.intact, "{b}: restored");

        let (first, second) = (&everything[3], &everything[2]);
        let swap =
            |seq: i64, id: &str| format!("UPDATE audit_events SET seq = {seq} WHERE id = '{id}'");
        db.execute_unprepared(&swap(-1, &first.id)).await.unwrap();
        db.execute_unprepared(&swap(first.sequence, &second.id))
            .await
            .unwrap();
        db.execute_unprepared(&swap(second.sequence, &first.id))
            .await
            .unwrap();
        let moved = verify(&install, &admin).await;
        assert_eq!(
            moved.first_broken.as_ref().unwrap().sequence,
            first.sequence,
            "{b}: reordered at the earlier position: {moved:?}"
        );
        db.execute_unprepared(&swap(-1, &first.id)).await.unwrap();
        db.execute_unprepared(&swap(second.sequence, &second.id))
            .await
            .unwrap();
        db.execute_unprepared(&swap(first.sequence, &first.id))
            .await
            .unwrap();
        assert!(verify(&install, &admin).await.intact, "{b}: put back");

        db.execute_unprepared(&delete).await.unwrap();
        let gone = verify(&install, &admin).await;
        assert_eq!(
            gone.first_broken.as_ref().unwrap().sequence,
            target.sequence + 1,
            "{b}: a removed event breaks the link after it: {gone:?}"
        );
    }
}

/// AU2: identity's login events reach the trail, each once, even when the relay dies between
/// delivering and marking (simulated by forgetting the marks).
#[tokio::test]
async fn au2_identity_events_arrive_exactly_once() {
    for install in praxis_tests::installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        let staff = acme.user(UserKind::Staff);
        install
            .identity
            .seed_password(&staff.id.0, "plum orbit candle 7", false)
            .await
            .unwrap();
        let mut auth = praxis_proto::identity::v1::auth_service_client::AuthServiceClient::new(
            install.channel(install.addresses.identity).await,
        );
        for password in ["wrong one", "plum orbit candle 7"] {
            let _ = auth
                .login(praxis_proto::identity::v1::LoginRequest {
                    email: staff.email.clone(),
                    password: password.into(),
                    client: None,
                })
                .await;
        }
        let logins = || {
            list(
                &install,
                &admin,
                pb::EventFilter {
                    action: "login".into(),
                    ..Default::default()
                },
            )
        };
        let started = std::time::Instant::now();
        let mut delivered = logins().await;
        while delivered.len() < 2 && started.elapsed() < std::time::Duration::from_secs(10) {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            delivered = logins().await;
        }
        let outcomes: Vec<i32> = delivered.iter().rev().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [
                i32::from(pb::Outcome::Failure),
                i32::from(pb::Outcome::Success)
            ],
            "{b}"
        );
        assert_eq!(delivered[1].target.as_ref().unwrap().id, staff.id.0, "{b}");
        assert_eq!(
            delivered[1].actor.as_ref().unwrap().user_id,
            staff.id.0,
            "{b}"
        );

        // The relay "died" after delivering: every mark is lost, everything is sent again.
        let identity_db = praxis_store::connect(&install.config.identity().service.database_url)
            .await
            .unwrap();
        identity_db
            .execute_unprepared("UPDATE audit_outbox SET delivered_at = NULL")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            use praxis_store::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
            let pending = praxis_identity::store::audit_outbox::Entity::find()
                .filter(praxis_identity::store::audit_outbox::Column::DeliveredAt.is_null())
                .count(&identity_db)
                .await
                .unwrap();
            if pending == 0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{b}: redelivered"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(logins().await.len(), 2, "{b}: stored once");
        assert!(verify(&install, &admin).await.intact, "{b}");
    }
}

/// AU4: each rule fires on its scenario, once, and stays quiet just under its threshold; the
/// alert is streamed and recorded.
#[tokio::test]
async fn au4_alerts_fire_at_their_threshold_and_not_below() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let enterprise = acme.enterprise.id.0.clone();
    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;
    set_audit_policy(&install, &acme.enterprise.id, |audit| {
        audit.alerts.failed_logins_per_user = 3;
        audit.alerts.failed_logins_per_ip = 4;
        audit.alerts.patient_records_per_user = 2;
    })
    .await;
    let mut watch = audit(&install)
        .await
        .watch_alerts(authed(pb::WatchAlertsRequest::default(), &admin))
        .await
        .expect("watch")
        .into_inner();
    let staff = acme.user(UserKind::Staff).id.0.clone();
    let manager = acme.user(UserKind::Manager).id.0.clone();
    let append = |events: Vec<pb::Event>| {
        let directory = install.directory.clone();
        async move {
            praxis_directory::grpc::audit::append_proto(&directory, &Actor::Operator, events)
                .await
                .expect("append")
        }
    };
    let alerts = || async {
        list(
            &install,
            &admin,
            pb::EventFilter {
                action: "alert.raised".into(),
                ..Default::default()
            },
        )
        .await
        .into_iter()
        .map(|e| {
            praxis_proto::json::from_struct(e.details.as_ref().unwrap())["rule"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect::<Vec<_>>()
    };

    // Failed logins of one user: two stay quiet, the third alerts; from several addresses so
    // the address rule (4) stays quiet too.
    for ip in ["192.0.2.1", "192.0.2.2"] {
        append(vec![login(&enterprise, &staff, ip, pb::Outcome::Failure)]).await;
    }
    assert!(alerts().await.is_empty(), "just under the threshold");
    append(vec![login(
        &enterprise,
        &staff,
        "192.0.2.3",
        pb::Outcome::Failure,
    )])
    .await;
    assert_eq!(alerts().await, ["failed_logins_user"]);
    let streamed = tokio::time::timeout(std::time::Duration::from_secs(5), watch.message())
        .await
        .expect("streamed in time")
        .unwrap()
        .unwrap()
        .alert
        .unwrap();
    assert_eq!(streamed.rule, "failed_logins_user");
    assert_eq!(streamed.subject, format!("user:{staff}"));

    // One address, several users: the fourth failure from it alerts.
    for user in [&manager, &manager, &manager] {
        append(vec![login(
            &enterprise,
            user,
            "203.0.113.50",
            pb::Outcome::Failure,
        )])
        .await;
    }
    assert_eq!(
        alerts().await.len(),
        2,
        "the manager's third failure alerted for the user"
    );
    append(vec![login(
        &enterprise,
        &staff,
        "203.0.113.50",
        pb::Outcome::Failure,
    )])
    .await;
    let raised = alerts().await;
    assert!(
        raised.contains(&"failed_logins_ip".to_owned()),
        "{raised:?}"
    );

    // Patient records: two distinct are fine (re-reading one does not count), a third alerts.
    let before = alerts().await.len();
    for patient in ["p-1", "p-2", "p-1"] {
        append(vec![read_patient(&enterprise, &manager, patient)]).await;
    }
    assert_eq!(
        alerts().await.len(),
        before,
        "two distinct records is the limit"
    );
    append(vec![read_patient(&enterprise, &manager, "p-3")]).await;
    assert_eq!(alerts().await[0], "bulk_patient_access");

    // New networks: the first login sets the baseline, the same /24 is known, another is news.
    let before = alerts().await.len();
    for ip in ["198.51.100.10", "198.51.100.99"] {
        append(vec![login(&enterprise, &staff, ip, pb::Outcome::Success)]).await;
    }
    assert_eq!(alerts().await.len(), before);
    append(vec![login(
        &enterprise,
        &staff,
        "203.0.113.9",
        pb::Outcome::Success,
    )])
    .await;
    assert_eq!(alerts().await[0], "new_network");

    // Any break-glass use.
    let mut glass = read_patient(&enterprise, &manager, "p-7");
    glass.action = "break_glass.invoke".into();
    append(vec![glass]).await;
    assert_eq!(alerts().await[0], "break_glass");
    assert!(verify(&install, &admin).await.intact);
}

/// AU3: exports stream the filtered trail as JSON lines or CSV, oldest first.
#[tokio::test]
async fn au3_exports_stream_json_lines_and_csv() {
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let enterprise = acme.enterprise.id.0.clone();
    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;
    let staff = acme.user(UserKind::Staff).id.0.clone();
    let events: Vec<pb::Event> = (0..250)
        .map(|i| read_patient(&enterprise, &staff, &format!("p-{i}")))
        .collect();
    praxis_directory::grpc::audit::append_proto(&install.directory, &Actor::Operator, events)
        .await
        .unwrap();
    let export = |format: pb::ExportFormat| {
        let install = &install;
        let admin = admin.clone();
        async move {
            let mut stream = audit(install)
                .await
                .export_events(authed(
                    pb::ExportEventsRequest {
                        filter: Some(pb::EventFilter {
                            action: "patient.read".into(),
                            ..Default::default()
                        }),
                        format: format.into(),
                    },
                    &admin,
                ))
                .await
                .expect("export")
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.message().await.unwrap() {
                bytes.extend(chunk.chunk);
            }
            String::from_utf8(bytes).unwrap()
        }
    };
    let lines = export(pb::ExportFormat::JsonLines).await;
    let rows: Vec<serde_json::Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rows.len(), 250);
    assert_eq!(rows[0]["target"], "patient:p-0");
    assert_eq!(rows[249]["target"], "patient:p-249");
    assert!(
        rows.windows(2)
            .all(|w| w[0]["sequence"].as_i64() < w[1]["sequence"].as_i64())
    );
    let csv = export(pb::ExportFormat::Csv).await;
    let mut csv_lines = csv.lines();
    assert!(
        csv_lines
            .next()
            .unwrap()
            .starts_with("id,enterprise_id,sequence,time,actor")
    );
    assert_eq!(csv_lines.count(), 250);
    assert!(
        csv.contains("\"{\"\"fields\"\":[\"\"name\"\",\"\"dob\"\"]}\""),
        "details quoted"
    );
}

/// AU3: retention archives old events, removes them behind a signed checkpoint, and
/// VerifyChain still proves what remains; a forged checkpoint is found.
#[tokio::test]
async fn au3_retention_archives_then_removes_behind_a_signed_checkpoint() {
    for install in praxis_tests::installs().await {
        let b = &install.backend;
        let acme = fixture(&install, "Acme").await;
        let enterprise = acme.enterprise.id.0.clone();
        let admin = install
            .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
            .await;
        set_audit_policy(&install, &acme.enterprise.id, |audit| {
            audit.retention_days = 30
        })
        .await;
        let staff = acme.user(UserKind::Staff).id.0.clone();
        let reads = (0..5)
            .map(|i| read_patient(&enterprise, &staff, &format!("p-{i}")))
            .collect();
        praxis_directory::grpc::audit::append_proto(&install.directory, &Actor::Operator, reads)
            .await
            .unwrap();
        let before = list(&install, &admin, pb::EventFilter::default()).await;

        // Nothing is old yet.
        assert!(
            install
                .directory
                .apply_audit_retention(chrono::Utc::now())
                .await
                .unwrap()
                .is_empty(),
            "{b}"
        );
        // Forty days on, all of it is.
        let later = chrono::Utc::now() + chrono::Duration::days(40);
        let runs = install
            .directory
            .apply_audit_retention(later)
            .await
            .unwrap();
        let run = runs
            .iter()
            .find(|run| run.enterprise_id == acme.enterprise.id)
            .expect("acme retained");
        assert_eq!(run.archived, before.len() as u64, "{b}");
        let archived: Vec<serde_json::Value> = std::fs::read_to_string(&run.archive)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(archived.len(), before.len(), "{b}");
        assert!(
            archived
                .windows(2)
                .all(|w| w[1]["previous_hash"] == w[0]["hash"]),
            "{b}: the archive is the chain itself"
        );
        assert!(
            list(&install, &admin, pb::EventFilter::default())
                .await
                .is_empty(),
            "{b}: removed"
        );
        let verified = verify(&install, &admin).await;
        assert!(verified.intact, "{b}: {verified:?}");
        let checkpoint = verified.checkpoint.expect("checkpoint");
        assert_eq!(checkpoint.sequence, run.checkpoint_seq, "{b}");
        assert_eq!(
            Some(checkpoint.hash.as_str()),
            archived.last().unwrap()["hash"].as_str(),
            "{b}"
        );

        // The chain goes on from the checkpoint.
        praxis_directory::grpc::audit::append_proto(
            &install.directory,
            &Actor::Operator,
            vec![read_patient(&enterprise, &staff, "p-9")],
        )
        .await
        .unwrap();
        let verified = verify(&install, &admin).await;
        assert!(
            verified.intact && verified.events_checked == 1,
            "{b}: {verified:?}"
        );
        let remaining = list(&install, &admin, pb::EventFilter::default()).await;
        assert_eq!(remaining[0].sequence, checkpoint.sequence + 1, "{b}");

        // Outside a retention run the database still refuses deletions.
        let db = install.directory.store().connection();
        assert!(
            db.execute_unprepared(&format!(
                "DELETE FROM audit_events WHERE enterprise_id = '{enterprise}'"
            ))
            .await
            .is_err(),
            "{b}"
        );
        // A checkpoint moved by hand no longer carries a valid signature.
        db.execute_unprepared(&format!(
            "UPDATE audit_checkpoints SET seq = seq - 1 WHERE enterprise_id = '{enterprise}'"
        ))
        .await
        .unwrap();
        let forged = verify(&install, &admin).await;
        assert!(!forged.intact, "{b}");
        assert!(
            forged.first_broken.unwrap().problem.contains("signature"),
            "{b}"
        );
    }
}

/// AU2: authz records denied Checks and custom-policy changes in its outbox, and they reach
/// the trail; allowed Checks are not recorded.
#[tokio::test]
async fn au2_denied_checks_and_policy_changes_reach_the_trail() {
    use praxis_proto::authz::v1 as authz;
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;
    let staff = acme.user(UserKind::Staff);
    let staff_token = install.token_for(&staff.email).await;
    let mut checks = authz::authz_service_client::AuthzServiceClient::new(
        install.channel(install.addresses.authz).await,
    );
    let ask = |permission: &str, kind: &str| authz::CheckRequest {
        principal: Some(authz::Principal {
            user_id: staff.id.0.clone(),
        }),
        permission: permission.to_owned(),
        resource: Some(authz::Resource {
            r#type: kind.to_owned(),
            id: format!("{kind}-1"),
            enterprise_id: acme.enterprise.id.0.clone(),
            practice_id: acme.practices[0].id.0.clone(),
            ..Default::default()
        }),
        min_revision: 0,
        context: None,
    };
    let denied = checks
        .check(authed(ask("settings:edit", "setting"), &staff_token))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(denied.decision, i32::from(authz::Decision::Deny));
    let allowed = checks
        .check(authed(
            ask("appointments:read", "appointment"),
            &staff_token,
        ))
        .await
        .expect("check")
        .into_inner();
    assert_eq!(allowed.decision, i32::from(authz::Decision::Allow));
    authz::policy_service_client::PolicyServiceClient::new(
        install.channel(install.addresses.authz).await,
    )
    .put_policy(authed(
        authz::PutPolicyRequest {
            policy: Some(authz::Policy {
                id: "no-exports".into(),
                enterprise_id: acme.enterprise.id.0.clone(),
                description: "Nobody exports.".into(),
                text:
                    "forbid (principal, action == Praxis::Action::\"patients:export\", resource);"
                        .into(),
                ..Default::default()
            }),
        },
        &admin,
    ))
    .await
    .expect("policy");

    let started = std::time::Instant::now();
    let (denials, changes) = loop {
        let denials = list(
            &install,
            &admin,
            pb::EventFilter {
                action: "authz.check".into(),
                ..Default::default()
            },
        )
        .await;
        let changes = list(
            &install,
            &admin,
            pb::EventFilter {
                action: "policy.*".into(),
                ..Default::default()
            },
        )
        .await;
        if (!denials.is_empty() && !changes.is_empty())
            || started.elapsed() > std::time::Duration::from_secs(10)
        {
            break (denials, changes);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(denials.len(), 1, "only the denial: {denials:?}");
    assert_eq!(denials[0].outcome, i32::from(pb::Outcome::Denied));
    assert_eq!(denials[0].target.as_ref().unwrap().id, "setting-1");
    let details = praxis_proto::json::from_struct(denials[0].details.as_ref().unwrap());
    assert_eq!(details["permission"], "settings:edit");
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, "policy.put");
    assert_eq!(
        changes[0].actor.as_ref().unwrap().user_id,
        acme.user(UserKind::EnterpriseAdmin).id.0
    );

    // A BatchCheck records each of its denials (in one write), and not its allowed checks.
    let batch = checks
        .batch_check(authed(
            authz::BatchCheckRequest {
                checks: vec![
                    ask("billing:approve", "invoice"),
                    ask("appointments:read", "appointment"),
                    ask("users:delete", "user"),
                ],
            },
            &staff_token,
        ))
        .await
        .expect("batch")
        .into_inner();
    let decisions: Vec<i32> = batch.results.iter().map(|r| r.decision).collect();
    let (allow, deny) = (
        i32::from(authz::Decision::Allow),
        i32::from(authz::Decision::Deny),
    );
    assert_eq!(decisions, vec![deny, allow, deny]);
    let started = std::time::Instant::now();
    let denials = loop {
        let denials = list(
            &install,
            &admin,
            pb::EventFilter {
                action: "authz.check".into(),
                ..Default::default()
            },
        )
        .await;
        if denials.len() >= 3 || started.elapsed() > std::time::Duration::from_secs(10) {
            break denials;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let mut targets: Vec<&str> = denials
        .iter()
        .map(|e| e.target.as_ref().unwrap().id.as_str())
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, vec!["invoice-1", "setting-1", "user-1"]);
}

/// AU2: a standalone identity's relay, over gRPC with identity's own service token. While
/// directory cannot be reached the events wait in the outbox; once it answers they arrive, and
/// delivering them again stores nothing twice.
#[tokio::test]
async fn au2_a_standalone_identity_delivers_once_directory_answers() {
    use praxis_identity::store::audit_outbox;
    use praxis_store::sea_orm::{
        ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter,
    };
    let install = praxis_tests::start(false).await;
    let acme = fixture(&install, "Acme").await;
    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;
    let staff = acme.user(UserKind::Staff).id.0.clone();
    // The standalone identity's own database, with three events its relay has not delivered.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/identity.db?mode=rwc", dir.path().display());
    praxis_identity::migrate(&url).await.unwrap();
    let db = praxis_store::connect(&url).await.unwrap();
    for _ in 0..3 {
        audit_outbox::Entity::insert(audit_outbox::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            at: Set(chrono::Utc::now()),
            enterprise_id: Set(acme.enterprise.id.0.clone()),
            actor: Set(staff.clone()),
            action: Set("login".into()),
            target: Set(staff.clone()),
            outcome: Set("failure".into()),
            ip: Set("192.0.2.44".into()),
            details: Set(r#"{"reason":"wrong password"}"#.into()),
            delivered_at: Set(None),
            user_agent: Set("tests".into()),
            trace_id: Set(String::new()),
            refused: Set(String::new()),
        })
        .exec(&db)
        .await
        .unwrap();
    }
    // And one the trail will never take (an action it refuses): it must not hold back the rest.
    let poison = uuid::Uuid::now_v7().to_string();
    audit_outbox::Entity::insert(audit_outbox::ActiveModel {
        id: Set(poison.clone()),
        at: Set(chrono::Utc::now()),
        enterprise_id: Set(acme.enterprise.id.0.clone()),
        actor: Set(staff.clone()),
        action: Set("Not An Action!".into()),
        target: Set(staff.clone()),
        outcome: Set("failure".into()),
        ip: Set(String::new()),
        details: Set("{}".into()),
        delivered_at: Set(None),
        user_agent: Set(String::new()),
        trace_id: Set(String::new()),
        refused: Set(String::new()),
    })
    .exec(&db)
    .await
    .unwrap();
    let pending = || {
        audit_outbox::Entity::find()
            .filter(audit_outbox::Column::DeliveredAt.is_null())
            .filter(audit_outbox::Column::Refused.eq(""))
            .count(&db)
    };
    // Signed with this install's identity keys, as the standalone identity's would be.
    let keys = install.key_ring("praxis-identity", "praxis").await;
    let away = praxis_identity::accounts::GrpcAccounts::new(
        "http://127.0.0.1:9",
        keys.clone(),
        &Default::default(),
    )
    .unwrap();
    assert!(
        praxis_identity::audit_relay::relay_once(&db, &away)
            .await
            .is_err()
    );
    assert_eq!(
        pending().await.unwrap(),
        4,
        "they wait while directory is away"
    );

    let directory = praxis_identity::accounts::GrpcAccounts::new(
        &format!("http://{}", install.addresses.directory),
        keys,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        praxis_identity::audit_relay::relay_once(&db, &directory)
            .await
            .unwrap(),
        3
    );
    assert_eq!(pending().await.unwrap(), 0);
    let set_aside = audit_outbox::Entity::find_by_id(&poison)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert!(set_aside.delivered_at.is_none(), "kept, not dropped");
    assert!(
        set_aside.refused.contains("InvalidArgument"),
        "{}",
        set_aside.refused
    );
    let failures = || {
        list(
            &install,
            &admin,
            pb::EventFilter {
                action: "login".into(),
                target_type: "user".into(),
                target_id: staff.clone(),
                ..Default::default()
            },
        )
    };
    assert_eq!(failures().await.len(), 3);
    // Marks lost (the relay died after delivering): sent again, stored once.
    db.execute_unprepared("UPDATE audit_outbox SET delivered_at = NULL WHERE refused = ''")
        .await
        .unwrap();
    praxis_identity::audit_relay::relay_once(&db, &directory)
        .await
        .unwrap();
    assert_eq!(failures().await.len(), 3);
    assert!(verify(&install, &admin).await.intact);
}

/// AU2: a standalone authz delivers its outbox with its service credential; a wrong credential
/// is refused and the events wait.
#[tokio::test]
async fn au2_a_standalone_authz_delivers_with_its_service_credential() {
    use praxis_runtime::config::ServiceSecret;
    let secret = "authz-credential-for-tests-0123456789abcdef".to_owned();
    let install = praxis_tests::start_configured(false, |config| {
        config
            .service_credentials
            .insert("authz".into(), ServiceSecret(secret.clone()));
    })
    .await;
    let acme = fixture(&install, "Acme").await;
    let admin = install
        .token_for(&acme.user(UserKind::EnterpriseAdmin).email)
        .await;
    let staff = acme.user(UserKind::Staff).id.0.clone();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/authz.db?mode=rwc", dir.path().display());
    praxis_authz::migrate(&url).await.unwrap();
    let db = praxis_store::connect(&url).await.unwrap();
    praxis_authz::audit::write(
        &db,
        praxis_authz::audit::Record {
            enterprise_id: acme.enterprise.id.0.clone(),
            actor: staff.clone(),
            action: "authz.check",
            target: "setting:setting-1".into(),
            outcome: "DENIED",
            ip: None,
            details: serde_json::json!({"permission": "settings:edit"}),
        },
    )
    .await
    .unwrap();
    let directory = format!("http://{}", install.addresses.directory);
    let forged = praxis_authz::audit::GrpcAuditSink::new(
        &directory,
        &ServiceSecret("not-the-credential-but-long-enough-0123456789".into()),
        &Default::default(),
    )
    .unwrap();
    let refused = praxis_authz::audit::relay_once(&db, &forged)
        .await
        .unwrap_err();
    assert!(refused.contains("Unauthenticated"), "{refused}");
    let sink = praxis_authz::audit::GrpcAuditSink::new(
        &directory,
        &ServiceSecret(secret),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(
        praxis_authz::audit::relay_once(&db, &sink).await.unwrap(),
        1
    );
    let denials = list(
        &install,
        &admin,
        pb::EventFilter {
            action: "authz.check".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].actor.as_ref().unwrap().user_id, staff);
    assert_eq!(denials[0].outcome, i32::from(pb::Outcome::Denied));
    // The credential is authz's audit relay and nothing more: it reads no trail.
    let status = audit(&install)
        .await
        .list_events(authed(
            pb::ListEventsRequest {
                filter: Some(pb::EventFilter {
                    enterprise_id: acme.enterprise.id.0.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "authz-credential-for-tests-0123456789abcdef",
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}
