use super::{actor, decode_page_token, encode_page_token, required};
use crate::domain::{Directory, EnterpriseId, PracticeId};
use praxis_proto::directory::v1::practice_service_server::PracticeService;
use praxis_proto::directory::v1::*;
use tonic::{Request, Response, Status};

pub struct PracticeApi {
    pub directory: Directory,
}

#[tonic::async_trait]
impl PracticeService for PracticeApi {
    async fn create_practice(
        &self,
        request: Request<CreatePracticeRequest>,
    ) -> Result<Response<CreatePracticeResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let (practice, revision) = self
            .directory
            .create_practice(
                &actor,
                &enterprise_id,
                &body.display_name,
                &body.request_id,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(CreatePracticeResponse {
            practice: Some(practice.into()),
            revision,
        }))
    }

    async fn get_practice(
        &self,
        request: Request<GetPracticeRequest>,
    ) -> Result<Response<GetPracticeResponse>, Status> {
        let actor = actor(&request)?;
        let id = PracticeId(required("practice_id", &request.get_ref().practice_id)?.to_owned());
        let practice = self.directory.get_practice(&actor, &id).await?;
        Ok(Response::new(GetPracticeResponse {
            practice: Some(practice.into()),
        }))
    }

    async fn list_practices(
        &self,
        request: Request<ListPracticesRequest>,
    ) -> Result<Response<ListPracticesResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let page = Directory::page(body.page_size, decode_page_token(&body.page_token)?)?;
        let (page, revision) = self
            .directory
            .list_practices(&actor, &enterprise_id, &page)
            .await?;
        Ok(Response::new(ListPracticesResponse {
            practices: page.items.into_iter().map(Into::into).collect(),
            next_page_token: encode_page_token(page.next_after),
            revision,
        }))
    }
}
