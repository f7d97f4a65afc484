//! Who may log in, as the directory (the system of record for users) says: the user, their
//! enterprise's policy and their roles. Identity owns credentials and sessions; it reads the
//! rest through `Accounts` (in process in the one-process install).

use praxis_proto::directory::v1 as directory;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordRules {
    pub min_length: u16,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    /// How many previous passwords may not be reused.
    pub history: u16,
    /// 0 = passwords do not expire.
    pub max_age_days: u16,
    /// Failed passwords in a row that lock the account, and for how long; 0 = identity's
    /// configured default (a directory that predates these rules sends 0).
    #[serde(default)]
    pub lockout_threshold: u16,
    #[serde(default)]
    pub lockout_minutes: u16,
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            min_length: 12,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_symbol: false,
            history: 5,
            max_age_days: 0,
            lockout_threshold: 0,
            lockout_minutes: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRules {
    pub idle_timeout_minutes: u32,
    pub absolute_lifetime_hours: u32,
    pub max_concurrent_sessions: u32,
    /// At the limit: end the oldest session (true) or refuse the new one.
    pub end_oldest_at_limit: bool,
    pub bind_to_ip: bool,
    pub bind_to_device: bool,
}

impl Default for SessionRules {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 30,
            absolute_lifetime_hours: 12,
            max_concurrent_sessions: 5,
            end_oldest_at_limit: true,
            bind_to_ip: false,
            bind_to_device: false,
        }
    }
}

/// A network rule (I8): applies to everyone, to one kind, or to holders of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRule {
    pub kind: Option<String>,
    pub role_id: Option<String>,
    pub cidrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user_id: String,
    pub enterprise_id: String,
    pub email: String,
    /// Directory kind, e.g. `STAFF`.
    pub kind: String,
    /// Disabled and deleted users cannot log in (D14).
    pub active: bool,
    pub role_ids: Vec<String>,
    pub password: PasswordRules,
    /// The session rules for this user, overrides per kind or role already applied.
    pub session: SessionRules,
    pub two_factor_required: bool,
    pub network: Vec<NetworkRule>,
    /// I6: the enterprise logs its users in only through SSO.
    #[serde(default)]
    pub sso_required: bool,
}

impl Account {
    /// Whether `ip` may be used by this account (I8): every rule that applies to the account
    /// must allow it.
    pub fn network_allows(&self, ip: Option<IpAddr>) -> bool {
        let applicable = self.network.iter().filter(|rule| {
            let kind_ok = rule.kind.as_deref().is_none_or(|k| k == self.kind);
            let role_ok = rule
                .role_id
                .as_deref()
                .is_none_or(|role| self.role_ids.iter().any(|r| r == role));
            kind_ok && role_ok
        });
        for rule in applicable {
            let Some(ip) = ip else { return false };
            if !rule.cidrs.iter().any(|cidr| cidr_contains(cidr, ip)) {
                return false;
            }
        }
        true
    }
}

/// Whether `cidr` (`address/prefix`) contains `ip`; an unreadable rule contains nothing.
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let Some((address, prefix)) = cidr.trim().split_once('/') else {
        return false;
    };
    let (Ok(address), Ok(prefix)) = (address.parse::<IpAddr>(), prefix.parse::<u32>()) else {
        return false;
    };
    let ip = match (address, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    let (bits, wanted, width) = match (address, ip) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if prefix > width {
        return false;
    }
    if prefix == 0 {
        return true;
    }
    let shift = width - prefix;
    (bits >> shift) == (wanted >> shift)
}

#[derive(Debug, thiserror::Error)]
#[error("accounts unavailable: {0}")]
pub struct AccountsError(pub String);

/// What identity needs of an enterprise for SSO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnterpriseDomains {
    pub domains: Vec<String>,
    pub sso_required: bool,
}

/// Why directory did not provision a user (I6).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Directory's rules said no (a domain not the enterprise's, a deleted user, no mapping);
    /// the message says which.
    #[error("{0}")]
    Refused(String),
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

