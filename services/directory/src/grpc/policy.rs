//! Enterprise policy, proto ↔ domain.

use super::convert::user_kind;
use crate::domain::UserKind;
use crate::domain::policy::*;
use crate::domain::roles::RoleId;
use praxis_proto::directory::v1 as pb;
use praxis_runtime::error::invalid_argument;
use tonic::Status;

fn count(field: &str, value: i32) -> Result<u32, Status> {
    u32::try_from(value).map_err(|_| invalid_argument(field, "must not be negative"))
}

fn small(field: &str, value: i32) -> Result<u16, Status> {
    u16::try_from(value).map_err(|_| invalid_argument(field, "out of range"))
}

fn kind_out(kind: Option<UserKind>) -> i32 {
    kind.map(|k| pb::UserKind::from(k).into())
        .unwrap_or_default()
}

fn kind_in(field: &str, value: i32) -> Result<Option<UserKind>, Status> {
    user_kind(value).map_err(|()| invalid_argument(field, "unknown user kind"))
}

fn role_in(value: &str) -> Option<RoleId> {
    Some(value.trim())
        .filter(|r| !r.is_empty())
        .map(|r| RoleId(r.to_owned()))
}

pub fn to_proto(policy: EnterprisePolicy) -> pb::EnterprisePolicy {
    let p = policy.password;
    let s = policy.session;
    pb::EnterprisePolicy {
        password: Some(pb::PasswordPolicy {
            min_length: i32::from(p.min_length),
            require_uppercase: p.require_uppercase,
            require_lowercase: p.require_lowercase,
            require_digit: p.require_digit,
            require_symbol: p.require_symbol,
            history: i32::from(p.history),
            max_age_days: i32::from(p.max_age_days),
            lockout_threshold: i32::from(p.lockout_threshold),
            lockout_minutes: i32::from(p.lockout_minutes),
        }),
        session: Some(pb::SessionPolicy {
            idle_timeout_minutes: i32::try_from(s.idle_timeout_minutes).unwrap_or(i32::MAX),
            absolute_lifetime_hours: i32::try_from(s.absolute_lifetime_hours).unwrap_or(i32::MAX),
            overrides: s
                .overrides
                .into_iter()
                .map(|o| {
                    let (kind, role_id) = match o.target {
                        OverrideTarget::Kind(kind) => (kind_out(Some(kind)), String::new()),
                        OverrideTarget::Role(role) => (0, role.0),
                    };
                    pb::SessionOverride {
                        kind,
                        role_id,
                        idle_timeout_minutes: i32::try_from(o.idle_timeout_minutes)
                            .unwrap_or(i32::MAX),
                        absolute_lifetime_hours: i32::try_from(o.absolute_lifetime_hours)
                            .unwrap_or(i32::MAX),
                    }
                })
                .collect(),
            max_concurrent_sessions: i32::try_from(s.max_concurrent_sessions).unwrap_or(i32::MAX),
            at_limit: match s.at_limit {
                SessionLimitAction::RejectNew => pb::SessionLimitAction::RejectNew,
                SessionLimitAction::EndOldest => pb::SessionLimitAction::EndOldest,
            }
            .into(),
            bind_to_ip: s.bind_to_ip,
            bind_to_device: s.bind_to_device,
        }),
        two_factor: Some(pb::TwoFactorPolicy {
            required: policy.two_factor_required,
        }),
        inactivity_limit_days: i32::try_from(policy.inactivity_limit_days).unwrap_or(i32::MAX),
        ip_allowlists: policy
            .ip_allowlists
            .into_iter()
            .map(|list| pb::IpAllowlist {
                kind: kind_out(list.kind),
                role_id: list.role_id.map(|r| r.0).unwrap_or_default(),
                cidrs: list.cidrs,
            })
            .collect(),
        audit: Some(audit_out(policy.audit)),
        sso: Some(pb::SsoPolicy {
            required: policy.sso_required,
        }),
        break_glass: Some(pb::BreakGlassPolicy {
            user_ids: policy.break_glass.user_ids.clone(),
            role_id: policy.break_glass.role().to_owned(),
            max_minutes: i32::try_from(policy.break_glass.minutes()).unwrap_or(60),
        }),
    }
}

fn audit_out(audit: AuditPolicy) -> pb::AuditPolicy {
    let a = audit.alerts;
    let int = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
    pb::AuditPolicy {
        retention_days: int(audit.retention_days),
        alerts: Some(pb::AlertRules {
            failed_logins_per_user: int(a.failed_logins_per_user),
            failed_logins_per_ip: int(a.failed_logins_per_ip),
            failed_login_minutes: int(a.failed_login_minutes),
            patient_records_per_user: int(a.patient_records_per_user),
            patient_read_minutes: int(a.patient_read_minutes),
            new_network: a.new_network,
            break_glass: a.break_glass,
        }),
    }
}

