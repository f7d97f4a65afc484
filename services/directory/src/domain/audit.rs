//! The audit service (AU1–AU4) over the directory's store: who may append and read, the
//! checks on incoming events, and the alert rules evaluated as events arrive.

use super::policy::AlertRules;
use super::users::{IDENTITY_SERVICE_SUBJECT, SERVICE_KIND};
use super::*;
use crate::store::audit::{AuditEntry, BrokenLink, EventQuery};
use crate::store::entities::{audit_event, audit_network};
use chrono::{DateTime, Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, Condition, DatabaseTransaction, EntityTrait, QueryFilter};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An alert (AU4), as `WatchAlerts` streams it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    pub id: String,
    pub enterprise_id: String,
    /// `failed_logins_user`, `failed_logins_ip`, `bulk_patient_access`, `new_network`,
    /// `break_glass`.
    pub rule: String,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub summary: String,
    pub event_id: String,
}

/// An event to append, with the enterprise whose chain takes it (`""`: the platform's).
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub enterprise_id: String,
    pub entry: AuditEntry,
}

pub const MAX_APPEND: usize = 500;

/// Who may read an enterprise's trail: its admins, platform admins, the operator.
fn may_read(actor: &Actor, enterprise_id: &str) -> Result<(), DomainError> {
    match actor {
        Actor::Operator => Ok(()),
        Actor::Caller(caller) if caller.kind == PLATFORM_ADMIN_KIND => Ok(()),
        Actor::Caller(caller)
            if caller.kind == UserKind::EnterpriseAdmin.as_str()
                && caller.enterprise_id == enterprise_id
                && !enterprise_id.is_empty() =>
        {
            Ok(())
        }
        Actor::Caller(_) => Err(DomainError::PermissionDenied(
            "only the enterprise's admins read its audit trail",
        )),
    }
}

/// The subject of authz's service credential (its audit relay).
pub const AUTHZ_SERVICE_SUBJECT: &str = "service:authz";

/// Who may append: identity and authz (their relays, for every enterprise), the operator, and a user for
/// their own enterprise and only as themselves (a downstream service passing the user's token).
fn may_append(actor: &Actor, event: &IncomingEvent) -> Result<(), DomainError> {
    match actor {
        Actor::Operator => Ok(()),
        Actor::Caller(caller)
            if caller.kind == SERVICE_KIND
                && [IDENTITY_SERVICE_SUBJECT, AUTHZ_SERVICE_SUBJECT]
                    .contains(&caller.user_id.as_str()) =>
        {
            Ok(())
        }
        Actor::Caller(_) if reserved(&event.entry.action) => Err(DomainError::PermissionDenied(
            "this action is recorded by Praxis itself, not appended by callers",
        )),
        // A downstream service the platform gave a credential (`auth.service_credentials`)
        // records data access for the users it serves, in any enterprise (AU2).
        Actor::Caller(caller) if caller.kind == SERVICE_KIND => Ok(()),
        Actor::Caller(caller)
            if caller.kind != SERVICE_KIND
                && caller.kind != PLATFORM_ADMIN_KIND
                && caller.enterprise_id == event.enterprise_id
                && event.entry.actor == format!("user:{}", caller.user_id) =>
        {
            Ok(())
        }
        Actor::Caller(_) => Err(DomainError::PermissionDenied(
            "events may be appended only for your own enterprise and as yourself",
        )),
    }
}

/// Actions Praxis's own services record: a downstream caller appending one could forge a login,
/// a policy change or an alert.
fn reserved(action: &str) -> bool {
    const PRAXIS: [&str; 25] = [
        "login",
        "session",
        "password",
        "two_factor",
        "throttle",
        "user",
        "alert",
        "authz",
        "policy",
        "enterprise",
        "email_domain",
        "practice",
        "line",
        "resource",
        "person",
        "role",
        "binding",
        "invitation",
        "access_review",
        "account",
        "audit",
        "system",
        "scim_token",
        "scim",
        "ldap_sync",
    ];
    let first = action.split(['.', ':']).next().unwrap_or_default();
    PRAXIS.contains(&first)
}

/// The network an address belongs to for the new-network rule: its /24 or /64.
pub fn network_of(ip: &str) -> Option<String> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(&v4.to_string()),
            None => {
                let s = v6.segments();
                Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
            }
        },
    }
}

/// What an alert rule found, before it is recorded.
struct Finding {
    rule: &'static str,
    subject: String,
    summary: String,
}

