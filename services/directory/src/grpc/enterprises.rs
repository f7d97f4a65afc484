use super::convert::min_access;
use super::{actor, mask_paths, required};
use crate::domain::service::EnterpriseChange;
use crate::domain::users::parse_etag;
use crate::domain::{Directory, EnterpriseId};
use praxis_proto::directory::v1::enterprise_service_server::EnterpriseService;
use praxis_proto::directory::v1::*;
use praxis_runtime::error::invalid_argument;
use tonic::{Request, Response, Status};

pub struct EnterpriseApi {
    pub directory: Directory,
}

#[tonic::async_trait]
impl EnterpriseService for EnterpriseApi {
    async fn create_enterprise(
        &self,
        request: Request<CreateEnterpriseRequest>,
    ) -> Result<Response<CreateEnterpriseResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise = self
            .directory
            .create_enterprise(
                &actor,
                &body.display_name,
                &body.request_id,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(CreateEnterpriseResponse {
            enterprise: Some(enterprise.into()),
        }))
    }

    async fn get_enterprise(
        &self,
        request: Request<GetEnterpriseRequest>,
    ) -> Result<Response<GetEnterpriseResponse>, Status> {
        let actor = actor(&request)?;
        let id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let enterprise = self.directory.get_enterprise(&actor, &id).await?;
        Ok(Response::new(GetEnterpriseResponse {
            enterprise: Some(enterprise.into()),
        }))
    }

    async fn update_enterprise(
        &self,
        request: Request<UpdateEnterpriseRequest>,
    ) -> Result<Response<UpdateEnterpriseResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise = body
            .enterprise
            .ok_or_else(|| invalid_argument("enterprise", "required"))?;
        let id = EnterpriseId(required("enterprise.id", &enterprise.id)?.to_owned());
        let allowed = [
            "display_name",
            "user_creation_min_access",
            "policy",
            "policy.password",
            "policy.session",
            "policy.two_factor",
            "policy.inactivity_limit_days",
            "policy.ip_allowlists",
            "policy.audit",
            "policy.sso",
            "policy.break_glass",
        ];
        let paths = mask_paths(body.update_mask, &allowed)?;
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let etag = parse_etag(&enterprise.etag)?;
        let mut change = EnterpriseChange::default();
        if paths.contains(&"display_name") {
            change.display_name = Some(enterprise.display_name.clone());
        }
        if paths.contains(&"user_creation_min_access") {
            let value = min_access(enterprise.user_creation_min_access).ok_or_else(|| {
                invalid_argument(
                    "enterprise.user_creation_min_access",
                    "STAFF, MANAGER or ENTERPRISE",
                )
            })?;
            change.min_access = Some(value);
        }
        if paths.iter().any(|p| p.starts_with("policy")) {
            let current = self.directory.get_enterprise(&actor, &id).await?.policy;
            let wanted = enterprise.policy.unwrap_or_default();
            change.policy = Some(super::policy::merge(current, wanted, &paths)?);
        }
        let updated = self
            .directory
            .update_enterprise(&actor, &id, etag, change, chrono::Utc::now())
            .await?;
        Ok(Response::new(UpdateEnterpriseResponse {
            enterprise: Some(updated.into()),
        }))
    }
}
