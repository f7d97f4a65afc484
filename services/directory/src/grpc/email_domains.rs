use super::{actor, required};
use crate::domain::{Directory, EnterpriseId};
use praxis_proto::directory::v1::email_domain_service_server::EmailDomainService;
use praxis_proto::directory::v1::*;
use tonic::{Request, Response, Status};

pub struct EmailDomainApi {
    pub directory: Directory,
}

#[tonic::async_trait]
impl EmailDomainService for EmailDomainApi {
    async fn add_email_domain(
        &self,
        request: Request<AddEmailDomainRequest>,
    ) -> Result<Response<AddEmailDomainResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let (domain, revision) = self
            .directory
            .add_email_domain(&actor, &enterprise_id, &body.domain, chrono::Utc::now())
            .await?;
        Ok(Response::new(AddEmailDomainResponse {
            email_domain: Some(domain.into()),
            revision,
        }))
    }

    async fn remove_email_domain(
        &self,
        request: Request<RemoveEmailDomainRequest>,
    ) -> Result<Response<RemoveEmailDomainResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let revision = self
            .directory
            .remove_email_domain(&actor, &enterprise_id, &body.domain, chrono::Utc::now())
            .await?;
        Ok(Response::new(RemoveEmailDomainResponse { revision }))
    }

    async fn list_email_domains(
        &self,
        request: Request<ListEmailDomainsRequest>,
    ) -> Result<Response<ListEmailDomainsResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let (domains, revision) = self
            .directory
            .list_email_domains(&actor, &enterprise_id)
            .await?;
        Ok(Response::new(ListEmailDomainsResponse {
            email_domains: domains.into_iter().map(Into::into).collect(),
            revision,
        }))
    }
}
