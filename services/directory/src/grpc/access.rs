//! `praxis.directory.v1.AccessService`: explicit grants, elevation, break-glass (A4, A5).

use super::convert::timestamp;
use super::roles::time_from;
use super::{actor, required};
use crate::domain::access::{self, ElevationState};
use crate::domain::roles::{BindingScope, RoleBinding, RoleId};
use crate::domain::{Directory, EnterpriseId, PracticeId, UserId};
use crate::store::entities::{break_glass_use, elevation_request};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::access_service_server::AccessService;
use praxis_runtime::error::invalid_argument;
use tonic::{Request, Response, Status};

pub struct AccessApi {
    pub directory: Directory,
}

fn grant_proto(binding: RoleBinding) -> pb::ResourceGrant {
    let (resource_type, resource_id) = match binding.scope {
        BindingScope::Resource { kind, id } => (kind, id),
        _ => Default::default(),
    };
    pb::ResourceGrant {
        id: binding.id,
        enterprise_id: binding.enterprise_id.0,
        user_id: binding.user_id.0,
        permission: binding
            .role_id
            .0
            .strip_prefix(crate::domain::catalogue::PERMISSION_ROLE_PREFIX)
            .unwrap_or_default()
            .to_owned(),
        resource_type,
        resource_id,
        expire_time: binding.valid_until.map(timestamp),
        create_time: Some(timestamp(binding.created_at)),
    }
}

fn state_proto(state: ElevationState) -> pb::ElevationState {
    match state {
        ElevationState::Pending => pb::ElevationState::Pending,
        ElevationState::Active => pb::ElevationState::Active,
        ElevationState::Expired => pb::ElevationState::Expired,
        ElevationState::Rejected => pb::ElevationState::Rejected,
    }
}

fn elevation_proto(request: elevation_request::Model) -> pb::Elevation {
    let state = access::elevation_state(&request, chrono::Utc::now());
    pb::Elevation {
        state: state_proto(state).into(),
        id: request.id,
        enterprise_id: request.enterprise_id,
        user_id: request.user_id,
        role_id: request.role_id,
        practice_id: request.practice_id.unwrap_or_default(),
        duration_minutes: request.duration_minutes,
        justification: request.justification,
        request_time: Some(timestamp(request.requested_at)),
        decided_by: request.decided_by.unwrap_or_default(),
        decide_time: request.decided_at.map(timestamp),
        decision_note: request.decision_note.unwrap_or_default(),
        expire_time: request.expires_at.map(timestamp),
    }
}

fn use_proto(used: break_glass_use::Model) -> pb::BreakGlassUse {
    pb::BreakGlassUse {
        id: used.id,
        enterprise_id: used.enterprise_id,
        user_id: used.user_id,
        role_id: used.role_id,
        justification: used.justification,
        start_time: Some(timestamp(used.started_at)),
        expire_time: Some(timestamp(used.expires_at)),
        reviewed_by: used.reviewed_by.unwrap_or_default(),
        review_time: used.reviewed_at.map(timestamp),
        review_note: used.review_note.unwrap_or_default(),
    }
}