/// The parts of `current` named by `paths` (`policy` or `policy.<part>`), taken from `wanted`.
pub fn merge(
    current: EnterprisePolicy,
    wanted: pb::EnterprisePolicy,
    paths: &[&str],
) -> Result<EnterprisePolicy, Status> {
    let whole = paths.contains(&"policy");
    let has = |part: &str| whole || paths.contains(&part);
    let mut policy = current;
    if has("policy.password") {
        let p = wanted.password.unwrap_or_default();
        policy.password = PasswordPolicy {
            min_length: small("enterprise.policy.password.min_length", p.min_length)?,
            require_uppercase: p.require_uppercase,
            require_lowercase: p.require_lowercase,
            require_digit: p.require_digit,
            require_symbol: p.require_symbol,
            history: small("enterprise.policy.password.history", p.history)?,
            max_age_days: small("enterprise.policy.password.max_age_days", p.max_age_days)?,
            // Unset (0) keeps the defaults, so clients that predate these fields change nothing.
            lockout_threshold: match p.lockout_threshold {
                0 => PasswordPolicy::default().lockout_threshold,
                n => small("enterprise.policy.password.lockout_threshold", n)?,
            },
            lockout_minutes: match p.lockout_minutes {
                0 => PasswordPolicy::default().lockout_minutes,
                n => small("enterprise.policy.password.lockout_minutes", n)?,
            },
        };
    }
    if has("policy.session") {
        let s = wanted.session.unwrap_or_default();
        let mut overrides = Vec::new();
        for (index, o) in s.overrides.into_iter().enumerate() {
            let field = format!("enterprise.policy.session.overrides[{index}]");
            let target = match (kind_in(&field, o.kind)?, role_in(&o.role_id)) {
                (Some(kind), None) => OverrideTarget::Kind(kind),
                (None, Some(role)) => OverrideTarget::Role(role),
                _ => return Err(invalid_argument(&field, "one of kind or role_id")),
            };
            overrides.push(SessionOverride {
                target,
                idle_timeout_minutes: count(
                    &format!("{field}.idle_timeout_minutes"),
                    o.idle_timeout_minutes,
                )?,
                absolute_lifetime_hours: count(
                    &format!("{field}.absolute_lifetime_hours"),
                    o.absolute_lifetime_hours,
                )?,
            });
        }
        policy.session = SessionPolicy {
            idle_timeout_minutes: count(
                "enterprise.policy.session.idle_timeout_minutes",
                s.idle_timeout_minutes,
            )?,
            absolute_lifetime_hours: count(
                "enterprise.policy.session.absolute_lifetime_hours",
                s.absolute_lifetime_hours,
            )?,
            overrides,
            max_concurrent_sessions: count(
                "enterprise.policy.session.max_concurrent_sessions",
                s.max_concurrent_sessions,
            )?,
            at_limit: match pb::SessionLimitAction::try_from(s.at_limit) {
                Ok(pb::SessionLimitAction::RejectNew) => SessionLimitAction::RejectNew,
                Ok(pb::SessionLimitAction::EndOldest) => SessionLimitAction::EndOldest,
                _ => {
                    return Err(invalid_argument(
                        "enterprise.policy.session.at_limit",
                        "REJECT_NEW or END_OLDEST",
                    ));
                }
            },
            bind_to_ip: s.bind_to_ip,
            bind_to_device: s.bind_to_device,
        };
    }
    if has("policy.two_factor") {
        policy.two_factor_required = wanted.two_factor.unwrap_or_default().required;
    }
    if has("policy.inactivity_limit_days") {
        policy.inactivity_limit_days = count(
            "enterprise.policy.inactivity_limit_days",
            wanted.inactivity_limit_days,
        )?;
    }
    if has("policy.ip_allowlists") {
        let mut lists = Vec::new();
        for (index, list) in wanted.ip_allowlists.into_iter().enumerate() {
            let field = format!("enterprise.policy.ip_allowlists[{index}].kind");
            lists.push(IpAllowlist {
                kind: kind_in(&field, list.kind)?,
                role_id: role_in(&list.role_id),
                cidrs: list.cidrs,
            });
        }
        policy.ip_allowlists = lists;
    }
    if has("policy.break_glass") {
        let b = wanted.break_glass.unwrap_or_default();
        let minutes = count("enterprise.policy.break_glass.max_minutes", b.max_minutes)?;
        if minutes > crate::domain::policy::BreakGlassPolicy::LONGEST_MINUTES {
            return Err(invalid_argument(
                "enterprise.policy.break_glass.max_minutes",
                "at most 240 minutes",
            ));
        }
        policy.break_glass = crate::domain::policy::BreakGlassPolicy {
            user_ids: b
                .user_ids
                .into_iter()
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty())
                .collect(),
            role_id: b.role_id.trim().to_owned(),
            max_minutes: minutes,
        };
    }
    if has("policy.sso") {
        policy.sso_required = wanted.sso.unwrap_or_default().required;
    }
    if has("policy.audit") {
        let a = wanted.audit.unwrap_or_default();
        let field = |name: &str| format!("enterprise.policy.audit.{name}");
        policy.audit = AuditPolicy {
            retention_days: count(&field("retention_days"), a.retention_days)?,
            alerts: match a.alerts {
                None => AlertRules::default(),
                Some(r) => AlertRules {
                    failed_logins_per_user: count(
                        &field("alerts.failed_logins_per_user"),
                        r.failed_logins_per_user,
                    )?,
                    failed_logins_per_ip: count(
                        &field("alerts.failed_logins_per_ip"),
                        r.failed_logins_per_ip,
                    )?,
                    failed_login_minutes: count(
                        &field("alerts.failed_login_minutes"),
                        r.failed_login_minutes,
                    )?,
                    patient_records_per_user: count(
                        &field("alerts.patient_records_per_user"),
                        r.patient_records_per_user,
                    )?,
                    patient_read_minutes: count(
                        &field("alerts.patient_read_minutes"),
                        r.patient_read_minutes,
                    )?,
                    new_network: r.new_network,
                    break_glass: r.break_glass,
                },
            },
        };
    }
    Ok(policy)
}
