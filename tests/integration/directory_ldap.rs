//! Directory sync (issue "Directory sync"), second part: importing an enterprise's users from
//! LDAP. Debian's slapd runs on loopback with a seeded tree; each run's report is checked
//! against what changed in the tree, and against the directory, the audit trail and identity.

use praxis_directory::domain::{Actor, UserKind, UserStatus};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::directory_sync_service_client::DirectorySyncServiceClient;
use praxis_tests::ldap::Slapd;
use praxis_tests::{Fixture, Install, authed, fixture, installs};
use tonic::Code;
use tonic::transport::Channel;

const PASSWORD: &str = "a long enough password 42";

fn person(slapd: &Slapd, uid: &str, email: &str, extra: &str) -> String {
    format!(
        "dn: uid={uid},ou=people,{base}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n\
         givenName: {given}\nsn: Imported\nmail: {email}\n{extra}",
        base = slapd.base_dn,
        given = uid.to_uppercase(),
    )
}

/// The tree: ada, bob and eve (the fixture's staff member) in the nurses group; carl in no
/// group; dora in the group but disabled.
async fn seed(slapd: &Slapd, clinic: &Fixture) {
    let domain = &clinic.domain;
    let staff = &clinic.user(UserKind::Staff).email;
    let mut ldif = Vec::new();
    for (uid, email, extra) in [
        ("ada", format!("ada@{domain}"), ""),
        ("bob", format!("bob@{domain}"), ""),
        ("carl", format!("carl@{domain}"), ""),
        ("dora", format!("dora@{domain}"), "employeeType: disabled\n"),
        ("eve", staff.clone(), ""),
    ] {
        ldif.push(person(slapd, uid, &email, extra));
    }
    let base = &slapd.base_dn;
    ldif.push(format!(
        "dn: cn=Nurses,ou=groups,{base}\nobjectClass: groupOfNames\ncn: Nurses\n\
         member: uid=ada,ou=people,{base}\nmember: uid=bob,ou=people,{base}\n\
         member: uid=dora,ou=people,{base}\nmember: uid=eve,ou=people,{base}\n"
    ));
    slapd.add(&ldif.join("\n")).await;
}

fn connection(slapd: &Slapd, clinic: &Fixture) -> pb::LdapSync {
    let north = &clinic.practices[0];
    pb::LdapSync {
        enterprise_id: clinic.enterprise.id.0.clone(),
        url: slapd.url.clone(),
        bind_dn: slapd.admin_dn.clone(),
        bind_password: slapd.admin_password.clone(),
        base_dn: slapd.base_dn.clone(),
        disabled_filter: "(employeeType=disabled)".into(),
        group_rules: vec![pb::LdapGroupRule {
            group: "nurses".into(),
            kind: pb::UserKind::Staff.into(),
            practice_ids: vec![north.id.0.clone()],
            line_ids: vec![north.lines[0].id.0.clone()],
            role_ids: vec!["builtin-billing".into()],
        }],
        ..pb::LdapSync::default()
    }
}

struct Admin {
    sync: DirectorySyncServiceClient<Channel>,
    token: String,
    enterprise_id: String,
}

impl Admin {
    async fn new(install: &Install, clinic: &Fixture) -> Self {
        Self {
            sync: DirectorySyncServiceClient::new(
                install.channel(install.addresses.directory).await,
            ),
            token: install
                .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
                .await,
            enterprise_id: clinic.enterprise.id.0.clone(),
        }
    }

    async fn set(&self, ldap_sync: pb::LdapSync) -> Result<pb::LdapSync, tonic::Status> {
        self.sync
            .clone()
            .set_ldap_sync(authed(
                pb::SetLdapSyncRequest {
                    ldap_sync: Some(ldap_sync),
                },
                &self.token,
            ))
            .await
            .map(|answer| answer.into_inner().ldap_sync.unwrap_or_default())
    }

    async fn get(&self) -> Result<pb::LdapSync, tonic::Status> {
        self.sync
            .clone()
            .get_ldap_sync(authed(
                pb::GetLdapSyncRequest {
                    enterprise_id: self.enterprise_id.clone(),
                },
                &self.token,
            ))
            .await
            .map(|answer| answer.into_inner().ldap_sync.unwrap_or_default())
    }

    async fn run(&self) -> pb::DirectorySyncRun {
        self.sync
            .clone()
            .run_directory_sync(authed(
                pb::RunDirectorySyncRequest {
                    enterprise_id: self.enterprise_id.clone(),
                },
                &self.token,
            ))
            .await
            .expect("run")
            .into_inner()
            .run
            .expect("report")
    }
}