fn optional(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

#[tonic::async_trait]
impl AccessService for AccessApi {
    async fn grant_resource_access(
        &self,
        request: Request<pb::GrantResourceAccessRequest>,
    ) -> Result<Response<pb::GrantResourceAccessResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let user_id = UserId(required("user_id", &body.user_id)?.to_owned());
        let until = time_from("expire_time", body.expire_time)?;
        let (binding, revision) = self
            .directory
            .grant_resource_access(
                &actor,
                &user_id,
                &body.permission,
                (&body.resource_type, &body.resource_id),
                until,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::GrantResourceAccessResponse {
            grant: Some(grant_proto(binding)),
            revision,
        }))
    }

    async fn revoke_resource_access(
        &self,
        request: Request<pb::RevokeResourceAccessRequest>,
    ) -> Result<Response<pb::RevokeResourceAccessResponse>, Status> {
        let actor = actor(&request)?;
        let id = required("grant_id", &request.get_ref().grant_id)?.to_owned();
        let revision = self
            .directory
            .revoke_resource_access(&actor, &id, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::RevokeResourceAccessResponse { revision }))
    }

    async fn list_resource_grants(
        &self,
        request: Request<pb::ListResourceGrantsRequest>,
    ) -> Result<Response<pb::ListResourceGrantsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let (grants, revision) = self
            .directory
            .list_resource_grants(
                &actor,
                &enterprise_id,
                optional(&body.user_id).map(|u| UserId(u.to_owned())),
                (optional(&body.resource_type), optional(&body.resource_id)),
            )
            .await?;
        Ok(Response::new(pb::ListResourceGrantsResponse {
            grants: grants.into_iter().map(grant_proto).collect(),
            revision,
        }))
    }

    async fn request_elevation(
        &self,
        request: Request<pb::RequestElevationRequest>,
    ) -> Result<Response<pb::RequestElevationResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let role_id = RoleId(required("role_id", &body.role_id)?.to_owned());
        let elevation = self
            .directory
            .request_elevation(
                &actor,
                &role_id,
                optional(&body.practice_id).map(|p| PracticeId(p.to_owned())),
                body.duration_minutes,
                &body.justification,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::RequestElevationResponse {
            elevation: Some(elevation_proto(elevation)),
        }))
    }

    async fn approve_elevation(
        &self,
        request: Request<pb::ApproveElevationRequest>,
    ) -> Result<Response<pb::ApproveElevationResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = required("elevation_id", &body.elevation_id)?.to_owned();
        let (elevation, revision) = self
            .directory
            .decide_elevation(&actor, &id, true, &body.note, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::ApproveElevationResponse {
            elevation: Some(elevation_proto(elevation)),
            revision,
        }))
    }

    async fn reject_elevation(
        &self,
        request: Request<pb::RejectElevationRequest>,
    ) -> Result<Response<pb::RejectElevationResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = required("elevation_id", &body.elevation_id)?.to_owned();
        let (elevation, _) = self
            .directory
            .decide_elevation(&actor, &id, false, &body.note, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::RejectElevationResponse {
            elevation: Some(elevation_proto(elevation)),
        }))
    }

    async fn list_elevations(
        &self,
        request: Request<pb::ListElevationsRequest>,
    ) -> Result<Response<pb::ListElevationsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let state = match pb::ElevationState::try_from(body.state) {
            Ok(pb::ElevationState::Unspecified) => None,
            Ok(pb::ElevationState::Pending) => Some(ElevationState::Pending),
            Ok(pb::ElevationState::Active) => Some(ElevationState::Active),
            Ok(pb::ElevationState::Expired) => Some(ElevationState::Expired),
            Ok(pb::ElevationState::Rejected) => Some(ElevationState::Rejected),
            Err(_) => return Err(invalid_argument("state", "not an elevation state")),
        };
        let list = self
            .directory
            .list_elevations(&actor, &enterprise_id, state, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::ListElevationsResponse {
            elevations: list.into_iter().map(elevation_proto).collect(),
        }))
    }

    async fn invoke_break_glass(
        &self,
        request: Request<pb::InvokeBreakGlassRequest>,
    ) -> Result<Response<pb::InvokeBreakGlassResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let (used, revision) = self
            .directory
            .invoke_break_glass(
                &actor,
                &body.justification,
                body.duration_minutes,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::InvokeBreakGlassResponse {
            r#use: Some(use_proto(used)),
            revision,
        }))
    }

    async fn review_break_glass(
        &self,
        request: Request<pb::ReviewBreakGlassRequest>,
    ) -> Result<Response<pb::ReviewBreakGlassResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = required("use_id", &body.use_id)?.to_owned();
        let used = self
            .directory
            .review_break_glass(&actor, &id, &body.note, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::ReviewBreakGlassResponse {
            r#use: Some(use_proto(used)),
        }))
    }

    async fn list_break_glass_uses(
        &self,
        request: Request<pb::ListBreakGlassUsesRequest>,
    ) -> Result<Response<pb::ListBreakGlassUsesResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let uses = self
            .directory
            .list_break_glass_uses(&actor, &enterprise_id, body.unreviewed_only)
            .await?;
        Ok(Response::new(pb::ListBreakGlassUsesResponse {
            uses: uses.into_iter().map(use_proto).collect(),
        }))
    }
}
