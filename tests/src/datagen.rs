//! Realistic enterprises for the load generator and the tests, made through directory's gRPC API
//! the way an administrator's tooling would: practices with two phone lines and a location,
//! custom roles drawn from the permission catalogue (some inheriting, some denying), and users of
//! every kind with memberships and role bindings. Everything is derived from the shape and a seed,
//! so two runs with the same arguments describe the same enterprise.

use crate::authed;
use futures::{StreamExt, TryStreamExt, stream};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::email_domain_service_client::EmailDomainServiceClient;
use praxis_proto::directory::v1::enterprise_service_client::EnterpriseServiceClient;
use praxis_proto::directory::v1::practice_service_client::PracticeServiceClient;
use praxis_proto::directory::v1::role_binding_service_client::RoleBindingServiceClient;
use praxis_proto::directory::v1::role_service_client::RoleServiceClient;
use praxis_proto::directory::v1::user_service_client::UserServiceClient;
use praxis_proto::identity::v1 as identity;
use praxis_proto::identity::v1::auth_service_client::AuthServiceClient;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tonic::Status;
use tonic::transport::Channel;

/// How big the generated enterprise is.
#[derive(Clone, Debug)]
pub struct Shape {
    pub practices: usize,
    pub roles: usize,
    pub users: usize,
    /// Directory writes in flight while users and bindings are made.
    pub parallel: usize,
    pub seed: u64,
}

impl Shape {
    /// The enterprise the issue describes: 50 practices, 100 roles, 100,000 users.
    pub fn realistic() -> Self {
        Self {
            practices: 50,
            roles: 100,
            users: 100_000,
            parallel: 8,
            seed: 7,
        }
    }
}

pub struct GeneratedPractice {
    pub id: String,
    pub line_ids: Vec<String>,
    pub location_id: String,
}

pub struct GeneratedUser {
    pub id: String,
    pub email: String,
    pub kind: pb::UserKind,
    /// The practice of the user's membership (empty for enterprise-wide kinds).
    pub practice_id: String,
    /// The custom roles bound to the user, in their practice.
    pub role_ids: Vec<String>,
}

pub struct Generated {
    pub enterprise_id: String,
    pub domain: String,
    pub practices: Vec<GeneratedPractice>,
    pub role_ids: Vec<String>,
    /// The first user is the enterprise admin.
    pub users: Vec<GeneratedUser>,
    /// The enterprise revision after the last write.
    pub revision: i64,
}

impl Generated {
    pub fn of_kind(&self, kind: pb::UserKind) -> impl Iterator<Item = &GeneratedUser> {
        self.users.iter().filter(move |user| user.kind == kind)
    }
}

/// Kind of the n-th user: one enterprise admin, then 1 % content managers, 5 % managers,
/// 10 % advanced staff and the rest staff, interleaved so every practice gets some of each.
fn kind_of(n: usize) -> pb::UserKind {
    match n {
        0 => pb::UserKind::EnterpriseAdmin,
        n if n % 100 == 1 => pb::UserKind::EnterpriseContentManager,
        n if n % 20 == 2 => pb::UserKind::Manager,
        n if n % 10 == 3 => pb::UserKind::AdvancedStaff,
        _ => pb::UserKind::Staff,
    }
}