impl ProvisionError {
    pub fn from_status(status: &tonic::Status) -> Self {
        match status.code() {
            tonic::Code::FailedPrecondition
            | tonic::Code::InvalidArgument
            | tonic::Code::NotFound
            | tonic::Code::PermissionDenied
            | tonic::Code::AlreadyExists => {
                let reason = tonic_types::StatusExt::get_error_details(status)
                    .error_info()
                    .map(|info| info.reason.clone())
                    .unwrap_or_default();
                ProvisionError::Refused(if reason.is_empty() {
                    status.message().to_owned()
                } else {
                    format!("{reason}: {}", status.message())
                })
            }
            _ => ProvisionError::Unavailable(format!("{:?} {}", status.code(), status.message())),
        }
    }
}

#[async_trait::async_trait]
pub trait Accounts: Send + Sync {
    async fn by_email(&self, email: &str) -> Result<Option<Account>, AccountsError>;
    async fn by_id(&self, user_id: &str) -> Result<Option<Account>, AccountsError>;
    /// Records a successful login (D19); failures are logged, not fatal.
    async fn record_login(&self, user_id: &str, at: chrono::DateTime<chrono::Utc>);
    /// Of `user_ids`, those who may no longer log in (disabled, deleted, gone). One lookup per
    /// user unless the source can do better.
    async fn inactive(&self, user_ids: &[String]) -> Result<Vec<String>, AccountsError> {
        let mut inactive = Vec::new();
        for user_id in user_ids {
            if !self.by_id(user_id).await?.is_some_and(|a| a.active) {
                inactive.push(user_id.clone());
            }
        }
        Ok(inactive)
    }
    /// The user an activation token belongs to (unexpired, unused); with `spend`, it is used up
    /// and the user becomes active.
    async fn redeem_invitation(
        &self,
        token: &str,
        spend: bool,
    ) -> Result<Option<String>, AccountsError>;
    /// Hands audit events to the directory's trail (AU2); idempotent by event id there, so a
    /// retry after a lost answer stores nothing twice.
    async fn append_audit(
        &self,
        events: Vec<praxis_proto::audit::v1::Event>,
    ) -> Result<(), praxis_runtime::error::DeliveryError>;
    /// The enterprise's allowlisted email domains (D2) and whether it requires SSO (I6).
    async fn enterprise_domains(
        &self,
        enterprise_id: &str,
    ) -> Result<EnterpriseDomains, AccountsError>;
    /// Creates or updates the user an SSO login names (I6); the account as it is afterwards.
    async fn provision(
        &self,
        request: directory::ProvisionUserRequest,
    ) -> Result<Account, ProvisionError>;
}

