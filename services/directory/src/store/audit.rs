//! D18 and AU1: every directory write appends an event to its enterprise's audit chain in the
//! same transaction. Each event carries the hash of the one before, so altering, removing or
//! reordering any of them breaks the chain where it happened.

use super::entities::audit_event;
use super::{Store, storage};
use crate::domain::*;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};

/// What a write records about itself.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `user:<id>`, `platform:<id>` or `operator`.
    pub actor: String,
    /// e.g. `user.change_kind`.
    pub action: &'static str,
    /// e.g. `user:<id>`.
    pub target: String,
    pub details: serde_json::Value,
    pub time: DateTime<Utc>,
}

/// The first event whose stored hash does not match its content or its predecessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub event_id: String,
    pub problem: &'static str,
}

const GENESIS: &str = "";

fn digest(event: &audit_event::Model) -> String {
    let canonical = [
        event.prev_hash.as_str(),
        event.id.as_str(),
        event.enterprise_id.as_str(),
        &event.seq.to_string(),
        &event.time.to_rfc3339_opts(SecondsFormat::Micros, true),
        event.actor.as_str(),
        event.action.as_str(),
        event.target.as_str(),
        event.outcome.as_str(),
        event.details.as_str(),
    ]
    .join("\u{1f}");
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Appends `entry` as event `seq` of the enterprise's chain. Writers of one enterprise are
/// serialized by the revision update that precedes this (a row lock on PostgreSQL, the write
/// lock on SQLite), and `(enterprise_id, seq)` is unique, so the chain never forks.
pub(super) async fn append(
    txn: &DatabaseTransaction,
    enterprise_id: &EnterpriseId,
    seq: i64,
    entry: &AuditEntry,
) -> Result<(), DomainError> {
    let previous = audit_event::Entity::find()
        .filter(audit_event::Column::EnterpriseId.eq(enterprise_id.as_str()))
        .order_by_desc(audit_event::Column::Seq)
        .limit(1)
        .one(txn)
        .await
        .map_err(storage)?;
    let mut event = audit_event::Model {
        id: uuid::Uuid::now_v7().to_string(),
        enterprise_id: enterprise_id.0.clone(),
        seq,
        // Stored and hashed at microseconds, what every backend keeps.
        time: entry
            .time
            .with_nanosecond(entry.time.timestamp_subsec_micros() * 1000)
            .unwrap_or(entry.time),
        actor: entry.actor.clone(),
        action: entry.action.to_owned(),
        target: entry.target.clone(),
        outcome: "SUCCESS".to_owned(),
        details: entry.details.to_string(),
        prev_hash: previous
            .map(|p| p.hash)
            .unwrap_or_else(|| GENESIS.to_owned()),
        hash: String::new(),
    };
    event.hash = digest(&event);
    let row = audit_event::ActiveModel {
        id: Set(event.id),
        enterprise_id: Set(event.enterprise_id),
        seq: Set(event.seq),
        time: Set(event.time),
        actor: Set(event.actor),
        action: Set(event.action),
        target: Set(event.target),
        outcome: Set(event.outcome),
        details: Set(event.details),
        prev_hash: Set(event.prev_hash),
        hash: Set(event.hash),
    };
    audit_event::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(storage)?;
    Ok(())
}

use chrono::Timelike;

impl Store {
    /// The enterprise's events in order (tests and, later, the audit service).
    pub async fn audit_events(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Vec<audit_event::Model>, DomainError> {
        audit_event::Entity::find()
            .filter(audit_event::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(audit_event::Column::Seq)
            .all(&self.db)
            .await
            .map_err(storage)
    }

    /// Walks the chain; `None` when every link holds.
    pub async fn verify_chain(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Option<BrokenLink>, DomainError> {
        let mut expected_prev = GENESIS.to_owned();
        for (index, event) in self
            .audit_events(enterprise_id)
            .await?
            .into_iter()
            .enumerate()
        {
            let broken = |problem| {
                Some(BrokenLink {
                    seq: event.seq,
                    event_id: event.id.clone(),
                    problem,
                })
            };
            if event.prev_hash != expected_prev {
                return Ok(broken("does not follow the event before it"));
            }
            if event.seq != i64::try_from(index).unwrap_or(i64::MAX) + 1 {
                return Ok(broken("sequence gap"));
            }
            if digest(&event) != event.hash {
                return Ok(broken("content does not match its hash"));
            }
            expected_prev = event.hash.clone();
        }
        Ok(None)
    }
}
