use super::convert::user_kind;
use super::{actor, decode_page_token, encode_page_token, required};
use crate::domain::{Directory, EnterpriseId, PracticeId, UserFilter, UserId};
use praxis_proto::directory::v1::user_service_server::UserService;
use praxis_proto::directory::v1::*;
use praxis_runtime::error::FieldViolations;
use tonic::{Request, Response, Status};

pub struct UserApi {
    pub directory: Directory,
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let actor = actor(&request)?;
        let id = UserId(required("user_id", &request.get_ref().user_id)?.to_owned());
        let (user, revision) = self.directory.get_user(&actor, &id).await?;
        Ok(Response::new(GetUserResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut violations = FieldViolations::new();
        if body.enterprise_id.trim().is_empty() {
            violations.add("enterprise_id", "required");
        }
        let kind = user_kind(body.kind).unwrap_or_else(|()| {
            violations.add("kind", "unknown user kind");
            None
        });
        let query = body.query.trim();
        if query.chars().count() > 200 {
            violations.add("query", "at most 200 characters");
        }
        let after = decode_page_token(&body.page_token);
        if after.is_err() {
            violations.add("page_token", "not a token this service issued");
        }
        violations.check()?;
        let page = Directory::page(body.page_size, after?)?;
        let filter = UserFilter {
            practice_id: Some(body.practice_id.trim())
                .filter(|id| !id.is_empty())
                .map(|id| PracticeId(id.to_owned())),
            kind,
            query: Some(query).filter(|q| !q.is_empty()).map(str::to_owned),
        };
        let enterprise_id = EnterpriseId(body.enterprise_id.trim().to_owned());
        let (page, revision) = self
            .directory
            .list_users(&actor, &enterprise_id, &filter, &page)
            .await?;
        Ok(Response::new(ListUsersResponse {
            users: page.items.into_iter().map(Into::into).collect(),
            next_page_token: encode_page_token(page.next_after),
            revision,
        }))
    }
}
