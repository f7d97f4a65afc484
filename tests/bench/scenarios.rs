//! What the load generator asks, and the data it asks about.
//!
//! Before any load, a generated enterprise (`praxis_tests::datagen`) is made through directory
//! with the platform admin's token; its enterprise admin and one staff user get a password the
//! way a real admin would give one (a temporary password, changed at the first login), and every
//! scenario then runs as one of them over real logins.

use crate::load::Call;
use futures::FutureExt;
use praxis_proto::authz::v1 as authz;
use praxis_proto::authz::v1::authz_service_client::AuthzServiceClient;
use praxis_proto::directory::v1 as directory;
use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_proto::identity::v1 as identity;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use praxis_tests::authed;
use praxis_tests::datagen::{Generated, first_login};
use std::sync::Arc;
use std::time::Instant;
use tonic::Status;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Satisfies every password policy the directory allows by default.
const PASSWORD: &str = "Bench plum-orbit candle 2026";

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// grpc.health.v1 Check on the server of the scenarios that follow: the machine's ceiling.
    Ceiling,
    /// authz Check, snapshot and policies cached.
    Check,
    /// authz Check right after a directory write, demanding that write's revision.
    CheckCold,
    /// authz BatchCheck of 10.
    BatchCheck,
    /// identity Introspect of an access token.
    Introspect,
    /// identity password Login (Argon2id).
    Login,
    /// directory ListUsers, a page of 100 in a practice.
    ListUsers,
    /// directory GetPrincipalSnapshot of users across the enterprise.
    Snapshot,
}