/// (created, updated, disabled, enabled, unchanged, skipped) of a completed run without errors.
fn counts(run: &pb::DirectorySyncRun) -> (u32, u32, u32, u32, u32, u32) {
    assert!(run.completed, "{run:?}");
    assert!(run.errors.is_empty(), "{run:?}");
    (
        run.created,
        run.updated,
        run.disabled,
        run.enabled,
        run.unchanged,
        run.skipped,
    )
}

async fn status(install: &Install, email: &str) -> Option<UserStatus> {
    install
        .directory
        .find_user_by_email(&Actor::Operator, email)
        .await
        .ok()
        .map(|user| user.status)
}

async fn events(
    install: &Install,
    clinic: &Fixture,
) -> Vec<praxis_directory::store::entities::audit_event::Model> {
    install
        .directory
        .list_events(
            &Actor::Operator,
            &praxis_directory::store::audit::EventQuery {
                enterprise_id: clinic.enterprise.id.0.clone(),
                ..Default::default()
            },
            1000,
            "",
        )
        .await
        .expect("events")
        .0
}

async fn revision(install: &Install, clinic: &Fixture) -> i64 {
    install
        .directory
        .get_enterprise(&Actor::Operator, &clinic.enterprise.id)
        .await
        .expect("enterprise")
        .revision
}