/// The account in directory's answer; `None` when the user is missing from it.
pub fn from_proto(answer: directory::GetAccountResponse) -> Option<Account> {
    let user = answer.user?;
    let policy = answer.policy.unwrap_or_default();
    let kind = directory::UserKind::try_from(user.kind)
        .map(|k| k.as_str_name().trim_start_matches("USER_KIND_").to_owned())
        .unwrap_or_default();
    let kind_name = |value: i32| {
        directory::UserKind::try_from(value)
            .ok()
            .filter(|k| *k != directory::UserKind::Unspecified)
            .map(|k| k.as_str_name().trim_start_matches("USER_KIND_").to_owned())
    };
    let role_ids = answer.role_ids;
    let password = policy.password.unwrap_or_default();
    let session = policy.session.unwrap_or_default();
    // The first override naming the user's kind or one of their roles wins.
    let (idle, absolute) = session
        .overrides
        .iter()
        .find(|o| {
            kind_name(o.kind).is_some_and(|k| k == kind)
                || (!o.role_id.is_empty() && role_ids.contains(&o.role_id))
        })
        .map_or(
            (
                session.idle_timeout_minutes,
                session.absolute_lifetime_hours,
            ),
            |o| (o.idle_timeout_minutes, o.absolute_lifetime_hours),
        );
    let positive = |value: i32| u32::try_from(value).unwrap_or(0);
    let small = |value: i32| u16::try_from(value).unwrap_or(0);
    Some(Account {
        user_id: user.id,
        enterprise_id: user.enterprise_id,
        email: user.email,
        kind,
        // Invited users have no password until they activate or an admin sets a temporary one.
        active: user.status == i32::from(directory::UserStatus::Active)
            || user.status == i32::from(directory::UserStatus::Invited),
        role_ids: role_ids.clone(),
        password: PasswordRules {
            min_length: small(password.min_length).max(8),
            require_uppercase: password.require_uppercase,
            require_lowercase: password.require_lowercase,
            require_digit: password.require_digit,
            require_symbol: password.require_symbol,
            history: small(password.history),
            max_age_days: small(password.max_age_days),
            lockout_threshold: small(password.lockout_threshold),
            lockout_minutes: small(password.lockout_minutes),
        },
        session: SessionRules {
            idle_timeout_minutes: positive(idle).max(1),
            absolute_lifetime_hours: positive(absolute).max(1),
            max_concurrent_sessions: positive(session.max_concurrent_sessions),
            end_oldest_at_limit: session.at_limit
                != i32::from(directory::SessionLimitAction::RejectNew),
            bind_to_ip: session.bind_to_ip,
            bind_to_device: session.bind_to_device,
        },
        two_factor_required: policy.two_factor.is_some_and(|t| t.required),
        sso_required: policy.sso.is_some_and(|s| s.required),
        network: policy
            .ip_allowlists
            .into_iter()
            .map(|rule| NetworkRule {
                kind: kind_name(rule.kind),
                role_id: Some(rule.role_id).filter(|r| !r.is_empty()),
                cidrs: rule.cidrs,
            })
            .collect(),
    })
}

/// Directory across the network, called with a service token identity signs for itself.
type Traced = tonic::service::interceptor::InterceptedService<
    tonic::transport::Channel,
    praxis_runtime::request_context::PropagateTraceContext,
>;

pub struct GrpcAccounts {
    client: directory::account_service_client::AccountServiceClient<Traced>,
    audit: praxis_proto::audit::v1::audit_service_client::AuditServiceClient<Traced>,
    keys: crate::keys::KeyRing,
    token: tokio::sync::Mutex<Option<(String, chrono::DateTime<chrono::Utc>)>>,
}

/// The subject and kind directory accepts on `AccountService`.
pub const SERVICE_SUBJECT: &str = "service:identity";
pub const SERVICE_KIND: &str = "SERVICE";

