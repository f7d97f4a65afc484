//! In one process, authz reads principals and identity reads accounts straight from the directory
//! library: same rules, no network hop.

use praxis_authz::principals::{LookupError, PrincipalSource};
use praxis_directory::Directory;
use praxis_directory::domain::{Actor, DomainError, EnterpriseId, UserId, UserStatus};
use praxis_identity::accounts::{
    Account, Accounts, AccountsError, NetworkRule, PasswordRules, SessionRules,
};
use praxis_proto::directory::v1 as pb;
use praxis_runtime::Caller;

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
}

/// In one process, identity reads who may log in straight from the directory library.
pub struct DirectoryAccounts(pub Directory);

impl DirectoryAccounts {
    async fn account(
        &self,
        user: praxis_directory::domain::User,
    ) -> Result<Option<Account>, AccountsError> {
        use praxis_directory::domain::policy::{OverrideTarget, SessionLimitAction};
        use praxis_directory::domain::roles::BindingFilter;
        let failed = |e: DomainError| AccountsError(e.to_string());
        let store = self.0.store();
        let Some(enterprise) = store
            .enterprise(&user.enterprise_id)
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        let filter = BindingFilter {
            user_id: Some(user.id.clone()),
            ..BindingFilter::default()
        };
        let role_ids: Vec<String> = store
            .bindings(&user.enterprise_id, &filter)
            .await
            .map_err(failed)?
            .into_iter()
            .map(|binding| binding.role_id.0)
            .collect();
        let policy = enterprise.policy;
        let kind = user.kind.as_str().to_owned();
        // The first override naming the user's kind or one of their roles wins.
        let (idle, absolute) = policy
            .session
            .overrides
            .iter()
            .find(|o| match &o.target {
                OverrideTarget::Kind(k) => k.as_str() == kind,
                OverrideTarget::Role(role) => role_ids.contains(&role.0),
            })
            .map_or(
                (
                    policy.session.idle_timeout_minutes,
                    policy.session.absolute_lifetime_hours,
                ),
                |o| (o.idle_timeout_minutes, o.absolute_lifetime_hours),
            );
        let p = &policy.password;
        Ok(Some(Account {
            user_id: user.id.0,
            enterprise_id: user.enterprise_id.0,
            email: user.email,
            kind,
            active: user.status == UserStatus::Active,
            role_ids,
            password: PasswordRules {
                min_length: p.min_length,
                require_uppercase: p.require_uppercase,
                require_lowercase: p.require_lowercase,
                require_digit: p.require_digit,
                require_symbol: p.require_symbol,
                history: p.history,
                max_age_days: p.max_age_days,
            },
            session: SessionRules {
                idle_timeout_minutes: idle,
                absolute_lifetime_hours: absolute,
                max_concurrent_sessions: policy.session.max_concurrent_sessions,
                end_oldest_at_limit: policy.session.at_limit == SessionLimitAction::EndOldest,
                bind_to_ip: policy.session.bind_to_ip,
                bind_to_device: policy.session.bind_to_device,
            },
            two_factor_required: policy.two_factor_required,
            network: policy
                .ip_allowlists
                .into_iter()
                .map(|rule| NetworkRule {
                    kind: rule.kind.map(|k| k.as_str().to_owned()),
                    role_id: rule.role_id.map(|r| r.0),
                    cidrs: rule.cidrs,
                })
                .collect(),
        }))
    }
}

#[async_trait::async_trait]
impl Accounts for DirectoryAccounts {
    async fn by_email(&self, email: &str) -> Result<Option<Account>, AccountsError> {
        match self.0.find_user_by_email(&Actor::Operator, email).await {
            Ok(user) => self.account(user).await,
            Err(DomainError::NotFound(_) | DomainError::InvalidArgument(_)) => Ok(None),
            Err(error) => Err(AccountsError(error.to_string())),
        }
    }

    async fn by_id(&self, user_id: &str) -> Result<Option<Account>, AccountsError> {
        match self.0.store().user(&UserId(user_id.to_owned())).await {
            Ok(Some(user)) if user.status != UserStatus::Deleted => self.account(user).await,
            Ok(_) => Ok(None),
            Err(error) => Err(AccountsError(error.to_string())),
        }
    }

    async fn record_login(&self, user_id: &str, at: chrono::DateTime<chrono::Utc>) {
        if let Err(error) = self
            .0
            .store()
            .record_login(&UserId(user_id.to_owned()), at)
            .await
        {
            tracing::warn!(%error, "last login not recorded");
        }
    }
}