#[tokio::test]
async fn ldap_import_creates_updates_and_disables_users_and_a_second_run_changes_nothing() {
    for install in installs().await {
        let Some(slapd) = praxis_tests::ldap::start().await else {
            return;
        };
        let b = install.backend.clone();
        let clinic = fixture(&install, "Imported").await;
        seed(&slapd, &clinic).await;
        let admin = Admin::new(&install, &clinic).await;
        let domain = clinic.domain.clone();
        let staff = clinic.user(UserKind::Staff).clone();

        // The staff member (eve in the corporate directory) is logged in.
        let identity = install.channel(install.addresses.identity).await;
        let session = praxis_tests::datagen::first_login(
            identity.clone(),
            &install.platform_admin_token().await,
            &praxis_tests::datagen::GeneratedUser {
                id: staff.id.0.clone(),
                email: staff.email.clone(),
                kind: pb::UserKind::Staff,
                practice_id: String::new(),
                role_ids: Vec::new(),
            },
            PASSWORD,
        )
        .await
        .expect("login");

        // The bind password is sealed at rest and never returned.
        let stored = admin
            .set(connection(&slapd, &clinic))
            .await
            .expect("an admin connects the directory");
        assert!(
            stored.bind_password.is_empty() && stored.bind_password_set,
            "{b}"
        );
        assert_eq!(stored.user_filter, "(objectClass=inetOrgPerson)", "{b}");
        assert_eq!(
            stored.attributes.as_ref().map(|a| a.id.as_str()),
            Some("entryUUID")
        );
        let row = install
            .directory
            .store()
            .ldap_sync(&clinic.enterprise.id)
            .await
            .expect("row")
            .expect("stored");
        let sealed = row.bind_secret.expect("a sealed secret");
        let plain = slapd.admin_password.as_bytes();
        assert!(!sealed.windows(plain.len()).any(|w| w == plain), "{b}");
        assert!(!row.settings.contains(&slapd.admin_password), "{b}");

        // First run: ada and bob are made, eve (already a user) is brought in line, carl (no
        // rule) and dora (disabled, never imported) are left alone.
        let before = revision(&install, &clinic).await;
        let first = admin.run().await;
        assert_eq!(first.entries, 5, "{b}: {first:?}");
        assert_eq!(counts(&first), (2, 1, 0, 0, 0, 2), "{b}: {first:?}");
        assert!(
            revision(&install, &clinic).await > before,
            "{b}: authz sees it"
        );
        let ada = install
            .directory
            .find_user_by_email(&Actor::Operator, &format!("ada@{domain}"))
            .await
            .expect("ada was made");
        assert_eq!(
            (ada.kind, ada.status),
            (UserKind::Staff, UserStatus::Active)
        );
        assert_eq!(
            (ada.given_name.as_str(), ada.family_name.as_str()),
            ("ADA", "Imported")
        );
        assert_eq!(ada.memberships[0].practice_id, clinic.practices[0].id);
        let (bindings, _) = install
            .directory
            .list_bindings(
                &Actor::Operator,
                &clinic.enterprise.id,
                &praxis_directory::domain::roles::BindingFilter {
                    user_id: Some(ada.id.clone()),
                    ..Default::default()
                },
            )
            .await
            .expect("bindings");
        let connector = format!("ldap:{}", clinic.enterprise.id.0);
        assert_eq!(bindings.len(), 1, "{b}: {bindings:?}");
        assert_eq!(bindings[0].role_id.0, "builtin-billing");
        assert_eq!(bindings[0].source.as_deref(), Some(connector.as_str()));
        assert_eq!(
            status(&install, &format!("carl@{domain}")).await,
            None,
            "{b}"
        );
        assert_eq!(
            status(&install, &format!("dora@{domain}")).await,
            None,
            "{b}"
        );
        let trail = events(&install, &clinic).await;
        let made: Vec<_> = trail
            .iter()
            .filter(|e| e.action == "user.create" && e.actor == connector)
            .collect();
        assert_eq!(made.len(), 2, "{b}: ada and bob, by the connector");

        // Second run: nothing to do, nothing written. (Identity's relay may still be adding
        // the login's own events, so the connector's are the ones counted.)
        let by_connector = |trail: &[praxis_directory::store::entities::audit_event::Model]| {
            trail.iter().filter(|e| e.actor == connector).count()
        };
        let (revision_before, events_before) =
            (revision(&install, &clinic).await, by_connector(&trail));
        let again = admin.run().await;
        assert_eq!(counts(&again), (0, 0, 0, 0, 3, 2), "{b}: {again:?}");
        assert_eq!(revision(&install, &clinic).await, revision_before, "{b}");
        assert_eq!(
            by_connector(&events(&install, &clinic).await),
            events_before,
            "{b}"
        );

        // A changed attribute updates the user.
        slapd
            .modify(&format!(
                "dn: uid=ada,ou=people,{}\nchangetype: modify\nreplace: sn\nsn: Lovelace\n",
                slapd.base_dn
            ))
            .await;
        assert_eq!(counts(&admin.run().await), (0, 1, 0, 0, 2, 2), "{b}");
        let ada = install
            .directory
            .get_user(&Actor::Operator, &ada.id)
            .await
            .expect("ada")
            .0;
        assert_eq!(ada.family_name, "Lovelace", "{b}");

        // Disabled in the directory: disabled here, by the connector.
        slapd
            .modify(&format!(
                "dn: uid=bob,ou=people,{}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n",
                slapd.base_dn
            ))
            .await;
        assert_eq!(counts(&admin.run().await), (0, 0, 1, 0, 2, 2), "{b}");
        let bob = format!("bob@{domain}");
        assert_eq!(
            status(&install, &bob).await,
            Some(UserStatus::Disabled),
            "{b}"
        );

        // Removed from the directory: disabled, which ends the session.
        assert!(
            introspect(&identity, &session).await,
            "{b}: the session is open"
        );
        slapd
            .delete(&format!("uid=eve,ou=people,{}", slapd.base_dn))
            .await;
        let removed = admin.run().await;
        assert_eq!(removed.entries, 4, "{b}");
        assert_eq!(counts(&removed), (0, 0, 1, 0, 2, 2), "{b}: {removed:?}");
        assert_eq!(
            status(&install, &staff.email).await,
            Some(UserStatus::Disabled),
            "{b}"
        );
        let started = std::time::Instant::now();
        while introspect(&identity, &session).await {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{b}: the session of a user removed from LDAP stayed open"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let disables: Vec<_> = events(&install, &clinic)
            .await
            .into_iter()
            .filter(|e| e.action == "user.disable")
            .collect();
        assert_eq!(disables.len(), 2, "{b}: bob and eve");
        assert!(disables.iter().all(|e| e.actor == connector), "{b}");

        // Active again in the directory: enabled again, since the import had disabled them.
        // One an admin disabled stays disabled (D14).
        slapd
            .modify(&format!(
                "dn: uid=bob,ou=people,{}\nchangetype: modify\ndelete: employeeType\n",
                slapd.base_dn
            ))
            .await;
        install
            .directory
            .disable_user(&Actor::Operator, &ada.id, None, chrono::Utc::now())
            .await
            .expect("an admin disables ada");
        assert_eq!(counts(&admin.run().await), (0, 0, 0, 1, 1, 2), "{b}");
        assert_eq!(
            status(&install, &bob).await,
            Some(UserStatus::Active),
            "{b}"
        );
        assert_eq!(
            status(&install, &format!("ada@{domain}")).await,
            Some(UserStatus::Disabled),
            "{b}"
        );
        let settled = admin.run().await;
        assert_eq!(counts(&settled), (0, 0, 0, 0, 2, 2), "{b}: {settled:?}");

        // The report of the last run is kept with the connection.
        let last = admin.get().await.expect("get").last_run.expect("last run");
        assert_eq!(
            (last.trigger.as_str(), last.unchanged),
            ("request", 2),
            "{b}"
        );
    }
}

async fn introspect(identity: &Channel, token: &str) -> bool {
    praxis_proto::identity::v1::auth_service_client::AuthServiceClient::new(identity.clone())
        .introspect(authed(
            praxis_proto::identity::v1::IntrospectRequest {
                access_token: token.to_owned(),
            },
            token,
        ))
        .await
        .map(|answer| answer.into_inner().active)
        .unwrap_or(false)
}

#[tokio::test]
async fn ldap_sync_refuses_bad_settings_outsiders_and_never_disables_on_a_failed_read() {
    for install in installs().await {
        let Some(slapd) = praxis_tests::ldap::start().await else {
            return;
        };
        let b = install.backend.clone();
        let clinic = fixture(&install, "Guarded").await;
        let other = fixture(&install, "Elsewhere").await;
        seed(&slapd, &clinic).await;
        let admin = Admin::new(&install, &clinic).await;
        let good = connection(&slapd, &clinic);

        // Bad settings: every field named, nothing kept.
        let refused = admin
            .set(pb::LdapSync {
                url: "http://127.0.0.1:1".into(),
                base_dn: String::new(),
                user_filter: "objectClass=person".into(),
                interval_minutes: 1,
                group_rules: vec![pb::LdapGroupRule {
                    kind: 0,
                    ..good.group_rules[0].clone()
                }],
                ..good.clone()
            })
            .await
            .expect_err("bad settings");
        assert_eq!(
            praxis_tests::violated_fields(&refused),
            [
                "ldap_sync.url",
                "ldap_sync.base_dn",
                "ldap_sync.user_filter",
                "ldap_sync.interval_minutes"
            ],
            "{b}"
        );
        let rules = admin
            .set(pb::LdapSync {
                group_rules: vec![pb::LdapGroupRule {
                    practice_ids: vec![other.practices[0].id.0.clone()],
                    ..good.group_rules[0].clone()
                }],
                ..good.clone()
            })
            .await
            .expect_err("another enterprise's practice");
        assert_eq!(refused.code(), Code::InvalidArgument, "{b}");
        assert!(
            praxis_tests::violated_fields(&rules)
                .iter()
                .all(|f| f.starts_with("ldap_sync.group_rules[0]")),
            "{b}: {rules:?}"
        );
        assert_eq!(admin.get().await.expect_err("none").code(), Code::NotFound);

        // Only the enterprise's admins manage it.
        for (email, code) in [
            (
                &clinic.user(UserKind::Manager).email,
                Code::PermissionDenied,
            ),
            (&other.user(UserKind::EnterpriseAdmin).email, Code::NotFound),
        ] {
            let outsider = Admin {
                token: install.token_for(email).await,
                ..Admin::new(&install, &clinic).await
            };
            let refused = outsider.set(good.clone()).await.expect_err("outsider");
            assert_eq!(refused.code(), code, "{b}: {refused:?}");
        }

        // An entry with a service account's email is reported and left alone.
        let (robot, _) = install
            .directory
            .create_service_account(
                &Actor::Operator,
                &clinic.enterprise.id,
                "Robot",
                chrono::Utc::now(),
            )
            .await
            .expect("a service account");
        slapd.add(&person(&slapd, "robot", &robot.email, "")).await;
        admin.set(good.clone()).await.expect("set");
        let imported = admin.run().await;
        assert_eq!(imported.created, 2, "{b}: {imported:?}");
        assert_eq!(imported.errors.len(), 1, "{b}: {imported:?}");
        assert!(imported.errors[0].dn.starts_with("uid=robot,"), "{b}");
        let kept = install
            .directory
            .find_user_by_email(&Actor::Operator, &robot.email)
            .await
            .expect("robot");
        assert_eq!((kept.kind, kept.status), (robot.kind, robot.status), "{b}");
        let ada = format!("ada@{}", clinic.domain);

        // A run already under way (here, or on another replica) is not doubled.
        let now = chrono::Utc::now();
        let store = install.directory.store();
        assert!(
            store
                .lease_ldap_sync(
                    &clinic.enterprise.id,
                    now,
                    now + chrono::Duration::minutes(1)
                )
                .await
                .expect("lease")
        );
        let busy = admin
            .sync
            .clone()
            .run_directory_sync(authed(
                pb::RunDirectorySyncRequest {
                    enterprise_id: admin.enterprise_id.clone(),
                },
                &admin.token,
            ))
            .await
            .expect_err("held");
        assert_eq!(busy.code(), Code::FailedPrecondition, "{b}: {busy:?}");
        store
            .finish_ldap_sync(&clinic.enterprise.id, "{}".into(), None)
            .await
            .expect("let go");

        // A wrong password, or a server that is not there: the run says so, and nobody is
        // disabled for being "missing" from a directory that was never read.
        let unreachable = format!(
            "ldap://127.0.0.1:{}",
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("port")
                .port()
        );
        for broken in [
            pb::LdapSync {
                bind_password: "not the password".into(),
                ..good.clone()
            },
            pb::LdapSync {
                url: unreachable,
                ..good.clone()
            },
        ] {
            admin.set(broken).await.expect("set");
            let failed = admin.run().await;
            assert!(!failed.completed, "{b}: {failed:?}");
            assert_eq!((failed.disabled, failed.errors.len()), (0, 1), "{b}");
            assert_eq!(
                status(&install, &ada).await,
                Some(UserStatus::Active),
                "{b}"
            );
        }
        // An empty password on an update keeps the stored one.
        admin
            .set(pb::LdapSync {
                bind_password: "the right one again".into(),
                ..good.clone()
            })
            .await
            .expect("set");
        admin.set(good.clone()).await.expect("set");
        admin
            .set(pb::LdapSync {
                bind_password: String::new(),
                ..good.clone()
            })
            .await
            .expect("set");
        assert!(
            admin.run().await.completed,
            "{b}: the stored password was kept"
        );

        // Delete: the connection goes, the users stay as they are.
        admin
            .sync
            .clone()
            .delete_ldap_sync(authed(
                pb::DeleteLdapSyncRequest {
                    enterprise_id: admin.enterprise_id.clone(),
                },
                &admin.token,
            ))
            .await
            .expect("delete");
        assert_eq!(admin.get().await.expect_err("gone").code(), Code::NotFound);
        assert_eq!(
            status(&install, &ada).await,
            Some(UserStatus::Active),
            "{b}"
        );
        let trail = events(&install, &clinic).await;
        for action in ["ldap_sync.set", "ldap_sync.delete"] {
            assert!(trail.iter().any(|e| e.action == action), "{b}: {action}");
        }
        assert!(
            !format!("{trail:?}").contains(&slapd.admin_password),
            "{b}: the password is in the trail"
        );
    }
}

#[tokio::test]
async fn ldap_sync_runs_on_its_schedule() {
    for install in installs().await {
        let Some(slapd) = praxis_tests::ldap::start().await else {
            return;
        };
        let b = install.backend.clone();
        let clinic = fixture(&install, "Scheduled").await;
        seed(&slapd, &clinic).await;
        let admin = Admin::new(&install, &clinic).await;
        admin
            .set(pb::LdapSync {
                interval_minutes: 60,
                ..connection(&slapd, &clinic)
            })
            .await
            .expect("set");
        // The scheduler (the directory's worker, or this call) runs it once, then not again
        // before its interval.
        praxis_directory::run_due_ldap_syncs(&install.directory).await;
        let started = std::time::Instant::now();
        let last = loop {
            if let Some(run) = admin.get().await.expect("get").last_run {
                break run;
            }
            // The worker took it first and is still at it.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(20),
                "{b}: never ran"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(
            (last.trigger.as_str(), last.created),
            ("schedule", 2),
            "{b}"
        );
        praxis_directory::run_due_ldap_syncs(&install.directory).await;
        let still = admin.get().await.expect("get").last_run.expect("ran");
        assert_eq!(
            still.start_time, last.start_time,
            "{b}: ran again before its time"
        );
        let user = install
            .directory
            .find_user_by_email(&Actor::Operator, &format!("bob@{}", clinic.domain))
            .await
            .expect("bob");
        assert_eq!(user.status, UserStatus::Active);
    }
}
