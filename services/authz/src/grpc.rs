//! `praxis.authz.v1.AuthzService`.

use crate::domain::{Outcome, Permission, ResourceRef, decide};
use crate::principals::{LookupError, PrincipalSource};
use praxis_proto::authz::v1::authz_service_server::AuthzService;
use praxis_proto::authz::v1::{CheckRequest, CheckResponse, Decision};
use praxis_runtime::error::{FieldViolations, with_reason};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

pub const ERROR_DOMAIN: &str = "authz.praxis";

pub struct AuthzApi {
    pub principals: Arc<dyn PrincipalSource>,
}

fn non_empty(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[tonic::async_trait]
impl AuthzService for AuthzApi {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = request.into_inner();

        let mut violations = FieldViolations::new();
        let principal_id = body.principal.as_ref().and_then(|p| non_empty(&p.user_id));
        if principal_id.is_none() {
            violations.add("principal.user_id", "required");
        }
        let permission = Permission::parse(body.permission.trim());
        if permission.is_none() {
            violations.add(
                "permission",
                "`feature:action` in lowercase, e.g. appointments:read",
            );
        }
        let resource = body.resource.unwrap_or_default();
        if resource.enterprise_id.trim().is_empty() {
            violations.add("resource.enterprise_id", "required");
        }
        if body.min_revision < 0 {
            violations.add("min_revision", "must not be negative");
        }
        violations.check()?;
        let (Some(principal_id), Some(permission)) = (principal_id, permission) else {
            return Err(Status::invalid_argument("invalid check"));
        };
        if principal_id != caller.user_id {
            return Err(Status::permission_denied(
                "a user may only check their own access",
            ));
        }

        let principal = self
            .principals
            .principal(&caller, authorization.as_deref(), &principal_id)
            .await
            .map_err(|error| match error {
                LookupError::NotFound => Status::not_found("principal not found"),
                LookupError::Unavailable(cause) => {
                    tracing::warn!(%cause, "principal lookup failed");
                    Status::unavailable("directory unavailable; no decision")
                }
            })?;
        if principal.revision < body.min_revision {
            return Err(with_reason(
                Code::FailedPrecondition,
                "REVISION_NOT_REACHED",
                ERROR_DOMAIN,
                format!(
                    "data is at revision {}, below min_revision {}",
                    principal.revision, body.min_revision
                ),
            ));
        }
        let resource = ResourceRef {
            kind: resource.r#type,
            id: resource.id,
            enterprise_id: resource.enterprise_id.trim().to_owned(),
            practice_id: non_empty(&resource.practice_id),
            line_id: non_empty(&resource.line_id),
        };
        let (decision, reason) = match decide(&principal, &permission, &resource) {
            Outcome::Allow(reason) => (Decision::Allow, reason),
            Outcome::Deny(reason) => (Decision::Deny, reason),
        };
        tracing::debug!(decision = decision.as_str_name(), %reason, "check");
        Ok(Response::new(CheckResponse {
            decision: decision.into(),
            reasons: vec![reason],
            decided_at_revision: principal.revision,
        }))
    }
}
