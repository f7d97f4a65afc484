//! The enterprise policy the directory stores and identity enforces: passwords (I1), sessions
//! (I4), 2FA (I3), inactivity (D19) and network allowlists (I8).

use super::roles::RoleId;
use super::*;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordPolicy {
    pub min_length: u16,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_digit: bool,
    pub require_symbol: bool,
    pub history: u16,
    pub max_age_days: u16,
    /// Failed logins in a row that lock the account (I2).
    pub lockout_threshold: u16,
    pub lockout_minutes: u16,
}

impl Default for PasswordPolicy {
    /// NIST SP 800-63B: length over composition rules, no forced expiry; a short history.
    fn default() -> Self {
        Self {
            min_length: 12,
            require_uppercase: false,
            require_lowercase: false,
            require_digit: false,
            require_symbol: false,
            history: 5,
            max_age_days: 0,
            lockout_threshold: 5,
            lockout_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionLimitAction {
    RejectNew,
    EndOldest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverrideTarget {
    Kind(UserKind),
    Role(RoleId),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionOverride {
    pub target: OverrideTarget,
    pub idle_timeout_minutes: u32,
    pub absolute_lifetime_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionPolicy {
    pub idle_timeout_minutes: u32,
    pub absolute_lifetime_hours: u32,
    pub overrides: Vec<SessionOverride>,
    pub max_concurrent_sessions: u32,
    pub at_limit: SessionLimitAction,
    pub bind_to_ip: bool,
    pub bind_to_device: bool,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout_minutes: 30,
            absolute_lifetime_hours: 12,
            overrides: Vec::new(),
            max_concurrent_sessions: 5,
            at_limit: SessionLimitAction::EndOldest,
            bind_to_ip: false,
            bind_to_device: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpAllowlist {
    /// `None` with no role: everyone in the enterprise.
    pub kind: Option<UserKind>,
    pub role_id: Option<RoleId>,
    pub cidrs: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnterprisePolicy {
    pub password: PasswordPolicy,
    pub session: SessionPolicy,
    pub two_factor_required: bool,
    pub inactivity_limit_days: u32,
    pub ip_allowlists: Vec<IpAllowlist>,
    pub audit: AuditPolicy,
    /// I6: users log in only through the enterprise's SSO connections.
    pub sso_required: bool,
    /// A5: who may break the glass, into which role, for how long.
    pub break_glass: BreakGlassPolicy,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakGlassPolicy {
    pub user_ids: Vec<String>,
    /// Empty: `builtin-owner`.
    pub role_id: String,
    /// 0: 60.
    pub max_minutes: u32,
}

impl BreakGlassPolicy {
    pub const LONGEST_MINUTES: u32 = 240;

    pub fn role(&self) -> &str {
        if self.role_id.is_empty() {
            "builtin-owner"
        } else {
            &self.role_id
        }
    }

    pub fn minutes(&self) -> u32 {
        match self.max_minutes {
            0 => 60,
            n => n.min(Self::LONGEST_MINUTES),
        }
    }
}

/// Retention and alert rules of the audit trail (AU3, AU4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditPolicy {
    /// 0 = events are kept.
    pub retention_days: u32,
    pub alerts: AlertRules,
}

/// A count of 0 turns its rule off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertRules {
    pub failed_logins_per_user: u32,
    pub failed_logins_per_ip: u32,
    pub failed_login_minutes: u32,
    pub patient_records_per_user: u32,
    pub patient_read_minutes: u32,
    pub new_network: bool,
    pub break_glass: bool,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            failed_logins_per_user: 5,
            failed_logins_per_ip: 20,
            failed_login_minutes: 15,
            patient_records_per_user: 50,
            patient_read_minutes: 10,
            new_network: true,
            break_glass: true,
        }
    }
}

/// `a.b.c.d/n` or `x:y::/n`, with no host bits set: anything looser is a typo waiting to
/// open a network wider than meant.
pub fn parse_cidr(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix) = text
        .trim()
        .split_once('/')
        .ok_or("address/prefix, e.g. 203.0.113.0/24")?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address} is not an IP address"))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| format!("{prefix} is not a prefix length"))?;
    let (bits, max) = match address {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    if prefix > max {
        return Err(format!("prefix longer than {max}"));
    }
    let host_bits = if prefix == 0 {
        u128::MAX
    } else {
        (1u128 << (128 - u32::from(prefix) - (128 - max) as u32)) - 1
    };
    let host_bits = if matches!(address, IpAddr::V4(_)) {
        host_bits << 96
    } else {
        host_bits
    };
    if prefix < max && bits & host_bits != 0 {
        return Err(format!("{text} has host bits set"));
    }
    Ok((address, prefix))
}

impl EnterprisePolicy {
    /// Every problem, by field path.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, field: &str, message: &str| {
            if !ok {
                problems.push((format!("enterprise.policy.{field}"), message.to_owned()));
            }
        };
        let p = &self.password;
        check(
            (8..=128).contains(&p.min_length),
            "password.min_length",
            "between 8 and 128",
        );
        check(p.history <= 24, "password.history", "at most 24");
        check(
            p.max_age_days <= 3650,
            "password.max_age_days",
            "at most 3650",
        );
        check(
            (1..=100).contains(&p.lockout_threshold),
            "password.lockout_threshold",
            "between 1 and 100",
        );
        check(
            (1..=1440).contains(&p.lockout_minutes),
            "password.lockout_minutes",
            "between 1 and 1440",
        );
        let a = &self.audit;
        check(
            a.retention_days == 0 || (30..=36_500).contains(&a.retention_days),
            "audit.retention_days",
            "0 (keep) or between 30 and 36500",
        );
        check(
            (1..=1440).contains(&a.alerts.failed_login_minutes),
            "audit.alerts.failed_login_minutes",
            "between 1 and 1440",
        );
        check(
            (1..=1440).contains(&a.alerts.patient_read_minutes),
            "audit.alerts.patient_read_minutes",
            "between 1 and 1440",
        );
        check(
            a.alerts.failed_logins_per_user <= 10_000
                && a.alerts.failed_logins_per_ip <= 10_000
                && a.alerts.patient_records_per_user <= 100_000,
            "audit.alerts",
            "counts at most 10000 (100000 patient records)",
        );
        let s = &self.session;
        check(
            (1..=1440).contains(&s.idle_timeout_minutes),
            "session.idle_timeout_minutes",
            "between 1 and 1440",
        );
        check(
            (1..=720).contains(&s.absolute_lifetime_hours),
            "session.absolute_lifetime_hours",
            "between 1 and 720",
        );
        check(
            u64::from(s.absolute_lifetime_hours) * 60 >= u64::from(s.idle_timeout_minutes),
            "session.absolute_lifetime_hours",
            "at least the idle timeout",
        );
        check(
            s.max_concurrent_sessions <= 100,
            "session.max_concurrent_sessions",
            "at most 100 (0 = no limit)",
        );
        for (index, o) in s.overrides.iter().enumerate() {
            check(
                (1..=1440).contains(&o.idle_timeout_minutes),
                &format!("session.overrides[{index}].idle_timeout_minutes"),
                "between 1 and 1440",
            );
            check(
                (1..=720).contains(&o.absolute_lifetime_hours),
                &format!("session.overrides[{index}].absolute_lifetime_hours"),
                "between 1 and 720",
            );
        }
        check(
            self.inactivity_limit_days <= 3650,
            "inactivity_limit_days",
            "at most 3650 (0 = never)",
        );
        for (index, list) in self.ip_allowlists.iter().enumerate() {
            check(
                !list.cidrs.is_empty(),
                &format!("ip_allowlists[{index}].cidrs"),
                "at least one network",
            );
            check(
                !(list.kind.is_some() && list.role_id.is_some()),
                &format!("ip_allowlists[{index}]"),
                "a kind or a role, not both",
            );
            for (at, cidr) in list.cidrs.iter().enumerate() {
                if let Err(problem) = parse_cidr(cidr) {
                    check(
                        false,
                        &format!("ip_allowlists[{index}].cidrs[{at}]"),
                        &problem,
                    );
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i8_cidrs_are_exact_networks() {
        assert!(parse_cidr("203.0.113.0/24").is_ok());
        assert!(parse_cidr("10.0.0.7/32").is_ok());
        assert!(parse_cidr("2001:db8::/32").is_ok());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        for bad in [
            "203.0.113.7/24",
            "203.0.113.0",
            "203.0.113.0/33",
            "2001:db8::1/32",
            "nonsense/8",
            "10.0.0.0/x",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_all_reported() {
        assert!(EnterprisePolicy::default().problems().is_empty());
        let mut policy = EnterprisePolicy::default();
        policy.password.min_length = 4;
        policy.session.idle_timeout_minutes = 0;
        policy.ip_allowlists.push(IpAllowlist {
            kind: None,
            role_id: None,
            cidrs: vec!["1.2.3.4/8".into()],
        });
        let fields: Vec<String> = policy
            .problems()
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            [
                "enterprise.policy.password.min_length",
                "enterprise.policy.session.idle_timeout_minutes",
                "enterprise.policy.ip_allowlists[0].cidrs[0]"
            ]
        );
    }
}