/// Makes the enterprise `name` of `shape` with a platform admin's token.
pub async fn generate(
    directory: Channel,
    platform_token: &str,
    name: &str,
    shape: &Shape,
) -> Result<Generated, Status> {
    let mut rng = StdRng::seed_from_u64(shape.seed);
    let token = platform_token;
    let enterprise = EnterpriseServiceClient::new(directory.clone())
        .create_enterprise(authed(
            pb::CreateEnterpriseRequest {
                display_name: name.to_owned(),
                request_id: String::new(),
            },
            token,
        ))
        .await?
        .into_inner()
        .enterprise
        .ok_or_else(|| Status::internal("no enterprise in the answer"))?;
    let enterprise_id = enterprise.id;
    let domain = format!("{}.bench.test", uuid::Uuid::now_v7().simple());
    EmailDomainServiceClient::new(directory.clone())
        .add_email_domain(authed(
            pb::AddEmailDomainRequest {
                enterprise_id: enterprise_id.clone(),
                domain: domain.clone(),
            },
            token,
        ))
        .await?;

    let mut practices = Vec::with_capacity(shape.practices);
    let mut practice_client = PracticeServiceClient::new(directory.clone());
    for p in 0..shape.practices {
        let practice = practice_client
            .create_practice(authed(
                pb::CreatePracticeRequest {
                    enterprise_id: enterprise_id.clone(),
                    display_name: format!("Practice {p:03}"),
                    request_id: String::new(),
                },
                token,
            ))
            .await?
            .into_inner()
            .practice
            .ok_or_else(|| Status::internal("no practice in the answer"))?;
        let mut line_ids = Vec::new();
        for l in 0..2 {
            let line = practice_client
                .create_line(authed(
                    pb::CreateLineRequest {
                        practice_id: practice.id.clone(),
                        line: Some(pb::Line {
                            display_name: format!("Line {l}"),
                            phone_number: format!("+1555{:03}{:04}", p % 1000, l),
                            ..Default::default()
                        }),
                    },
                    token,
                ))
                .await?
                .into_inner()
                .line
                .ok_or_else(|| Status::internal("no line in the answer"))?;
            line_ids.push(line.id);
        }
        let location = practice_client
            .create_resource(authed(
                pb::CreateResourceRequest {
                    practice_id: practice.id.clone(),
                    resource: Some(pb::Resource {
                        kind: pb::ResourceKind::Location.into(),
                        display_name: format!("Location {p:03}"),
                        time_zone: ["America/New_York", "America/Chicago", "America/Denver"][p % 3]
                            .to_owned(),
                        ..Default::default()
                    }),
                },
                token,
            ))
            .await?
            .into_inner()
            .resource
            .ok_or_else(|| Status::internal("no resource in the answer"))?;
        practices.push(GeneratedPractice {
            id: practice.id,
            line_ids,
            location_id: location.id,
        });
    }

    let permissions: Vec<pb::Permission> = praxis_proto::catalogue::FEATURES
        .iter()
        .flat_map(|feature| {
            feature.actions.iter().map(|action| pb::Permission {
                feature: feature.name.to_owned(),
                action: (*action).to_owned(),
            })
        })
        .collect();
    let mut role_ids: Vec<String> = Vec::with_capacity(shape.roles);
    let mut roles = RoleServiceClient::new(directory.clone());
    for r in 0..shape.roles {
        let count = rng.gen_range(4..=12);
        let grants = permissions
            .choose_multiple(&mut rng, count)
            .map(|permission| pb::Grant {
                permission: Some(permission.clone()),
                scope: if rng.gen_bool(0.7) {
                    pb::GrantScope::All
                } else {
                    pb::GrantScope::Own
                }
                .into(),
            })
            .collect::<Vec<_>>();
        // Every tenth role narrows a parent: inherits its grants and denies one of them.
        let (parent_role_id, denials) = match role_ids.get(r.saturating_sub(1)) {
            Some(parent) if r % 10 == 9 => (
                parent.clone(),
                grants
                    .first()
                    .and_then(|grant| grant.permission.clone())
                    .into_iter()
                    .collect(),
            ),
            _ => (String::new(), Vec::new()),
        };
        let role = roles
            .create_role(authed(
                pb::CreateRoleRequest {
                    enterprise_id: enterprise_id.clone(),
                    role: Some(pb::Role {
                        display_name: format!("Role {r:03}"),
                        parent_role_id,
                        grants,
                        denials,
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
                token,
            ))
            .await?
            .into_inner()
            .role
            .ok_or_else(|| Status::internal("no role in the answer"))?;
        role_ids.push(role.id);
    }

    // Users and their bindings: the bulk of the work, so several writes in flight.
    let plans: Vec<(usize, Vec<String>)> = (0..shape.users)
        .map(|n| {
            let bound = if role_ids.is_empty() || n == 0 {
                Vec::new()
            } else {
                let count = if rng.gen_bool(0.1) { 2 } else { 1 };
                role_ids.choose_multiple(&mut rng, count).cloned().collect()
            };
            (n, bound)
        })
        .collect();
    let users: Vec<GeneratedUser> = stream::iter(plans)
        .map(|(n, bound)| {
            let directory = directory.clone();
            let practice = &practices[n % practices.len().max(1)];
            let enterprise_id = enterprise_id.clone();
            let domain = domain.clone();
            async move {
                make_user(
                    directory,
                    token,
                    &enterprise_id,
                    &domain,
                    practice,
                    n,
                    bound,
                )
                .await
            }
        })
        .buffered(shape.parallel.max(1))
        .try_collect()
        .await?;

    let revision = EnterpriseServiceClient::new(directory)
        .get_enterprise(authed(
            pb::GetEnterpriseRequest {
                enterprise_id: enterprise_id.clone(),
            },
            token,
        ))
        .await?
        .into_inner()
        .enterprise
        .map_or(0, |e| e.revision);
    Ok(Generated {
        enterprise_id,
        domain,
        practices,
        role_ids,
        users,
        revision,
    })
}

async fn make_user(
    directory: Channel,
    token: &str,
    enterprise_id: &str,
    domain: &str,
    practice: &GeneratedPractice,
    n: usize,
    role_ids: Vec<String>,
) -> Result<GeneratedUser, Status> {
    let kind = kind_of(n);
    let membership = match kind {
        pb::UserKind::Staff => Some(pb::PracticeMembership {
            practice_id: practice.id.clone(),
            line_ids: vec![practice.line_ids[n % practice.line_ids.len()].clone()],
            ..Default::default()
        }),
        pb::UserKind::AdvancedStaff | pb::UserKind::Manager => Some(pb::PracticeMembership {
            practice_id: practice.id.clone(),
            ..Default::default()
        }),
        _ => None,
    };
    let membership_practice = membership.as_ref().map(|m| m.practice_id.clone());
    let email = format!("user{n:06}@{domain}");
    let user = UserServiceClient::new(directory.clone())
        .create_user(authed(
            pb::CreateUserRequest {
                enterprise_id: enterprise_id.to_owned(),
                email: email.clone(),
                given_name: format!("Given{n}"),
                family_name: format!("Family{n}"),
                kind: kind.into(),
                memberships: membership.into_iter().collect(),
                ..Default::default()
            },
            token,
        ))
        .await?
        .into_inner()
        .user
        .ok_or_else(|| Status::internal("no user in the answer"))?;
    // Custom roles go to practice members, in their practice.
    let (practice_id, role_ids) = match membership_practice {
        Some(practice_id) => (practice_id, role_ids),
        None => (String::new(), Vec::new()),
    };
    let mut bindings = RoleBindingServiceClient::new(directory);
    for role_id in &role_ids {
        bindings
            .create_role_binding(authed(
                pb::CreateRoleBindingRequest {
                    binding: Some(pb::RoleBinding {
                        user_id: user.id.clone(),
                        role_id: role_id.clone(),
                        practice_id: practice_id.clone(),
                        ..Default::default()
                    }),
                },
                token,
            ))
            .await?;
    }
    Ok(GeneratedUser {
        id: user.id,
        email,
        kind,
        practice_id,
        role_ids,
    })
}

/// Gives a generated (invited) user a password the way an admin would — a temporary one, which
/// they change at their first login, which makes them active — and returns their access token.
pub async fn first_login(
    identity_channel: Channel,
    admin_token: &str,
    user: &GeneratedUser,
    password: &str,
) -> Result<String, Status> {
    let mut auth = AuthServiceClient::new(identity_channel);
    auth.set_temporary_password(authed(
        identity::SetTemporaryPasswordRequest {
            user_id: user.id.clone(),
            temporary_password: format!("{password} temporary"),
        },
        admin_token,
    ))
    .await?;
    let step = auth
        .login(identity::LoginRequest {
            email: user.email.clone(),
            password: format!("{password} temporary"),
            client: None,
        })
        .await?
        .into_inner()
        .step;
    let challenge = match step.and_then(|s| s.outcome) {
        Some(identity::login_step::Outcome::Challenge(challenge))
            if challenge.kind() == identity::ChallengeKind::PasswordChange =>
        {
            challenge
        }
        other => {
            return Err(Status::failed_precondition(format!(
                "expected a PASSWORD_CHANGE challenge for {}, got {other:?}",
                user.email
            )));
        }
    };
    let step = auth
        .complete_challenge(identity::CompleteChallengeRequest {
            challenge_id: challenge.challenge_id,
            new_password: password.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .step;
    match step.and_then(|s| s.outcome) {
        Some(identity::login_step::Outcome::Tokens(tokens)) => Ok(tokens.access_token),
        other => Err(Status::failed_precondition(format!(
            "expected tokens after the password change, got {other:?} (does the enterprise require 2FA?)"
        ))),
    }
}