impl GrpcAccounts {
    /// Connects lazily: identity starts even while directory is not up yet.
    pub fn new(
        url: &str,
        keys: crate::keys::KeyRing,
        tls: &praxis_runtime::tls::TlsConfig,
    ) -> Result<Self, praxis_runtime::tls::TlsError> {
        let channel = tls
            .endpoint(url)?
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(3))
            .connect_lazy();
        Ok(Self {
            client: directory::account_service_client::AccountServiceClient::with_interceptor(
                channel.clone(),
                praxis_runtime::request_context::PropagateTraceContext,
            ),
            audit:
                praxis_proto::audit::v1::audit_service_client::AuditServiceClient::with_interceptor(
                    channel,
                    praxis_runtime::request_context::PropagateTraceContext,
                ),
            keys,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A service token, renewed when less than half its life is left.
    async fn token(&self) -> Result<String, AccountsError> {
        let now = chrono::Utc::now();
        let mut held = self.token.lock().await;
        if let Some((token, renew_at)) = held.as_ref()
            && *renew_at > now
        {
            return Ok(token.clone());
        }
        let ttl = chrono::Duration::minutes(5);
        let subject = crate::keys::TokenSubject {
            user_id: SERVICE_SUBJECT.to_owned(),
            enterprise_id: String::new(),
            session_id: "service".to_owned(),
            kind: SERVICE_KIND.to_owned(),
            amr: vec!["svc".to_owned()],
            auth_time: now,
        };
        let token = self
            .keys
            .issue(&subject, now, ttl)
            .await
            .map_err(|e| AccountsError(e.to_string()))?;
        *held = Some((token.clone(), now + ttl / 2));
        Ok(token)
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, AccountsError> {
        let mut request = tonic::Request::new(message);
        let value = format!("Bearer {}", self.token().await?)
            .parse()
            .map_err(|_| AccountsError("service token is not a header value".into()))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    async fn get(
        &self,
        key: directory::get_account_request::Key,
    ) -> Result<Option<Account>, AccountsError> {
        let request = self
            .request(directory::GetAccountRequest { key: Some(key) })
            .await?;
        match self.client.clone().get_account(request).await {
            Ok(answer) => Ok(from_proto(answer.into_inner())),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) =>
            {
                Ok(None)
            }
            Err(status) => Err(AccountsError(format!(
                "directory: {:?} {}",
                status.code(),
                status.message()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl Accounts for GrpcAccounts {
    async fn by_email(&self, email: &str) -> Result<Option<Account>, AccountsError> {
        self.get(directory::get_account_request::Key::Email(email.to_owned()))
            .await
    }

    async fn by_id(&self, user_id: &str) -> Result<Option<Account>, AccountsError> {
        self.get(directory::get_account_request::Key::UserId(
            user_id.to_owned(),
        ))
        .await
    }

    async fn record_login(&self, user_id: &str, _at: chrono::DateTime<chrono::Utc>) {
        let request = match self
            .request(directory::RecordLoginRequest {
                user_id: user_id.to_owned(),
            })
            .await
        {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "last login not recorded");
                return;
            }
        };
        if let Err(status) = self.client.clone().record_login(request).await {
            tracing::warn!(code = ?status.code(), "last login not recorded");
        }
    }

    async fn redeem_invitation(
        &self,
        token: &str,
        spend: bool,
    ) -> Result<Option<String>, AccountsError> {
        let request = self
            .request(directory::RedeemInvitationRequest {
                token: token.to_owned(),
                spend,
            })
            .await?;
        match self.client.clone().redeem_invitation(request).await {
            Ok(answer) => Ok(Some(answer.into_inner().user_id)),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::InvalidArgument
                ) =>
            {
                Ok(None)
            }
            Err(status) => Err(AccountsError(format!(
                "directory: {:?} {}",
                status.code(),
                status.message()
            ))),
        }
    }

    async fn append_audit(
        &self,
        events: Vec<praxis_proto::audit::v1::Event>,
    ) -> Result<(), praxis_runtime::error::DeliveryError> {
        let request = self
            .request(praxis_proto::audit::v1::AppendEventsRequest { events })
            .await
            .map_err(|e| praxis_runtime::error::DeliveryError::Unavailable(e.to_string()))?;
        self.audit
            .clone()
            .append_events(request)
            .await
            .map(|_| ())
            .map_err(|status| {
                praxis_runtime::error::DeliveryError::from_status("directory audit", &status)
            })
    }
    async fn enterprise_domains(
        &self,
        enterprise_id: &str,
    ) -> Result<EnterpriseDomains, AccountsError> {
        let request = self
            .request(directory::ListEnterpriseDomainsRequest {
                enterprise_id: enterprise_id.to_owned(),
            })
            .await?;
        self.client
            .clone()
            .list_enterprise_domains(request)
            .await
            .map(|answer| {
                let answer = answer.into_inner();
                EnterpriseDomains {
                    domains: answer.domains,
                    sso_required: answer.sso_required,
                }
            })
            .map_err(|status| {
                AccountsError(format!(
                    "directory: {:?} {}",
                    status.code(),
                    status.message()
                ))
            })
    }

    async fn provision(
        &self,
        request: directory::ProvisionUserRequest,
    ) -> Result<Account, ProvisionError> {
        let request = self
            .request(request)
            .await
            .map_err(|e| ProvisionError::Unavailable(e.to_string()))?;
        let answer = self
            .client
            .clone()
            .provision_user(request)
            .await
            .map_err(|status| ProvisionError::from_status(&status))?
            .into_inner();
        answer
            .account
            .and_then(from_proto)
            .ok_or_else(|| ProvisionError::Unavailable("directory answered no account".into()))
    }
}

/// For tools that only sign (the `praxis token` command): every lookup is unavailable.
pub struct NoAccounts;

#[async_trait::async_trait]
impl Accounts for NoAccounts {
    async fn by_email(&self, _email: &str) -> Result<Option<Account>, AccountsError> {
        Err(AccountsError("this tool has no account source".into()))
    }

    async fn by_id(&self, _user_id: &str) -> Result<Option<Account>, AccountsError> {
        Err(AccountsError("this tool has no account source".into()))
    }

    async fn record_login(&self, _user_id: &str, _at: chrono::DateTime<chrono::Utc>) {}

    async fn redeem_invitation(
        &self,
        _token: &str,
        _spend: bool,
    ) -> Result<Option<String>, AccountsError> {
        Err(AccountsError("this tool has no account source".into()))
    }

    async fn append_audit(
        &self,
        _events: Vec<praxis_proto::audit::v1::Event>,
    ) -> Result<(), praxis_runtime::error::DeliveryError> {
        Err(praxis_runtime::error::DeliveryError::Unavailable(
            "this tool has no audit trail".into(),
        ))
    }
    async fn enterprise_domains(
        &self,
        _enterprise_id: &str,
    ) -> Result<EnterpriseDomains, AccountsError> {
        Err(AccountsError("this tool has no account source".into()))
    }

    async fn provision(
        &self,
        _request: directory::ProvisionUserRequest,
    ) -> Result<Account, ProvisionError> {
        Err(ProvisionError::Unavailable(
            "this tool has no account source".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(kind: &str, roles: &[&str], network: Vec<NetworkRule>) -> Account {
        Account {
            user_id: "u".into(),
            enterprise_id: "e".into(),
            email: "a@b.test".into(),
            kind: kind.into(),
            active: true,
            role_ids: roles.iter().map(|r| (*r).to_owned()).collect(),
            password: PasswordRules::default(),
            session: SessionRules::default(),
            two_factor_required: false,
            network,
            sso_required: false,
        }
    }

    fn rule(kind: Option<&str>, role: Option<&str>, cidrs: &[&str]) -> NetworkRule {
        NetworkRule {
            kind: kind.map(Into::into),
            role_id: role.map(Into::into),
            cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn i8_cidrs_contain_what_they_should() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(cidr_contains("203.0.113.0/24", ip("203.0.113.77")));
        assert!(!cidr_contains("203.0.113.0/24", ip("203.0.114.1")));
        assert!(cidr_contains("203.0.113.0/24", ip("::ffff:203.0.113.9")));
        assert!(cidr_contains("2001:db8::/32", ip("2001:db8:1::1")));
        assert!(!cidr_contains("2001:db8::/32", ip("2001:db9::1")));
        assert!(cidr_contains("0.0.0.0/0", ip("8.8.8.8")));
        assert!(!cidr_contains("garbage", ip("8.8.8.8")));
        assert!(!cidr_contains("10.0.0.0/33", ip("10.0.0.1")));
    }

    #[test]
    fn i8_every_applicable_rule_must_allow() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let office = rule(None, None, &["10.0.0.0/8"]);
        let admins = rule(Some("ENTERPRISE_ADMIN"), None, &["10.1.0.0/16"]);
        let billing = rule(None, Some("builtin-billing"), &["10.2.0.0/16"]);
        let staff = account("STAFF", &[], vec![office.clone(), admins.clone()]);
        assert!(staff.network_allows(ip("10.9.9.9")));
        assert!(!staff.network_allows(ip("192.0.2.1")));
        assert!(!staff.network_allows(None));
        let admin = account("ENTERPRISE_ADMIN", &[], vec![office.clone(), admins]);
        assert!(admin.network_allows(ip("10.1.2.3")));
        assert!(!admin.network_allows(ip("10.9.9.9")));
        let biller = account("STAFF", &["builtin-billing"], vec![office, billing]);
        assert!(biller.network_allows(ip("10.2.0.1")));
        assert!(!biller.network_allows(ip("10.3.0.1")));
        assert!(account("STAFF", &[], vec![]).network_allows(None));
    }
}