impl Directory {
    /// AU2: appends events from other services, idempotent by id; evaluates the alert rules
    /// on each newly stored one and records what they raise. Returns how many were stored and
    /// the alerts raised.
    pub async fn append_events(
        &self,
        actor: &Actor,
        events: Vec<IncomingEvent>,
        now: DateTime<Utc>,
    ) -> Result<(usize, Vec<Alert>), DomainError> {
        if events.is_empty() || events.len() > MAX_APPEND {
            return Err(DomainError::invalid(
                "events",
                format!("between 1 and {MAX_APPEND} events"),
            ));
        }
        for event in &events {
            may_append(actor, event)?;
        }
        // One enterprise's chain at a time, in a fixed order, so concurrent batches never wait
        // on each other's chain locks in opposite orders.
        let mut by_enterprise: BTreeMap<String, Vec<AuditEntry>> = BTreeMap::new();
        for event in events {
            by_enterprise
                .entry(event.enterprise_id)
                .or_default()
                .push(event.entry);
        }
        let mut stored = 0;
        let mut alerts = Vec::new();
        for (enterprise_id, entries) in by_enterprise {
            let rules = if enterprise_id.is_empty() {
                AlertRules::default()
            } else {
                self.store
                    .enterprise(&EnterpriseId(enterprise_id.clone()))
                    .await?
                    .ok_or(DomainError::NotFound("enterprise"))?
                    .policy
                    .audit
                    .alerts
            };
            let ids = entries.iter().filter_map(|e| e.id.clone()).collect();
            let mut batch = self.store.audit_batch(&enterprise_id, ids).await?;
            for entry in &entries {
                let Some(event) = batch.append_new(entry).await? else {
                    continue;
                };
                stored += 1;
                for finding in findings(&self.store, batch.txn(), &rules, &event).await? {
                    let alert = AuditEntry::write(
                        "system:alerts".to_owned(),
                        "alert.raised",
                        finding.subject.clone(),
                        serde_json::json!({
                            "rule": finding.rule,
                            "summary": finding.summary,
                            "event_id": event.id,
                        }),
                        now,
                    );
                    let Some(recorded) = batch.append_new(&alert).await? else {
                        continue;
                    };
                    alerts.push(Alert {
                        id: recorded.id,
                        enterprise_id: event.enterprise_id.clone(),
                        rule: finding.rule.to_owned(),
                        time: recorded.time,
                        subject: finding.subject,
                        summary: finding.summary,
                        event_id: event.id.clone(),
                    });
                }
            }
            batch.commit().await?;
        }
        for alert in &alerts {
            // Nobody listening is fine: the alert is in the trail.
            let _ = self.alerts.send(alert.clone());
        }
        Ok((stored, alerts))
    }

    /// A page of events, newest first; the token is the sequence to continue below.
    pub async fn list_events(
        &self,
        actor: &Actor,
        query: &EventQuery,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<audit_event::Model>, Option<String>), DomainError> {
        may_read(actor, &query.enterprise_id)?;
        let size = match page_size {
            0 => 100,
            n if (1..=1000).contains(&n) => u64::try_from(n).unwrap_or(100),
            _ => return Err(DomainError::invalid("page_size", "between 1 and 1000")),
        };
        let before = match page_token.trim() {
            "" => None,
            token => Some(
                decode_token(token)
                    .ok_or_else(|| DomainError::invalid("page_token", "not a token we issued"))?,
            ),
        };
        let page = self.store.list_events(query, before, size).await?;
        let next = (page.len() as u64 == size)
            .then(|| page.last().map(|event| encode_token(event.seq)))
            .flatten();
        Ok((page, next))
    }

    /// The checks `ExportEvents` makes before it streams.
    pub fn may_export(&self, actor: &Actor, enterprise_id: &str) -> Result<(), DomainError> {
        may_read(actor, enterprise_id)
    }

    /// Walks the enterprise's chain (AU1) from its retention checkpoint, if any, and reports
    /// the first broken link, how many events held, and the checkpoint it started from.
    pub async fn verify_audit_chain(
        &self,
        actor: &Actor,
        enterprise_id: &str,
    ) -> Result<
        (
            Option<BrokenLink>,
            u64,
            Option<super::retention::Checkpoint>,
        ),
        DomainError,
    > {
        may_read(actor, enterprise_id)?;
        let (seq, hash, checkpoint) = match self.chain_start(enterprise_id).await? {
            Ok(start) => start,
            Err(broken) => return Ok((Some(broken), 0, None)),
        };
        let (broken, checked) = self
            .store
            .verify_chain_from(enterprise_id, (seq, hash))
            .await?;
        Ok((broken, checked, checkpoint))
    }

