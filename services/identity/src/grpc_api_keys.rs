//! `praxis.identity.v1.ApiKeyService` (I7).

use crate::api_keys::{ApiKeyError, ApiKeys, DEFAULT_OVERLAP_SECONDS, NewKey, scopes_of};
use crate::grpc_auth::{ERROR_DOMAIN, timestamp};
use crate::store::api_key;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::api_key_service_server::ApiKeyService;
use praxis_runtime::error::{FieldViolations, invalid_argument, with_reason};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

pub struct ApiKeyApi {
    pub keys: Arc<ApiKeys>,
}

fn status(error: ApiKeyError) -> Status {
    match error {
        ApiKeyError::Invalid(problems) => {
            let mut violations = FieldViolations::new();
            for (field, message) in problems {
                violations.add(&field, message);
            }
            violations
                .check()
                .err()
                .unwrap_or_else(|| Status::invalid_argument("invalid request"))
        }
        ApiKeyError::NotFound(what) => Status::not_found(format!("{what} not found")),
        ApiKeyError::PermissionDenied(message) => Status::permission_denied(message),
        ApiKeyError::Precondition { reason, message } => {
            with_reason(Code::FailedPrecondition, reason, ERROR_DOMAIN, message)
        }
        ApiKeyError::Unavailable(cause) => {
            tracing::warn!(%cause, "API keys: dependency unavailable");
            Status::unavailable("try again later")
        }
        ApiKeyError::Internal(cause) => praxis_runtime::error::internal("identity", &cause),
    }
}

fn to_proto(key: &api_key::Model) -> pb::ApiKey {
    pb::ApiKey {
        id: key.id.clone(),
        enterprise_id: key.enterprise_id.clone(),
        principal_id: key.principal_id.clone(),
        display_name: key.display_name.clone(),
        prefix: format!("prx_{}_", key.prefix),
        scopes: scopes_of(key),
        expire_time: Some(timestamp(key.expires_at)),
        create_time: Some(timestamp(key.created_at)),
        created_by: key.created_by.clone(),
        revoke_time: key.revoked_at.map(timestamp),
        last_use_time: key.last_used_at.map(timestamp),
        use_count: key.use_count,
        rate_limit_per_minute: key.rate_per_minute,
        replaced_by: key.replaced_by.clone().unwrap_or_default(),
        retire_time: key.retire_at.map(timestamp),
    }
}

fn time(value: Option<prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    value.and_then(|t| {
        chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
    })
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<pb::CreateApiKeyRequest>,
    ) -> Result<Response<pb::CreateApiKeyResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let body = request.into_inner();
        let issued = self
            .keys
            .create(
                &caller,
                NewKey {
                    principal_id: body.principal_id,
                    display_name: body.display_name,
                    scopes: body.scopes,
                    expires_at: time(body.expire_time),
                    rate_per_minute: body.rate_limit_per_minute,
                },
                chrono::Utc::now(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CreateApiKeyResponse {
            api_key: Some(to_proto(&issued.key)),
            secret: issued.secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<pb::ListApiKeysRequest>,
    ) -> Result<Response<pb::ListApiKeysResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let body = request.into_inner();
        let enterprise_id = body.enterprise_id.trim();
        if enterprise_id.is_empty() {
            return Err(invalid_argument("enterprise_id", "required"));
        }
        let principal = Some(body.principal_id.trim()).filter(|p| !p.is_empty());
        let keys = self
            .keys
            .list(&caller, enterprise_id, principal)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListApiKeysResponse {
            api_keys: keys.iter().map(to_proto).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<pb::RevokeApiKeyRequest>,
    ) -> Result<Response<pb::RevokeApiKeyResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let id = request.get_ref().key_id.trim().to_owned();
        if id.is_empty() {
            return Err(invalid_argument("key_id", "required"));
        }
        let key = self
            .keys
            .revoke(&caller, &id, chrono::Utc::now())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeApiKeyResponse {
            api_key: Some(to_proto(&key)),
        }))
    }

    async fn rotate_api_key(
        &self,
        request: Request<pb::RotateApiKeyRequest>,
    ) -> Result<Response<pb::RotateApiKeyResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let body = request.into_inner();
        let id = body.key_id.trim().to_owned();
        if id.is_empty() {
            return Err(invalid_argument("key_id", "required"));
        }
        let (issued, replaced) = self
            .keys
            .rotate(
                &caller,
                &id,
                body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS),
                chrono::Utc::now(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RotateApiKeyResponse {
            api_key: Some(to_proto(&issued.key)),
            secret: issued.secret,
            replaced: Some(to_proto(&replaced)),
        }))
    }
}
