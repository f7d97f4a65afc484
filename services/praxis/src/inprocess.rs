//! In one process, authz reads principals and identity reads accounts straight from the directory
//! library: same rules, no network hop.

use praxis_authz::principals::{LookupError, PrincipalSource};
use praxis_directory::Directory;
use praxis_directory::domain::users::AccountKey;
use praxis_directory::domain::{Actor, DomainError, EnterpriseId, UserId};
use praxis_identity::accounts::{
    Account, Accounts, AccountsError, EnterpriseDomains, ProvisionError,
};
use praxis_proto::directory::v1 as pb;
use praxis_runtime::Caller;
use praxis_runtime::error::DeliveryError;

pub struct DirectoryPrincipals(pub Directory);

#[async_trait::async_trait]
impl PrincipalSource for DirectoryPrincipals {
    async fn principal(
        &self,
        caller: &Caller,
        _authorization: Option<&str>,
        user_id: &str,
    ) -> Result<pb::PrincipalSnapshot, LookupError> {
        let actor = Actor::Caller(caller.clone());
        match self
            .0
            .principal_snapshot(&actor, &UserId(user_id.to_owned()))
            .await
        {
            Ok(snapshot) => Ok(praxis_directory::grpc::snapshot_proto(snapshot)),
            Err(DomainError::NotFound(_)) => Err(LookupError::NotFound),
            Err(DomainError::PermissionDenied(_)) => Err(LookupError::Denied),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }

    async fn revision(
        &self,
        caller: &Caller,
        _authorization: Option<&str>,
        enterprise_id: &str,
    ) -> Result<i64, LookupError> {
        let actor = Actor::Caller(caller.clone());
        match self
            .0
            .get_enterprise(&actor, &EnterpriseId(enterprise_id.to_owned()))
            .await
        {
            Ok(enterprise) => Ok(enterprise.revision),
            Err(DomainError::NotFound(_)) => Err(LookupError::NotFound),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }

    async fn users(
        &self,
        caller: &Caller,
        _authorization: Option<&str>,
        enterprise_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, LookupError> {
        let actor = Actor::Caller(caller.clone());
        let filter = praxis_directory::domain::UserFilter {
            status: Some(praxis_directory::domain::UserStatus::Active),
            ..Default::default()
        };
        let mut users = Vec::new();
        let mut after = None;
        loop {
            let page = praxis_directory::domain::PageRequest { size: 500, after };
            let (page, _) = self
                .0
                .list_users(
                    &actor,
                    &EnterpriseId(enterprise_id.to_owned()),
                    &filter,
                    &page,
                )
                .await
                .map_err(|error| match error {
                    DomainError::NotFound(_) => LookupError::NotFound,
                    DomainError::PermissionDenied(_) => LookupError::Denied,
                    error => LookupError::Unavailable(error.to_string()),
                })?;
            users.extend(page.items.into_iter().map(|user| user.id.0));
            if users.len() >= limit || page.next_after.is_none() {
                users.truncate(limit);
                return Ok(users);
            }
            after = page.next_after;
        }
    }
}

/// In one process, identity reads who may log in straight from the directory library, in the
/// same shape `AccountService` answers over the network.
pub struct DirectoryAccounts(pub Directory);

impl DirectoryAccounts {
    async fn get(&self, key: AccountKey) -> Result<Option<Account>, AccountsError> {
        match self.0.account(&Actor::Operator, key).await {
            Ok(view) => Ok(view
                .map(praxis_directory::grpc::account_proto)
                .and_then(praxis_identity::accounts::from_proto)),
            Err(DomainError::InvalidArgument(_)) => Ok(None),
            Err(error) => Err(AccountsError(error.to_string())),
        }
    }
}

#[async_trait::async_trait]
impl Accounts for DirectoryAccounts {
    async fn by_email(&self, email: &str) -> Result<Option<Account>, AccountsError> {
        self.get(AccountKey::Email(email.to_owned())).await
    }

    async fn by_id(&self, user_id: &str) -> Result<Option<Account>, AccountsError> {
        self.get(AccountKey::UserId(UserId(user_id.to_owned())))
            .await
    }

    async fn record_login(&self, user_id: &str, at: chrono::DateTime<chrono::Utc>) {
        if let Err(error) = self
            .0
            .record_login(&Actor::Operator, &UserId(user_id.to_owned()), at)
            .await
        {
            tracing::warn!(%error, "last login not recorded");
        }
    }

    async fn inactive(&self, user_ids: &[String]) -> Result<Vec<String>, AccountsError> {
        self.0
            .inactive_accounts(&Actor::Operator, user_ids)
            .await
            .map_err(|error| AccountsError(error.to_string()))
    }

    async fn redeem_invitation(
        &self,
        token: &str,
        spend: bool,
    ) -> Result<Option<String>, AccountsError> {
        self.0
            .redeem_invitation(&Actor::Operator, token, spend, chrono::Utc::now())
            .await
            .map(|user| user.map(|id| id.0))
            .map_err(|error| AccountsError(error.to_string()))
    }

    async fn append_audit(
        &self,
        events: Vec<praxis_proto::audit::v1::Event>,
    ) -> Result<(), DeliveryError> {
        praxis_directory::grpc::audit::append_proto(&self.0, &Actor::Operator, events)
            .await
            .map(|_| ())
            .map_err(|status| DeliveryError::from_status("audit", &status))
    }

    async fn enterprise_domains(
        &self,
        enterprise_id: &str,
    ) -> Result<EnterpriseDomains, AccountsError> {
        self.0
            .enterprise_domains(&Actor::Operator, &EnterpriseId(enterprise_id.to_owned()))
            .await
            .map(|(domains, sso_required)| EnterpriseDomains {
                domains,
                sso_required,
            })
            .map_err(|error| AccountsError(error.to_string()))
    }

    async fn provision(
        &self,
        request: pb::ProvisionUserRequest,
    ) -> Result<Account, ProvisionError> {
        let answer = praxis_directory::grpc::provision_proto(&self.0, &Actor::Operator, request)
            .await
            .map_err(|status| ProvisionError::from_status(&status))?;
        answer
            .account
            .and_then(praxis_identity::accounts::from_proto)
            .ok_or_else(|| ProvisionError::Unavailable("directory answered no account".into()))
    }
}

/// Authz's audit relay delivering to the directory in this process.
pub struct DirectoryAudit(pub Directory);

#[async_trait::async_trait]
impl praxis_authz::audit::AuditSink for DirectoryAudit {
    async fn append(
        &self,
        events: Vec<praxis_proto::audit::v1::Event>,
    ) -> Result<(), DeliveryError> {
        praxis_directory::grpc::audit::append_proto(&self.0, &Actor::Operator, events)
            .await
            .map(|_| ())
            .map_err(|status| DeliveryError::from_status("audit", &status))
    }
}
