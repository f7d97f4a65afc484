//! `praxis.directory.v1.AccountService`: identity reads who may log in.

use super::actor;
use crate::domain::provisioning::Provision;
use crate::domain::roles::RoleId;
use crate::domain::users::{AccountKey, AccountView};
use crate::domain::{Directory, EnterpriseId, PracticeId, UserId};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::account_service_server::AccountService;
use praxis_runtime::error::invalid_argument;
use tonic::{Request, Response, Status};

pub struct AccountApi {
    pub directory: Directory,
}

/// The wire form of an account; the one-process install hands identity the same shape.
pub fn account_proto(view: AccountView) -> pb::GetAccountResponse {
    pb::GetAccountResponse {
        user: Some(view.user.into()),
        policy: Some(super::policy::to_proto(view.policy)),
        role_ids: view.role_ids.into_iter().map(|role| role.0).collect(),
    }
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::GetAccountResponse>, Status> {
        let actor = actor(&request)?;
        let key = match request.into_inner().key {
            Some(pb::get_account_request::Key::Email(email)) => AccountKey::Email(email),
            Some(pb::get_account_request::Key::UserId(id)) if !id.trim().is_empty() => {
                AccountKey::UserId(UserId(id.trim().to_owned()))
            }
            _ => return Err(invalid_argument("key", "an email or a user_id")),
        };
        match self.directory.account(&actor, key).await? {
            Some(view) => Ok(Response::new(account_proto(view))),
            None => Err(Status::not_found("account not found")),
        }
    }

    async fn record_login(
        &self,
        request: Request<pb::RecordLoginRequest>,
    ) -> Result<Response<pb::RecordLoginResponse>, Status> {
        let actor = actor(&request)?;
        let id = super::required("user_id", &request.get_ref().user_id)?;
        self.directory
            .record_login(&actor, &UserId(id.to_owned()), chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::RecordLoginResponse {}))
    }

    async fn redeem_invitation(
        &self,
        request: Request<pb::RedeemInvitationRequest>,
    ) -> Result<Response<pb::RedeemInvitationResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let token = super::required("token", &body.token)?;
        match self
            .directory
            .redeem_invitation(&actor, token, body.spend, chrono::Utc::now())
            .await?
        {
            Some(user_id) => Ok(Response::new(pb::RedeemInvitationResponse {
                user_id: user_id.0,
            })),
            None => Err(Status::not_found("invitation unknown, used or expired")),
        }
    }

    async fn list_enterprise_domains(
        &self,
        request: Request<pb::ListEnterpriseDomainsRequest>,
    ) -> Result<Response<pb::ListEnterpriseDomainsResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id = super::required("enterprise_id", &request.get_ref().enterprise_id)?;
        let (domains, sso_required) = self
            .directory
            .enterprise_domains(&actor, &EnterpriseId(enterprise_id.to_owned()))
            .await?;
        Ok(Response::new(pb::ListEnterpriseDomainsResponse {
            domains,
            sso_required,
        }))
    }

    async fn provision_user(
        &self,
        request: Request<pb::ProvisionUserRequest>,
    ) -> Result<Response<pb::ProvisionUserResponse>, Status> {
        let actor = actor(&request)?;
        provision_proto(&self.directory, &actor, request.into_inner())
            .await
            .map(Response::new)
    }
}

/// ProvisionUser on the wire form; the one-process install calls it directly.
pub async fn provision_proto(
    directory: &Directory,
    actor: &crate::domain::Actor,
    body: pb::ProvisionUserRequest,
) -> Result<pb::ProvisionUserResponse, Status> {
    let enterprise_id = super::required("enterprise_id", &body.enterprise_id)?;
    let kind = super::convert::user_kind(body.kind)
        .map_err(|()| invalid_argument("kind", "not a user kind"))?;
    let roles = body
        .roles
        .into_iter()
        .map(|role| {
            let practice = role.practice_id.trim();
            (
                RoleId(role.role_id.trim().to_owned()),
                (!practice.is_empty()).then(|| PracticeId(practice.to_owned())),
            )
        })
        .collect();
    let provision = Provision {
        enterprise_id: EnterpriseId(enterprise_id.to_owned()),
        email: body.email,
        given_name: body.given_name,
        family_name: body.family_name,
        kind,
        memberships: body
            .memberships
            .into_iter()
            .map(super::convert::membership)
            .collect(),
        roles,
        source: body.source,
    };
    let provisioned = directory
        .provision_user(actor, provision, chrono::Utc::now())
        .await?;
    Ok(pb::ProvisionUserResponse {
        account: Some(account_proto(provisioned.account)),
        created: provisioned.created,
        revision: provisioned.revision,
    })
}
