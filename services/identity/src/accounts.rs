//! Who may log in, as the directory (the system of record for users) says: the user, their
//! enterprise's policy and their roles. Identity owns credentials and sessions; it reads the
//! rest through `Accounts` (in process in the one-process install).

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

#[async_trait::async_trait]
pub trait Accounts: Send + Sync {
    async fn by_email(&self, email: &str) -> Result<Option<Account>, AccountsError>;
    async fn by_id(&self, user_id: &str) -> Result<Option<Account>, AccountsError>;
    /// Records a successful login (D19); failures are logged, not fatal.
    async fn record_login(&self, user_id: &str, at: chrono::DateTime<chrono::Utc>);
}

/// For a standalone identity until it reads accounts from directory over gRPC: every lookup is
/// unavailable, so logins answer UNAVAILABLE rather than anything wrong.
pub struct NoAccounts;

#[async_trait::async_trait]
impl Accounts for NoAccounts {
    async fn by_email(&self, _email: &str) -> Result<Option<Account>, AccountsError> {
        Err(AccountsError(
            "this identity has no account source (run it with directory in one process)".into(),
        ))
    }

    async fn by_id(&self, _user_id: &str) -> Result<Option<Account>, AccountsError> {
        Err(AccountsError(
            "this identity has no account source (run it with directory in one process)".into(),
        ))
    }

    async fn record_login(&self, _user_id: &str, _at: chrono::DateTime<chrono::Utc>) {}
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
