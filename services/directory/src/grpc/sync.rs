use super::convert::{timestamp, user_kind};
use super::{actor, required};
use crate::domain::UserKind;
use crate::domain::scim_rules::GroupRule;
use crate::domain::sync::ScimToken;
use crate::domain::{Directory, EnterpriseId};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::directory_sync_service_server::DirectorySyncService;
use tonic::{Request, Response, Status};

pub struct DirectorySyncApi {
    pub directory: Directory,
}

fn token_proto(token: ScimToken) -> pb::ScimToken {
    pb::ScimToken {
        id: token.id,
        enterprise_id: token.enterprise_id.0,
        display_name: token.display_name,
        prefix: format!("{}{}_", crate::domain::sync::TOKEN_PREFIX, token.prefix),
        create_time: Some(timestamp(token.created_at)),
        created_by: token.created_by,
        revoke_time: token.revoked_at.map(timestamp),
        last_use_time: token.last_used_at.map(timestamp),
    }
}

fn rule_in(rule: pb::ScimGroupRule) -> GroupRule {
    GroupRule {
        group: rule.group,
        // An unknown or unset kind is refused by the domain, with the rule's index.
        kind: user_kind(rule.kind)
            .ok()
            .flatten()
            .map(|kind| kind.as_str().to_owned())
            .unwrap_or_default(),
        practice_ids: rule.practice_ids,
        line_ids: rule.line_ids,
        role_ids: rule.role_ids,
    }
}

fn rule_out(rule: GroupRule) -> pb::ScimGroupRule {
    pb::ScimGroupRule {
        group: rule.group,
        kind: UserKind::parse(&rule.kind).map_or(0, |kind| pb::UserKind::from(kind).into()),
        practice_ids: rule.practice_ids,
        line_ids: rule.line_ids,
        role_ids: rule.role_ids,
    }
}

#[tonic::async_trait]
impl DirectorySyncService for DirectorySyncApi {
    async fn set_scim_group_rules(
        &self,
        request: Request<pb::SetScimGroupRulesRequest>,
    ) -> Result<Response<pb::SetScimGroupRulesResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let rules = self
            .directory
            .set_scim_group_rules(
                &actor,
                &enterprise_id,
                body.rules.into_iter().map(rule_in).collect(),
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::SetScimGroupRulesResponse {
            rules: rules.into_iter().map(rule_out).collect(),
        }))
    }

    async fn get_scim_group_rules(
        &self,
        request: Request<pb::GetScimGroupRulesRequest>,
    ) -> Result<Response<pb::GetScimGroupRulesResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let rules = self
            .directory
            .get_scim_group_rules(&actor, &enterprise_id)
            .await?;
        Ok(Response::new(pb::GetScimGroupRulesResponse {
            rules: rules.into_iter().map(rule_out).collect(),
        }))
    }

    async fn create_scim_token(
        &self,
        request: Request<pb::CreateScimTokenRequest>,
    ) -> Result<Response<pb::CreateScimTokenResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let (token, secret) = self
            .directory
            .create_scim_token(
                &actor,
                &enterprise_id,
                &body.display_name,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::CreateScimTokenResponse {
            scim_token: Some(token_proto(token)),
            secret,
        }))
    }

    async fn list_scim_tokens(
        &self,
        request: Request<pb::ListScimTokensRequest>,
    ) -> Result<Response<pb::ListScimTokensResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let tokens = self
            .directory
            .list_scim_tokens(&actor, &enterprise_id)
            .await?;
        Ok(Response::new(pb::ListScimTokensResponse {
            scim_tokens: tokens.into_iter().map(token_proto).collect(),
        }))
    }

    async fn revoke_scim_token(
        &self,
        request: Request<pb::RevokeScimTokenRequest>,
    ) -> Result<Response<pb::RevokeScimTokenResponse>, Status> {
        let actor = actor(&request)?;
        let token_id = required("token_id", &request.get_ref().token_id)?.to_owned();
        let token = self
            .directory
            .revoke_scim_token(&actor, &token_id, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::RevokeScimTokenResponse {
            scim_token: Some(token_proto(token)),
        }))
    }
}
