//! `PersonService` (D15).

use super::convert::timestamp;
use super::{actor, decode_page_token, encode_page_token, mask_paths, required};
use crate::domain::persons::{self as domain, PersonDraft};
use crate::domain::users::{etag_of, parse_etag};
use crate::domain::{Directory, EnterpriseId};
use praxis_proto::directory::v1::person_service_server::PersonService;
use praxis_proto::directory::v1::*;
use praxis_runtime::error::invalid_argument;
use tonic::{Request, Response, Status};

pub struct PersonApi {
    pub directory: Directory,
}

impl From<domain::Person> for Person {
    fn from(person: domain::Person) -> Self {
        Person {
            id: person.id,
            enterprise_id: person.enterprise_id.0,
            email: person.email,
            given_name: person.given_name,
            family_name: person.family_name,
            phone_number: person.phone_number.unwrap_or_default(),
            user_id: person.user_id.map(|u| u.0).unwrap_or_default(),
            etag: etag_of(person.version),
            create_time: Some(timestamp(person.created_at)),
        }
    }
}

fn draft(person: Person) -> PersonDraft {
    PersonDraft {
        email: person.email,
        given_name: person.given_name,
        family_name: person.family_name,
        phone_number: Some(person.phone_number).filter(|p| !p.trim().is_empty()),
    }
}

#[tonic::async_trait]
impl PersonService for PersonApi {
    async fn create_person(
        &self,
        request: Request<CreatePersonRequest>,
    ) -> Result<Response<CreatePersonResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let person = body
            .person
            .ok_or_else(|| invalid_argument("person", "required"))?;
        let (person, revision) = self
            .directory
            .create_person(&actor, &enterprise_id, draft(person), chrono::Utc::now())
            .await?;
        Ok(Response::new(CreatePersonResponse {
            person: Some(person.into()),
            revision,
        }))
    }

    async fn get_person(
        &self,
        request: Request<GetPersonRequest>,
    ) -> Result<Response<GetPersonResponse>, Status> {
        let actor = actor(&request)?;
        let id = required("person_id", &request.get_ref().person_id)?.to_owned();
        let person = self.directory.get_person(&actor, &id).await?;
        Ok(Response::new(GetPersonResponse {
            person: Some(person.into()),
        }))
    }

    async fn list_persons(
        &self,
        request: Request<ListPersonsRequest>,
    ) -> Result<Response<ListPersonsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let page = Directory::page(body.page_size, decode_page_token(&body.page_token)?)?;
        let (page, revision) = self
            .directory
            .list_persons(&actor, &enterprise_id, &page)
            .await?;
        Ok(Response::new(ListPersonsResponse {
            persons: page.items.into_iter().map(Into::into).collect(),
            next_page_token: encode_page_token(page.next_after),
            revision,
        }))
    }

    async fn update_person(
        &self,
        request: Request<UpdatePersonRequest>,
    ) -> Result<Response<UpdatePersonResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let person = body
            .person
            .ok_or_else(|| invalid_argument("person", "required"))?;
        let id = required("person.id", &person.id)?.to_owned();
        let paths = mask_paths(
            body.update_mask,
            &["given_name", "family_name", "phone_number"],
        )?;
        let fields: Vec<&str> = paths.iter().map(String::as_str).collect();
        let etag = parse_etag(&person.etag)?;
        let (person, revision) = self
            .directory
            .update_person(
                &actor,
                &id,
                draft(person),
                &fields,
                etag,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(UpdatePersonResponse {
            person: Some(person.into()),
            revision,
        }))
    }
}