    /// May `actor` watch the enterprise's alerts.
    pub fn may_watch(&self, actor: &Actor, enterprise_id: &str) -> Result<(), DomainError> {
        may_read(actor, enterprise_id)
    }
}

fn encode_token(seq: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn decode_token(token: &str) -> Option<i64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("seq:")?
        .parse()
        .ok()
}

/// The alert rules (AU4) over one newly stored event, counting within its transaction so the
/// event itself is included.
async fn findings(
    store: &crate::store::Store,
    txn: &DatabaseTransaction,
    rules: &AlertRules,
    event: &audit_event::Model,
) -> Result<Vec<Finding>, DomainError> {
    let mut found = Vec::new();
    let base = EventQuery {
        enterprise_id: event.enterprise_id.clone(),
        ..EventQuery::default()
    };
    if event.action == "login" && event.outcome == "FAILURE" {
        let minutes = rules.failed_login_minutes;
        let failures = EventQuery {
            action: Some("login".to_owned()),
            outcome: Some("FAILURE".to_owned()),
            from: Some(event.time - Duration::minutes(i64::from(minutes))),
            ..base.clone()
        };
        if rules.failed_logins_per_user > 0 && event.actor.starts_with("user:") {
            let mine = EventQuery {
                actor: Some(event.actor.clone()),
                ..failures.clone()
            };
            let cap = u64::from(rules.failed_logins_per_user) + 1;
            let count = store
                .count_events(txn, &mine, Condition::all(), false, cap)
                .await?;
            // Exactly at the threshold: one alert per burst, not one per further failure.
            if count == u64::from(rules.failed_logins_per_user) {
                found.push(Finding {
                    rule: "failed_logins_user",
                    subject: event.actor.clone(),
                    summary: format!(
                        "{count} failed logins for {} within {minutes} minutes",
                        event.actor
                    ),
                });
            }
        }
        if rules.failed_logins_per_ip > 0 && !event.ip.is_empty() {
            let from_here = Condition::all().add(audit_event::Column::Ip.eq(event.ip.as_str()));
            let cap = u64::from(rules.failed_logins_per_ip) + 1;
            let count = store
                .count_events(txn, &failures, from_here, false, cap)
                .await?;
            if count == u64::from(rules.failed_logins_per_ip) {
                found.push(Finding {
                    rule: "failed_logins_ip",
                    subject: format!("ip:{}", event.ip),
                    summary: format!(
                        "{count} failed logins from {} within {minutes} minutes",
                        event.ip
                    ),
                });
            }
        }
    }
    if let Some(finding) = bulk_access(store, txn, rules, event, &base).await? {
        found.push(finding);
    }
    if rules.new_network
        && event.action == "login"
        && event.outcome == "SUCCESS"
        && let Some(user_id) = event.actor.strip_prefix("user:")
        && let Some(network) = network_of(&event.ip)
    {
        let known = audit_network::Entity::find()
            .filter(audit_network::Column::UserId.eq(user_id))
            .all(txn)
            .await
            .map_err(crate::store::storage_error)?;
        if !known.iter().any(|row| row.network == network) {
            audit_network::Entity::insert(audit_network::ActiveModel {
                user_id: Set(user_id.to_owned()),
                network: Set(network.clone()),
                first_seen: Set(event.time),
            })
            .on_conflict(
                OnConflict::columns([
                    audit_network::Column::UserId,
                    audit_network::Column::Network,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await
            .map_err(crate::store::storage_error)?;
            // The first login ever sets the baseline; it is not news.
            if !known.is_empty() {
                found.push(Finding {
                    rule: "new_network",
                    subject: event.actor.clone(),
                    summary: format!("{} logged in from a new network, {network}", event.actor),
                });
            }
        }
    }
    if rules.break_glass && event.action.starts_with("break_glass") {
        found.push(Finding {
            rule: "break_glass",
            subject: event.actor.clone(),
            summary: format!("break-glass use by {} ({})", event.actor, event.action),
        });
    }
    Ok(found)
}

/// More than N distinct patient records read by one user within the window (AU4).
async fn bulk_access(
    store: &crate::store::Store,
    txn: &DatabaseTransaction,
    rules: &AlertRules,
    event: &audit_event::Model,
    base: &EventQuery,
) -> Result<Option<Finding>, DomainError> {
    if rules.patient_records_per_user == 0
        || !event.target.starts_with("patient:")
        || !event.action.ends_with("read")
        || event.outcome != "SUCCESS"
    {
        return Ok(None);
    }
    let minutes = rules.patient_read_minutes;
    let reads = EventQuery {
        actor: Some(event.actor.clone()),
        target_type: Some("patient".to_owned()),
        outcome: Some("SUCCESS".to_owned()),
        from: Some(event.time - Duration::minutes(i64::from(minutes))),
        ..base.clone()
    };
    let reading = Condition::all().add(audit_event::Column::Action.ends_with("read"));
    // A record this user already read within the window changes nothing: one indexed
    // lookup instead of counting the window.
    let again = EventQuery {
        target_type: None,
        target_id: None,
        ..reads.clone()
    };
    let same_record = reading
        .clone()
        .add(audit_event::Column::Target.eq(event.target.as_str()))
        .add(audit_event::Column::Id.ne(event.id.as_str()));
    if store
        .count_events(txn, &again, same_record, false, 1)
        .await?
        > 0
    {
        return Ok(None);
    }
    let cap = u64::from(rules.patient_records_per_user) + 2;
    let distinct = store.count_events(txn, &reads, reading, true, cap).await?;
    // "More than N": the read that makes it N+1 raises it, once per burst.
    if distinct == u64::from(rules.patient_records_per_user) + 1 {
        return Ok(Some(Finding {
            rule: "bulk_patient_access",
            subject: event.actor.clone(),
            summary: format!(
                "{} read {distinct} patient records within {minutes} minutes",
                event.actor
            ),
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(
            network_of("203.0.113.77").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            network_of("2001:db8:1:2:3:4:5:6").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            network_of("::ffff:198.51.100.9").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(network_of("not an address"), None);
    }

    #[test]
    fn callers_cannot_append_what_praxis_records_itself() {
        for action in [
            "login",
            "login.second_factor",
            "alert.raised",
            "policy.put",
            "authz.check",
            "ldap_sync.set",
        ] {
            assert!(reserved(action), "{action}");
        }
        for action in [
            "patient.read",
            "patients.export",
            "break_glass.invoke",
            "chart:open",
        ] {
            assert!(!reserved(action), "{action}");
        }
    }

    fn incoming(enterprise_id: &str, actor: &str, action: &str) -> IncomingEvent {
        IncomingEvent {
            enterprise_id: enterprise_id.to_owned(),
            entry: AuditEntry {
                id: None,
                actor: actor.to_owned(),
                action: action.to_owned(),
                target: "patient:p-1".to_owned(),
                outcome: "SUCCESS".to_owned(),
                details: serde_json::json!({}),
                time: Utc::now(),
                ip: String::new(),
                user_agent: String::new(),
                trace_id: String::new(),
            },
        }
    }

    fn caller(user_id: &str, kind: &str, enterprise_id: &str) -> Actor {
        Actor::Caller(praxis_runtime::Caller {
            user_id: user_id.to_owned(),
            kind: kind.to_owned(),
            enterprise_id: enterprise_id.to_owned(),
            ..praxis_runtime::Caller::default()
        })
    }

    #[test]
    fn au2_downstream_services_append_data_access_for_their_users_only() {
        let patients = caller("service:patients", SERVICE_KIND, "");
        for enterprise in ["e-1", "e-2"] {
            assert!(
                may_append(&patients, &incoming(enterprise, "user:u-1", "patient.read")).is_ok()
            );
        }
        for forged in ["login", "authz.check", "user.update", "alert.raised"] {
            assert!(
                may_append(&patients, &incoming("e-1", "user:u-1", forged)).is_err(),
                "{forged}"
            );
        }
        // A user appends only as themselves, in their enterprise.
        let staff = caller("u-1", "STAFF", "e-1");
        assert!(may_append(&staff, &incoming("e-1", "user:u-1", "patient.read")).is_ok());
        assert!(may_append(&staff, &incoming("e-1", "user:u-2", "patient.read")).is_err());
        assert!(may_append(&staff, &incoming("e-2", "user:u-1", "patient.read")).is_err());
    }

    #[test]
    fn page_tokens_round_trip_and_refuse_forgeries() {
        assert_eq!(decode_token(&encode_token(42)), Some(42));
        assert_eq!(decode_token("garbage"), None);
    }
}
