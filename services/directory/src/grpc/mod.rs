//! The gRPC surface: decode and validate requests, call the domain, encode answers. Conversions
//! between proto and domain types live in `convert`.

pub mod access;
mod accounts;
pub mod audit;
mod convert;
mod email_domains;
mod enterprises;
mod persons;
mod policy;
mod practices;
mod roles;
mod sync;
mod users;

pub use access::AccessApi;
pub use accounts::{AccountApi, account_proto, provision_proto};
pub use audit::AuditApi;
pub use email_domains::EmailDomainApi;
pub use enterprises::EnterpriseApi;
pub use persons::PersonApi;
pub use practices::PracticeApi;
pub use roles::{RoleApi, RoleBindingApi};
pub use sync::DirectorySyncApi;
pub use users::UserApi;

use crate::domain::{Actor, DomainError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use praxis_runtime::error::{FieldViolations, internal, invalid_argument, with_reason};
use tonic::{Code, Status};

pub const ERROR_DOMAIN: &str = "directory.praxis";

impl From<DomainError> for Status {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::InvalidArgument(problems) => {
                let mut violations = FieldViolations::new();
                for (field, description) in problems {
                    violations.add(&field, description);
                }
                violations
                    .check()
                    .err()
                    .unwrap_or_else(|| Status::invalid_argument("invalid request"))
            }
            DomainError::NotFound(what) => Status::not_found(format!("{what} not found")),
            DomainError::PermissionDenied(why) => Status::permission_denied(why),
            DomainError::AlreadyExists(what) => {
                Status::already_exists(format!("{what} already exists"))
            }
            DomainError::FailedPrecondition { reason, message } => {
                with_reason(Code::FailedPrecondition, reason, ERROR_DOMAIN, message)
            }
            DomainError::Aborted(why) => {
                with_reason(Code::Aborted, "CONCURRENT_CHANGE", ERROR_DOMAIN, why)
            }
            DomainError::Storage(cause) => internal("directory store", &cause),
        }
    }
}

/// The wire form of a principal snapshot; the all-in-one binary hands authz the same shape.
pub fn snapshot_proto(
    snapshot: crate::domain::roles::PrincipalSnapshot,
) -> praxis_proto::directory::v1::PrincipalSnapshot {
    use praxis_proto::directory::v1 as pb;
    let user: pb::User = snapshot.user.into();
    pb::PrincipalSnapshot {
        user_id: user.id,
        enterprise_id: user.enterprise_id,
        kind: user.kind,
        status: user.status,
        memberships: user.memberships,
        bindings: snapshot
            .bindings
            .into_iter()
            .map(|(binding, roles)| pb::SnapshotBinding {
                binding: Some(binding.into()),
                roles: roles.into_iter().map(Into::into).collect(),
            })
            .collect(),
        revision: snapshot.revision,
        locations: snapshot
            .locations
            .into_iter()
            .map(|(location, practice, zone)| {
                (
                    location.0,
                    pb::SnapshotLocation {
                        practice_id: practice.0,
                        time_zone: zone.unwrap_or_default(),
                    },
                )
            })
            .collect(),
    }
}

fn actor<T>(request: &tonic::Request<T>) -> Result<Actor, Status> {
    praxis_runtime::auth::caller(request).map(|caller| Actor::Caller(caller.clone()))
}

fn required<'a>(field: &'static str, value: &'a str) -> Result<&'a str, Status> {
    let value = value.trim();
    if value.is_empty() {
        Err(invalid_argument(field, "required"))
    } else {
        Ok(value)
    }
}

/// Page tokens are opaque to clients: the id to continue after, base64url-encoded.
fn encode_page_token(after: Option<String>) -> String {
    after
        .map(|id| URL_SAFE_NO_PAD.encode(id))
        .unwrap_or_default()
}

fn decode_page_token(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| invalid_argument("page_token", "not a token this service issued"))
}

/// The paths of an update mask, each checked against those the resource allows.
fn mask_paths(
    mask: Option<prost_types::FieldMask>,
    allowed: &[&str],
) -> Result<Vec<String>, Status> {
    let paths = mask.map(|mask| mask.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(invalid_argument(
            "update_mask",
            format!("name the fields to change: {}", allowed.join(", ")),
        ));
    }
    if let Some(unknown) = paths.iter().find(|path| !allowed.contains(&path.as_str())) {
        return Err(invalid_argument(
            "update_mask",
            format!(
                "{unknown} cannot be updated; allowed: {}",
                allowed.join(", ")
            ),
        ));
    }
    Ok(paths)
}