impl Scenario {
    pub const MEASURED: [Scenario; 7] = [
        Scenario::Check,
        Scenario::CheckCold,
        Scenario::BatchCheck,
        Scenario::Introspect,
        Scenario::Login,
        Scenario::ListUsers,
        Scenario::Snapshot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "ceiling",
            Scenario::Check => "check",
            Scenario::CheckCold => "check-cold",
            Scenario::BatchCheck => "batch-check",
            Scenario::Introspect => "introspect",
            Scenario::Login => "login",
            Scenario::ListUsers => "list-users",
            Scenario::Snapshot => "snapshot",
        }
    }

    pub fn service(self) -> Service {
        match self {
            Scenario::Ceiling | Scenario::Check | Scenario::CheckCold | Scenario::BatchCheck => {
                Service::Authz
            }
            Scenario::Introspect | Scenario::Login => Service::Identity,
            Scenario::ListUsers | Scenario::Snapshot => Service::Directory,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Directory,
    Identity,
    Authz,
}

/// Connections to the three services, `connections` each.
#[derive(Clone)]
pub struct Servers {
    pub directory: Vec<Channel>,
    pub identity: Vec<Channel>,
    pub authz: Vec<Channel>,
}

impl Servers {
    fn of(&self, service: Service) -> &[Channel] {
        match service {
            Service::Directory => &self.directory,
            Service::Identity => &self.identity,
            Service::Authz => &self.authz,
        }
    }

    fn pick(&self, service: Service, n: u64) -> Channel {
        let channels = self.of(service);
        let index = usize::try_from(n % channels.len().max(1) as u64).unwrap_or(0);
        channels[index].clone()
    }
}

/// The generated enterprise and the two people the scenarios act as.
pub struct Subjects {
    pub data: Generated,
    pub admin_token: String,
    pub staff: StaffUser,
    /// Who the login scenario logs in.
    pub login_email: String,
}

pub struct StaffUser {
    pub id: String,
    pub token: String,
    pub practice_id: String,
    pub line_id: String,
}

pub async fn subjects(
    servers: &Servers,
    platform_token: &str,
    data: Generated,
) -> Result<Subjects, Status> {
    let admin = data
        .of_kind(directory::UserKind::EnterpriseAdmin)
        .next()
        .ok_or_else(|| Status::failed_precondition("the generated enterprise has no admin"))?;
    let admin_token = first_login(
        servers.pick(Service::Identity, 0),
        platform_token,
        admin,
        PASSWORD,
    )
    .await?;
    let mut staff_users = data.of_kind(directory::UserKind::Staff);
    let (Some(staff), Some(login_user)) = (staff_users.next(), staff_users.next()) else {
        return Err(Status::failed_precondition(
            "the generated enterprise has fewer than two staff users",
        ));
    };
    let token = first_login(
        servers.pick(Service::Identity, 0),
        platform_token,
        staff,
        PASSWORD,
    )
    .await?;
    // Logins in a loop end their user's oldest sessions (the enterprise's session limit), so
    // they log in someone other than the user whose token the other scenarios carry.
    first_login(
        servers.pick(Service::Identity, 0),
        platform_token,
        login_user,
        PASSWORD,
    )
    .await?;
    let login_email = login_user.email.clone();
    let line_id = data
        .practices
        .iter()
        .find(|p| p.id == staff.practice_id)
        .and_then(|p| p.line_ids.first().cloned())
        .ok_or_else(|| Status::internal("staff practice missing"))?;
    let staff = StaffUser {
        id: staff.id.clone(),
        token,
        practice_id: staff.practice_id.clone(),
        line_id,
    };
    drop(staff_users);
    Ok(Subjects {
        data,
        admin_token,
        staff,
        login_email,
    })
}

fn check_request(
    subjects: &Subjects,
    permission: &str,
    resource: authz::Resource,
) -> authz::CheckRequest {
    authz::CheckRequest {
        principal: Some(authz::Principal {
            user_id: subjects.staff.id.clone(),
        }),
        permission: permission.to_owned(),
        resource: Some(authz::Resource {
            enterprise_id: subjects.data.enterprise_id.clone(),
            ..resource
        }),
        min_revision: 0,
        context: None,
    }
}

/// The warm Check: staff reading an appointment of their practice (their kind's baseline allows it).
fn warm_check(subjects: &Subjects) -> authz::CheckRequest {
    check_request(
        subjects,
        "appointments:read",
        authz::Resource {
            r#type: "appointment".into(),
            id: "a-1".into(),
            practice_id: subjects.staff.practice_id.clone(),
            ..Default::default()
        },
    )
}

/// Ten questions a patient screen might ask at once, allowed and denied.
fn batch(subjects: &Subjects) -> authz::BatchCheckRequest {
    let practice = subjects.staff.practice_id.clone();
    let other_practice = subjects
        .data
        .practices
        .iter()
        .map(|p| p.id.clone())
        .find(|id| *id != practice)
        .unwrap_or_else(|| practice.clone());
    let questions: [(&str, &str, &str, &str); 10] = [
        ("appointments:read", "appointment", "a-1", &practice),
        ("appointments:edit", "appointment", "a-1", &practice),
        ("appointments:read", "appointment", "a-2", &other_practice),
        ("patients:read", "patient", "p-1", &practice),
        ("patients:edit", "patient", "p-1", &practice),
        ("messages:read", "message", "m-1", &practice),
        ("billing:read", "invoice", "i-1", &practice),
        ("clinical_notes:read", "clinical_note", "n-1", &practice),
        ("campaigns:edit", "campaign", "c-1", &practice),
        ("patients:export", "patient", "p-2", &practice),
    ];
    authz::BatchCheckRequest {
        checks: questions
            .iter()
            .map(|(permission, kind, id, practice)| {
                check_request(
                    subjects,
                    permission,
                    authz::Resource {
                        r#type: (*kind).to_owned(),
                        id: (*id).to_owned(),
                        practice_id: (*practice).to_owned(),
                        line_id: subjects.staff.line_id.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect(),
    }
}

/// The call for one scenario against `service`'s server.
pub fn call(
    scenario: Scenario,
    servers: &Servers,
    subjects: &Arc<Subjects>,
    service: Service,
) -> Call {
    let servers = servers.clone();
    let subjects = subjects.clone();
    match scenario {
        Scenario::Ceiling => Arc::new(move |n| {
            let mut health = HealthClient::new(servers.pick(service, n));
            async move {
                health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                Ok(None)
            }
            .boxed()
        }),
        Scenario::Check => {
            let request = warm_check(&subjects);
            Arc::new(move |n| {
                let mut client = AuthzServiceClient::new(servers.pick(Service::Authz, n));
                let request = authed(request.clone(), &subjects.staff.token);
                async move {
                    let answer = client.check(request).await?.into_inner();
                    expect_allow(&answer)?;
                    Ok(None)
                }
                .boxed()
            })
        }
        Scenario::CheckCold => Arc::new(move |n| {
            let subjects = subjects.clone();
            let mut client = AuthzServiceClient::new(servers.pick(Service::Authz, n));
            let mut bindings = RoleBindingServiceClient::new(servers.pick(Service::Directory, n));
            async move {
                // The write (untimed) moves the revision; the Check must see it.
                let role_id = subjects
                    .data
                    .role_ids
                    .get(usize::try_from(n).unwrap_or(0) % subjects.data.role_ids.len().max(1))
                    .cloned()
                    .unwrap_or_else(|| "builtin-inventory".to_owned());
                let created = bindings
                    .create_role_binding(authed(
                        directory::CreateRoleBindingRequest {
                            binding: Some(directory::RoleBinding {
                                user_id: subjects.staff.id.clone(),
                                role_id,
                                practice_id: subjects.staff.practice_id.clone(),
                                ..Default::default()
                            }),
                        },
                        &subjects.admin_token,
                    ))
                    .await?
                    .into_inner();
                let mut request = warm_check(&subjects);
                request.min_revision = created.revision;
                let at = Instant::now();
                let answer = client
                    .check(authed(request, &subjects.staff.token))
                    .await?
                    .into_inner();
                let latency = at.elapsed();
                expect_allow(&answer)?;
                if answer.decided_at_revision < created.revision {
                    return Err(Status::internal(format!(
                        "decided at revision {} before the write's {}",
                        answer.decided_at_revision, created.revision
                    )));
                }
                if let Some(binding) = created.binding {
                    bindings
                        .delete_role_binding(authed(
                            directory::DeleteRoleBindingRequest {
                                binding_id: binding.id,
                            },
                            &subjects.admin_token,
                        ))
                        .await?;
                }
                Ok(Some(latency))
            }
            .boxed()
        }),
        Scenario::BatchCheck => {
            let request = batch(&subjects);
            Arc::new(move |n| {
                let mut client = AuthzServiceClient::new(servers.pick(Service::Authz, n));
                let request = authed(request.clone(), &subjects.staff.token);
                async move {
                    let answer = client.batch_check(request).await?.into_inner();
                    if answer.results.len() != 10 {
                        return Err(Status::internal(format!(
                            "{} answers to 10 checks",
                            answer.results.len()
                        )));
                    }
                    Ok(None)
                }
                .boxed()
            })
        }
        Scenario::Introspect => Arc::new(move |n| {
            let mut client = AuthServiceClient::new(servers.pick(Service::Identity, n));
            let token = &subjects.staff.token;
            let request = authed(
                identity::IntrospectRequest {
                    access_token: token.clone(),
                },
                token,
            );
            async move {
                let answer = client.introspect(request).await?.into_inner();
                if !answer.active {
                    return Err(Status::internal("the staff token introspected as inactive"));
                }
                Ok(None)
            }
            .boxed()
        }),
        Scenario::Login => Arc::new(move |n| {
            let mut client = AuthServiceClient::new(servers.pick(Service::Identity, n));
            let request = identity::LoginRequest {
                email: subjects.login_email.clone(),
                password: PASSWORD.to_owned(),
                client: None,
            };
            async move {
                let step = client.login(request).await?.into_inner().step;
                match step.and_then(|s| s.outcome) {
                    Some(identity::login_step::Outcome::Tokens(_)) => Ok(None),
                    other => Err(Status::internal(format!("login answered {other:?}"))),
                }
            }
            .boxed()
        }),
        Scenario::ListUsers => Arc::new(move |n| {
            let mut client = UserServiceClient::new(servers.pick(Service::Directory, n));
            let practices = &subjects.data.practices;
            let practice = &practices[usize::try_from(n).unwrap_or(0) % practices.len().max(1)];
            let request = authed(
                directory::ListUsersRequest {
                    enterprise_id: subjects.data.enterprise_id.clone(),
                    practice_id: practice.id.clone(),
                    page_size: 100,
                    ..Default::default()
                },
                &subjects.admin_token,
            );
            async move {
                client.list_users(request).await?;
                Ok(None)
            }
            .boxed()
        }),
        Scenario::Snapshot => Arc::new(move |n| {
            let mut client = UserServiceClient::new(servers.pick(Service::Directory, n));
            let users = &subjects.data.users;
            let user = &users[usize::try_from(n).unwrap_or(0) % users.len().max(1)];
            let request = authed(
                directory::GetPrincipalSnapshotRequest {
                    user_id: user.id.clone(),
                },
                &subjects.admin_token,
            );
            async move {
                client.get_principal_snapshot(request).await?;
                Ok(None)
            }
            .boxed()
        }),
    }
}

fn expect_allow(answer: &authz::CheckResponse) -> Result<(), Status> {
    if answer.decision() == authz::Decision::Allow {
        Ok(())
    } else {
        Err(Status::internal(format!(
            "expected ALLOW, got {:?} ({})",
            answer.decision(),
            answer.reasons.join("; ")
        )))
    }
}

/// How long the generated data took to make, for the report.
pub struct Prepared {
    pub subjects: Arc<Subjects>,
    pub seconds: f64,
}

pub async fn prepare(
    servers: &Servers,
    platform_token: &str,
    shape: &praxis_tests::datagen::Shape,
) -> Result<Prepared, Status> {
    let started = Instant::now();
    let name = format!("Bench {}", chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"));
    let data = praxis_tests::datagen::generate(
        servers.pick(Service::Directory, 0),
        platform_token,
        &name,
        shape,
    )
    .await?;
    let subjects = subjects(servers, platform_token, data).await?;
    Ok(Prepared {
        subjects: Arc::new(subjects),
        seconds: started.elapsed().as_secs_f64(),
    })
}
