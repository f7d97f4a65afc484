use super::convert::{timestamp, user_kind};
use super::{actor, required};
use crate::domain::UserKind;
use crate::domain::ldap_sync::{LdapAttributes, LdapSettings, LdapSyncView, SyncRun};
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

fn ldap_rule_in(rule: pb::LdapGroupRule) -> GroupRule {
    rule_in(pb::ScimGroupRule {
        group: rule.group,
        kind: rule.kind,
        practice_ids: rule.practice_ids,
        line_ids: rule.line_ids,
        role_ids: rule.role_ids,
    })
}

fn ldap_rule_out(rule: GroupRule) -> pb::LdapGroupRule {
    let rule = rule_out(rule);
    pb::LdapGroupRule {
        group: rule.group,
        kind: rule.kind,
        practice_ids: rule.practice_ids,
        line_ids: rule.line_ids,
        role_ids: rule.role_ids,
    }
}

fn ldap_settings_in(sync: pb::LdapSync) -> LdapSettings {
    let attributes = sync.attributes.unwrap_or_default();
    LdapSettings {
        url: sync.url,
        start_tls: sync.start_tls,
        ca_pem: sync.ca_pem,
        bind_dn: sync.bind_dn,
        base_dn: sync.base_dn,
        user_filter: sync.user_filter,
        group_filter: sync.group_filter,
        disabled_filter: sync.disabled_filter,
        // Empty names take the defaults in the domain.
        attributes: LdapAttributes {
            id: attributes.id,
            email: attributes.email,
            given_name: attributes.given_name,
            family_name: attributes.family_name,
        },
        group_rules: sync.group_rules.into_iter().map(ldap_rule_in).collect(),
        interval_minutes: sync.interval_minutes,
    }
}

fn run_proto(run: SyncRun) -> pb::DirectorySyncRun {
    pb::DirectorySyncRun {
        enterprise_id: run.enterprise_id,
        trigger: run.trigger,
        start_time: Some(timestamp(run.started_at)),
        end_time: Some(timestamp(run.ended_at)),
        completed: run.completed,
        entries: run.entries,
        created: run.created,
        updated: run.updated,
        disabled: run.disabled,
        enabled: run.enabled,
        unchanged: run.unchanged,
        skipped: run.skipped,
        errors: run
            .errors
            .into_iter()
            .map(|(dn, reason)| pb::DirectorySyncError { dn, reason })
            .collect(),
    }
}

fn ldap_sync_proto(view: LdapSyncView) -> pb::LdapSync {
    let settings = view.settings;
    pb::LdapSync {
        enterprise_id: view.enterprise_id.0,
        url: settings.url,
        start_tls: settings.start_tls,
        ca_pem: settings.ca_pem,
        bind_dn: settings.bind_dn,
        bind_password: String::new(),
        bind_password_set: view.password_set,
        base_dn: settings.base_dn,
        user_filter: settings.user_filter,
        group_filter: settings.group_filter,
        disabled_filter: settings.disabled_filter,
        attributes: Some(pb::LdapAttributeMapping {
            id: settings.attributes.id,
            email: settings.attributes.email,
            given_name: settings.attributes.given_name,
            family_name: settings.attributes.family_name,
        }),
        group_rules: settings
            .group_rules
            .into_iter()
            .map(ldap_rule_out)
            .collect(),
        interval_minutes: settings.interval_minutes,
        last_run: view.last_run.map(run_proto),
        update_time: Some(timestamp(view.updated_at)),
    }
}

#[tonic::async_trait]
impl DirectorySyncService for DirectorySyncApi {
    async fn set_ldap_sync(
        &self,
        request: Request<pb::SetLdapSyncRequest>,
    ) -> Result<Response<pb::SetLdapSyncResponse>, Status> {
        let actor = actor(&request)?;
        let sync = request
            .into_inner()
            .ldap_sync
            .ok_or_else(|| crate::domain::DomainError::invalid("ldap_sync", "required"))?;
        let enterprise_id =
            EnterpriseId(required("ldap_sync.enterprise_id", &sync.enterprise_id)?.to_owned());
        let password = Some(sync.bind_password.clone()).filter(|p| !p.is_empty());
        let view = self
            .directory
            .set_ldap_sync(
                &actor,
                &enterprise_id,
                ldap_settings_in(sync),
                password,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(pb::SetLdapSyncResponse {
            ldap_sync: Some(ldap_sync_proto(view)),
        }))
    }

    async fn get_ldap_sync(
        &self,
        request: Request<pb::GetLdapSyncRequest>,
    ) -> Result<Response<pb::GetLdapSyncResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let view = self.directory.get_ldap_sync(&actor, &enterprise_id).await?;
        Ok(Response::new(pb::GetLdapSyncResponse {
            ldap_sync: Some(ldap_sync_proto(view)),
        }))
    }

    async fn delete_ldap_sync(
        &self,
        request: Request<pb::DeleteLdapSyncRequest>,
    ) -> Result<Response<pb::DeleteLdapSyncResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        self.directory
            .delete_ldap_sync(&actor, &enterprise_id, chrono::Utc::now())
            .await?;
        Ok(Response::new(pb::DeleteLdapSyncResponse {}))
    }

    async fn run_directory_sync(
        &self,
        request: Request<pb::RunDirectorySyncRequest>,
    ) -> Result<Response<pb::RunDirectorySyncResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let run = self
            .directory
            .run_ldap_sync_now(&actor, &enterprise_id, &crate::ldap::Ldap3Reader)
            .await?;
        Ok(Response::new(pb::RunDirectorySyncResponse {
            run: Some(run_proto(run)),
        }))
    }

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
