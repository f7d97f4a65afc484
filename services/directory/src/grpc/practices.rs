use super::{actor, decode_page_token, encode_page_token, mask_paths, required};
use crate::domain::structure::ResourceChange;
use crate::domain::users::parse_etag;
use crate::domain::{self, Directory, EnterpriseId, LineId, PracticeId};
use praxis_proto::directory::v1::practice_service_server::PracticeService;
use praxis_proto::directory::v1::*;
use praxis_runtime::error::invalid_argument;
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

    async fn update_practice(
        &self,
        request: Request<UpdatePracticeRequest>,
    ) -> Result<Response<UpdatePracticeResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let practice = body
            .practice
            .ok_or_else(|| invalid_argument("practice", "required"))?;
        let id = PracticeId(required("practice.id", &practice.id)?.to_owned());
        mask_paths(body.update_mask, &["display_name"])?;
        let (practice, revision) = self
            .directory
            .rename_practice(
                &actor,
                &id,
                &practice.display_name,
                parse_etag(&practice.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(UpdatePracticeResponse {
            practice: Some(practice.into()),
            revision,
        }))
    }

    async fn delete_practice(
        &self,
        request: Request<DeletePracticeRequest>,
    ) -> Result<Response<DeletePracticeResponse>, Status> {
        let actor = actor(&request)?;
        let id = PracticeId(required("practice_id", &request.get_ref().practice_id)?.to_owned());
        let etag = parse_etag(&request.get_ref().etag)?;
        let revision = self
            .directory
            .delete_practice(&actor, &id, etag, chrono::Utc::now())
            .await?;
        Ok(Response::new(DeletePracticeResponse { revision }))
    }

    async fn create_line(
        &self,
        request: Request<CreateLineRequest>,
    ) -> Result<Response<CreateLineResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let practice_id = PracticeId(required("practice_id", &body.practice_id)?.to_owned());
        let line = body
            .line
            .ok_or_else(|| invalid_argument("line", "required"))?;
        let (line, revision) = self
            .directory
            .add_line(
                &actor,
                &practice_id,
                &line.display_name,
                &line.phone_number,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(CreateLineResponse {
            line: Some(line.into()),
            revision,
        }))
    }

    async fn update_line(
        &self,
        request: Request<UpdateLineRequest>,
    ) -> Result<Response<UpdateLineResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let line = body
            .line
            .ok_or_else(|| invalid_argument("line", "required"))?;
        let id = LineId(required("line.id", &line.id)?.to_owned());
        let paths = mask_paths(body.update_mask, &["display_name", "phone_number"])?;
        let has = |path: &str| paths.iter().any(|p| p == path);
        let name = has("display_name").then_some(line.display_name.as_str());
        let phone = has("phone_number").then_some(line.phone_number.as_str());
        let (line, revision) = self
            .directory
            .update_line(&actor, &id, name, phone, chrono::Utc::now())
            .await?;
        Ok(Response::new(UpdateLineResponse {
            line: Some(line.into()),
            revision,
        }))
    }

    async fn delete_line(
        &self,
        request: Request<DeleteLineRequest>,
    ) -> Result<Response<DeleteLineResponse>, Status> {
        let actor = actor(&request)?;
        let id = LineId(required("line_id", &request.get_ref().line_id)?.to_owned());
        let revision = self
            .directory
            .delete_line(&actor, &id, chrono::Utc::now())
            .await?;
        Ok(Response::new(DeleteLineResponse { revision }))
    }

    async fn create_resource(
        &self,
        request: Request<CreateResourceRequest>,
    ) -> Result<Response<CreateResourceResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let practice_id = PracticeId(required("practice_id", &body.practice_id)?.to_owned());
        let resource = body
            .resource
            .ok_or_else(|| invalid_argument("resource", "required"))?;
        let kind = match ResourceKind::try_from(resource.kind) {
            Ok(ResourceKind::Provider) => domain::ResourceKind::Provider,
            Ok(ResourceKind::Location) => domain::ResourceKind::Location,
            _ => return Err(invalid_argument("resource.kind", "PROVIDER or LOCATION")),
        };
        let zone = Some(resource.time_zone.as_str()).filter(|z| !z.trim().is_empty());
        let (resource, revision) = self
            .directory
            .add_resource(
                &actor,
                &practice_id,
                kind,
                &resource.display_name,
                zone,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(CreateResourceResponse {
            resource: Some(resource.into()),
            revision,
        }))
    }

    async fn update_resource(
        &self,
        request: Request<UpdateResourceRequest>,
    ) -> Result<Response<UpdateResourceResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let resource = body
            .resource
            .ok_or_else(|| invalid_argument("resource", "required"))?;
        let id = domain::ResourceId(required("resource.id", &resource.id)?.to_owned());
        let paths = mask_paths(
            body.update_mask,
            &["display_name", "time_zone", "provider_profile"],
        )?;
        let has = |path: &str| paths.iter().any(|p| p == path);
        let change = ResourceChange {
            display_name: has("display_name").then(|| resource.display_name.clone()),
            time_zone: has("time_zone").then(|| resource.time_zone.clone()),
            provider_profile: has("provider_profile").then(|| {
                super::convert::provider_profile(
                    resource.provider_profile.clone().unwrap_or_default(),
                )
            }),
        };
        let (resource, revision) = self
            .directory
            .update_resource(&actor, &id, change, chrono::Utc::now())
            .await?;
        Ok(Response::new(UpdateResourceResponse {
            resource: Some(resource.into()),
            revision,
        }))
    }

    async fn delete_resource(
        &self,
        request: Request<DeleteResourceRequest>,
    ) -> Result<Response<DeleteResourceResponse>, Status> {
        let actor = actor(&request)?;
        let id =
            domain::ResourceId(required("resource_id", &request.get_ref().resource_id)?.to_owned());
        let revision = self
            .directory
            .delete_resource(&actor, &id, chrono::Utc::now())
            .await?;
        Ok(Response::new(DeleteResourceResponse { revision }))
    }
}
