//! AU2: identity writes its audit events to a local outbox in the same transaction as the change
//! (or right after the attempt it records), and this relay delivers them to directory's
//! `AuditService` at least once, oldest first. The trail is idempotent by event id, so a relay
//! that dies between delivering and marking delivers the same events again harmlessly.

use crate::accounts::Accounts;
use crate::store::audit_outbox;
use praxis_proto::audit::v1 as pb;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// Events per delivery.
pub const BATCH: u64 = 200;

/// The wire form of an outbox row. Identity's rows name a user as actor and target (or nobody,
/// for an unknown email), and say `success`, `failure`, `denied` or `refused`.
pub fn event(row: audit_outbox::Model) -> pb::Event {
    let actor = if row.actor.is_empty() {
        pb::Actor {
            service: "identity".to_owned(),
            ..Default::default()
        }
    } else {
        pb::Actor {
            user_id: row.actor.clone(),
            ..Default::default()
        }
    };
    let target = (!row.target.is_empty()).then(|| pb::Target {
        r#type: "user".to_owned(),
        id: row.target.clone(),
    });
    let outcome = match row.outcome.as_str() {
        "success" => pb::Outcome::Success,
        "failure" => pb::Outcome::Failure,
        _ => pb::Outcome::Denied,
    };
    let details = serde_json::from_str::<serde_json::Value>(&row.details)
        .unwrap_or_else(|_| serde_json::json!({"raw": row.details}));
    pb::Event {
        id: row.id,
        enterprise_id: row.enterprise_id,
        time: Some(prost_types::Timestamp {
            seconds: row.at.timestamp(),
            nanos: i32::try_from(row.at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        actor: Some(actor),
        action: row.action,
        target,
        outcome: outcome.into(),
        ip: row
            .ip
            .parse::<std::net::IpAddr>()
            .map(|_| row.ip)
            .unwrap_or_default(),
        user_agent: row.user_agent.chars().take(512).collect(),
        trace_id: row.trace_id,
        details: Some(praxis_proto::json::to_struct(&details)),
        ..Default::default()
    }
}

/// Delivers one batch of undelivered events; returns how many were delivered. Events the trail
/// refuses for good are set aside with the reason (kept, never dropped) so they do not hold
/// back the others.
pub async fn relay_once(db: &DatabaseConnection, trail: &dyn Accounts) -> Result<usize, String> {
    let rows = audit_outbox::Entity::find()
        .filter(audit_outbox::Column::DeliveredAt.is_null())
        .filter(audit_outbox::Column::Refused.eq(""))
        .order_by_asc(audit_outbox::Column::Id)
        .limit(BATCH)
        .all(db)
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(0);
    }
    let batch = rows
        .into_iter()
        .map(|row| (row.id.clone(), event(row)))
        .collect();
    let handed = praxis_runtime::outbox::deliver(batch, |events| trail.append_audit(events))
        .await
        .map_err(|e| e.to_string())?;
    praxis_store::outbox::settle::<audit_outbox::Entity>(
        db,
        praxis_store::outbox::OutboxColumns {
            id: audit_outbox::Column::Id,
            delivered_at: audit_outbox::Column::DeliveredAt,
            refused: audit_outbox::Column::Refused,
        },
        &handed,
        "identity audit",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(handed.delivered.len())
}
