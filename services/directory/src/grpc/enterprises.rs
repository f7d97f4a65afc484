use super::{actor, required};
use crate::domain::{Directory, EnterpriseId};
use praxis_proto::directory::v1::enterprise_service_server::EnterpriseService;
use praxis_proto::directory::v1::*;
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
}
