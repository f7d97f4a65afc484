use super::convert::{membership, user_kind, user_status};
use super::{actor, decode_page_token, encode_page_token, mask_paths, required};
use crate::domain::users::{CreateUser, KindChange, NameChange, parse_etag};
use crate::domain::{Directory, EnterpriseId, LineId, PracticeId, UserFilter, UserId};
use praxis_proto::directory::v1::user_service_server::UserService;
use praxis_proto::directory::v1::*;
use praxis_runtime::error::{FieldViolations, invalid_argument};
use tonic::{Request, Response, Status};

pub struct UserApi {
    pub directory: Directory,
}

fn user_id(field: &'static str, value: &str) -> Result<UserId, Status> {
    required(field, value).map(|id| UserId(id.to_owned()))
}

/// A kind the request must name: UNSPECIFIED and unknown numbers are refused.
fn wanted_kind(field: &str, value: i32) -> Result<crate::domain::UserKind, Status> {
    match user_kind(value) {
        Ok(Some(kind)) => Ok(kind),
        _ => Err(invalid_argument(
            field,
            "a user kind: STAFF, ADVANCED_STAFF, MANAGER, ENTERPRISE_CONTENT_MANAGER or ENTERPRISE_ADMIN",
        )),
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn create_service_account(
        &self,
        request: Request<CreateServiceAccountRequest>,
    ) -> Result<Response<CreateServiceAccountResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let (user, revision) = self
            .directory
            .create_service_account(
                &actor,
                &enterprise_id,
                &body.display_name,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(CreateServiceAccountResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<GetUserResponse>, Status> {
        let actor = actor(&request)?;
        let id = user_id("user_id", &request.get_ref().user_id)?;
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
        let status = user_status(body.status).unwrap_or_else(|()| {
            violations.add("status", "unknown user status");
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
        if body.page_size < 0 {
            violations.add("page_size", "must not be negative");
        }
        violations.check()?;
        let page = Directory::page(body.page_size, after?)?;
        let filter = UserFilter {
            practice_id: Some(body.practice_id.trim())
                .filter(|id| !id.is_empty())
                .map(|id| PracticeId(id.to_owned())),
            kind,
            status,
            role_id: Some(body.role_id.trim())
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
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

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let kind = match user_kind(body.kind) {
            Ok(kind) => kind,
            Err(()) => return Err(invalid_argument("kind", "unknown user kind")),
        };
        let create = CreateUser {
            email: body.email,
            given_name: body.given_name,
            family_name: body.family_name,
            kind,
            memberships: body.memberships.into_iter().map(membership).collect(),
            template_user_id: Some(body.template_user_id.trim())
                .filter(|id| !id.is_empty())
                .map(|id| UserId(id.to_owned())),
            request_id: body.request_id,
            person_id: Some(body.person_id.trim())
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        };
        let created = self
            .directory
            .create_user(&actor, &enterprise_id, create, chrono::Utc::now())
            .await?;
        Ok(Response::new(CreateUserResponse {
            user: Some(created.user.into()),
            revision: created.revision,
            invitation_expire_time: created.invitation_expires_at.map(super::convert::timestamp),
        }))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let user = body
            .user
            .ok_or_else(|| invalid_argument("user", "required"))?;
        let id = user_id("user.id", &user.id)?;
        let paths = mask_paths(body.update_mask, &["given_name", "family_name"])?;
        let names = NameChange {
            given_name: paths
                .iter()
                .any(|p| p == "given_name")
                .then_some(user.given_name),
            family_name: paths
                .iter()
                .any(|p| p == "family_name")
                .then_some(user.family_name),
        };
        let (user, revision) = self
            .directory
            .update_names(
                &actor,
                &id,
                names,
                parse_etag(&user.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(UpdateUserResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn change_user_kind(
        &self,
        request: Request<ChangeUserKindRequest>,
    ) -> Result<Response<ChangeUserKindResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = user_id("user_id", &body.user_id)?;
        let kind = wanted_kind("kind", body.kind)?;
        let practice_id = Some(body.practice_id.trim())
            .filter(|p| !p.is_empty())
            .map(|p| PracticeId(p.to_owned()));
        let line_ids = body
            .line_ids
            .into_iter()
            .map(|id| LineId(id.trim().to_owned()))
            .collect();
        let changed = self
            .directory
            .change_user_kind(
                &actor,
                &id,
                KindChange {
                    kind,
                    practice_id,
                    line_ids,
                },
                parse_etag(&body.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(ChangeUserKindResponse {
            user: Some(changed.user.into()),
            revision: changed.revision,
            revoked_memberships: changed
                .revoked
                .into_iter()
                .map(|m| PracticeMembership {
                    practice_id: m.practice_id.0,
                    line_ids: m.line_ids.into_iter().map(|l| l.0).collect(),
                    resource_filter_ids: m.resource_filter_ids.into_iter().map(|r| r.0).collect(),
                })
                .collect(),
        }))
    }

    async fn add_practice_membership(
        &self,
        request: Request<AddPracticeMembershipRequest>,
    ) -> Result<Response<AddPracticeMembershipResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = user_id("user_id", &body.user_id)?;
        let kind = wanted_kind("kind", body.kind)?;
        let requested = body
            .membership
            .ok_or_else(|| invalid_argument("membership", "required"))?;
        required("membership.practice_id", &requested.practice_id)?;
        let (user, revision) = self
            .directory
            .add_membership(
                &actor,
                &id,
                kind,
                membership(requested),
                parse_etag(&body.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(AddPracticeMembershipResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn remove_practice_membership(
        &self,
        request: Request<RemovePracticeMembershipRequest>,
    ) -> Result<Response<RemovePracticeMembershipResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = user_id("user_id", &body.user_id)?;
        let practice_id = PracticeId(required("practice_id", &body.practice_id)?.to_owned());
        let (user, revision) = self
            .directory
            .remove_membership(
                &actor,
                &id,
                &practice_id,
                parse_etag(&body.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(RemovePracticeMembershipResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn update_practice_membership(
        &self,
        request: Request<UpdatePracticeMembershipRequest>,
    ) -> Result<Response<UpdatePracticeMembershipResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = user_id("user_id", &body.user_id)?;
        let requested = body
            .membership
            .ok_or_else(|| invalid_argument("membership", "required"))?;
        required("membership.practice_id", &requested.practice_id)?;
        let (user, revision) = self
            .directory
            .update_membership(
                &actor,
                &id,
                membership(requested),
                parse_etag(&body.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(UpdatePracticeMembershipResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn disable_user(
        &self,
        request: Request<DisableUserRequest>,
    ) -> Result<Response<DisableUserResponse>, Status> {
        let actor = actor(&request)?;
        let id = user_id("user_id", &request.get_ref().user_id)?;
        let etag = parse_etag(&request.get_ref().etag)?;
        let (user, revision) = self
            .directory
            .disable_user(&actor, &id, etag, chrono::Utc::now())
            .await?;
        Ok(Response::new(DisableUserResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn enable_user(
        &self,
        request: Request<EnableUserRequest>,
    ) -> Result<Response<EnableUserResponse>, Status> {
        let actor = actor(&request)?;
        let id = user_id("user_id", &request.get_ref().user_id)?;
        let etag = parse_etag(&request.get_ref().etag)?;
        let (user, revision) = self
            .directory
            .enable_user(&actor, &id, etag, chrono::Utc::now())
            .await?;
        Ok(Response::new(EnableUserResponse {
            user: Some(user.into()),
            revision,
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let actor = actor(&request)?;
        let id = user_id("user_id", &request.get_ref().user_id)?;
        let etag = parse_etag(&request.get_ref().etag)?;
        let revision = self
            .directory
            .delete_user(&actor, &id, etag, chrono::Utc::now())
            .await?;
        Ok(Response::new(DeleteUserResponse { revision }))
    }

    async fn get_principal_snapshot(
        &self,
        request: Request<GetPrincipalSnapshotRequest>,
    ) -> Result<Response<GetPrincipalSnapshotResponse>, Status> {
        let actor = actor(&request)?;
        let id = user_id("user_id", &request.get_ref().user_id)?;
        let snapshot = self.directory.principal_snapshot(&actor, &id).await?;
        Ok(Response::new(GetPrincipalSnapshotResponse {
            snapshot: Some(super::snapshot_proto(snapshot)),
        }))
    }

    async fn review_access(
        &self,
        request: Request<ReviewAccessRequest>,
    ) -> Result<Response<ReviewAccessResponse>, Status> {
        use crate::domain::review::AccessFlag as Flag;
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let inactive_days = match body.inactive_days {
            0 => 90,
            days => u32::try_from(days)
                .map_err(|_| invalid_argument("inactive_days", "must not be negative"))?,
        };
        let page = Directory::page(body.page_size, decode_page_token(&body.page_token)?)?;
        let (page, revision) = self
            .directory
            .review_access(
                &actor,
                &enterprise_id,
                inactive_days,
                &page,
                chrono::Utc::now(),
            )
            .await?;
        let entries = page
            .items
            .into_iter()
            .map(|entry| AccessReviewEntry {
                last_login_time: entry.user.last_login_at.map(super::convert::timestamp),
                user: Some(entry.user.into()),
                role_ids: entry.role_ids,
                flags: entry
                    .flags
                    .into_iter()
                    .map(|flag| {
                        match flag {
                            Flag::Inactive => AccessFlag::Inactive,
                            Flag::NeverLoggedIn => AccessFlag::NeverLoggedIn,
                            Flag::ExpiringRole => AccessFlag::ExpiringRole,
                            Flag::ExpiredRole => AccessFlag::ExpiredRole,
                        }
                        .into()
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(ReviewAccessResponse {
            entries,
            next_page_token: encode_page_token(page.next_after),
            revision,
        }))
    }
}
