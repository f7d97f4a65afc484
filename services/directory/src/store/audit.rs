//! D18 and AU1: the audit trail. Every directory write appends an event to its enterprise's
//! chain in the same transaction, and other services append theirs through `AuditService`.
//! Each event carries the hash of the one before, so altering, removing or reordering any of
//! them breaks the chain where it happened; the database refuses UPDATE and DELETE on the table
//! (migration m0002) except for what a retention run has archived.

use super::entities::{audit_checkpoint, audit_event, audit_head, audit_retention_grant};
use super::{Store, storage};
use crate::domain::*;
use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use sha2::{Digest, Sha256};

/// What an event records.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The sender's id (UUIDv7) for events from other services, which makes delivery
    /// idempotent; directory's own writes get a new one.
    pub id: Option<String>,
    /// `user:<id>`, `platform:<id>`, `service:<name>`, `service_account:<id>`, `api_key:<id>`,
    /// `system:<job>` or `operator`.
    pub actor: String,
    /// e.g. `user.change_kind`, `login`, `patient.read`.
    pub action: String,
    /// `<type>:<id>`, e.g. `user:<id>`, `patient:<id>`.
    pub target: String,
    /// `SUCCESS`, `FAILURE` or `DENIED`.
    pub outcome: String,
    pub details: serde_json::Value,
    pub time: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
    pub trace_id: String,
}

impl AuditEntry {
    /// A successful write by `actor`.
    pub fn write(
        actor: String,
        action: &str,
        target: String,
        details: serde_json::Value,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            id: None,
            actor,
            action: action.to_owned(),
            target,
            outcome: "SUCCESS".to_owned(),
            details,
            time,
            ip: String::new(),
            user_agent: String::new(),
            trace_id: String::new(),
        }
    }
}

/// The first event whose stored hash does not match its content or its predecessor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub event_id: String,
    pub problem: &'static str,
}

pub const GENESIS: &str = "";

/// The hash of an event: its fields and its predecessor's hash. Fields added after the first
/// release (address, agent, trace) join only when set, so events written before still verify.
pub fn digest(event: &audit_event::Model) -> String {
    let seq = event.seq.to_string();
    let time = event.time.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut canonical = vec![
        event.prev_hash.as_str(),
        event.id.as_str(),
        event.enterprise_id.as_str(),
        &seq,
        &time,
        event.actor.as_str(),
        event.action.as_str(),
        event.target.as_str(),
        event.outcome.as_str(),
        event.details.as_str(),
    ];
    if !(event.ip.is_empty() && event.user_agent.is_empty() && event.trace_id.is_empty()) {
        canonical.extend([
            event.ip.as_str(),
            event.user_agent.as_str(),
            event.trace_id.as_str(),
        ]);
    }
    Sha256::digest(canonical.join("\u{1f}").as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Takes the enterprise's chain head for this transaction (a row lock on PostgreSQL, the write
/// lock on SQLite: the write comes first so SQLite never has to upgrade a read lock), creating
/// it from the chain's last event the first time.
async fn lock_head(
    txn: &DatabaseTransaction,
    enterprise_id: &str,
) -> Result<(i64, String), DomainError> {
    if let Some(head) = touch_head(txn, enterprise_id).await? {
        return Ok(head);
    }
    let last = audit_event::Entity::find()
        .filter(audit_event::Column::EnterpriseId.eq(enterprise_id))
        .order_by_desc(audit_event::Column::Seq)
        .limit(1)
        .one(txn)
        .await
        .map_err(storage)?;
    let (seq, hash) = last.map_or((0, GENESIS.to_owned()), |event| (event.seq, event.hash));
    audit_head::Entity::insert(audit_head::ActiveModel {
        enterprise_id: Set(enterprise_id.to_owned()),
        seq: Set(seq),
        hash: Set(hash),
    })
    .on_conflict(
        OnConflict::column(audit_head::Column::EnterpriseId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await
    .map_err(storage)?;
    touch_head(txn, enterprise_id)
        .await?
        .ok_or(DomainError::NotFound("audit chain"))
}

/// Locks the head row and reads it in one round trip (writers queue behind this lock); `None`
/// when the chain has no head yet.
async fn touch_head(
    txn: &DatabaseTransaction,
    enterprise_id: &str,
) -> Result<Option<(i64, String)>, DomainError> {
    let touched = audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Seq, Expr::col(audit_head::Column::Seq))
        .filter(audit_head::Column::EnterpriseId.eq(enterprise_id))
        .exec_with_returning(txn)
        .await
        .map_err(storage)?;
    Ok(touched.into_iter().next().map(|head| (head.seq, head.hash)))
}

/// Appends `entry` to the enterprise's chain (`""` is the platform's own chain) and returns the
/// stored event.
pub(crate) async fn append(
    txn: &DatabaseTransaction,
    enterprise_id: &str,
    entry: &AuditEntry,
) -> Result<audit_event::Model, DomainError> {
    let head = lock_head(txn, enterprise_id).await?;
    let event = insert_after(txn, enterprise_id, head, entry).await?;
    set_head(txn, enterprise_id, &event).await?;
    Ok(event)
}

/// Stores `entry` as the event after `head` (sequence, hash); the caller holds the chain lock.
async fn insert_after(
    txn: &DatabaseTransaction,
    enterprise_id: &str,
    (seq, prev_hash): (i64, String),
    entry: &AuditEntry,
) -> Result<audit_event::Model, DomainError> {
    let mut event = audit_event::Model {
        id: entry
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        enterprise_id: enterprise_id.to_owned(),
        seq: seq + 1,
        // Stored and hashed at microseconds, what every backend keeps.
        time: entry
            .time
            .with_nanosecond(entry.time.timestamp_subsec_micros() * 1000)
            .unwrap_or(entry.time),
        actor: entry.actor.clone(),
        action: entry.action.clone(),
        target: entry.target.clone(),
        outcome: entry.outcome.clone(),
        details: entry.details.to_string(),
        prev_hash,
        hash: String::new(),
        ip: entry.ip.clone(),
        user_agent: entry.user_agent.clone(),
        trace_id: entry.trace_id.clone(),
    };
    event.hash = digest(&event);
    audit_event::Entity::insert(audit_event::ActiveModel::from(event.clone()))
        .exec_without_returning(txn)
        .await
        .map_err(storage)?;
    Ok(event)
}

async fn set_head(
    txn: &DatabaseTransaction,
    enterprise_id: &str,
    last: &audit_event::Model,
) -> Result<(), DomainError> {
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::Seq, Expr::value(last.seq))
        .col_expr(audit_head::Column::Hash, Expr::value(last.hash.clone()))
        .filter(audit_head::Column::EnterpriseId.eq(enterprise_id))
        .exec(txn)
        .await
        .map_err(storage)?;
    Ok(())
}

/// Appends to one enterprise's chain inside one transaction that holds its lock; the head moves
/// in memory and is written once, at `commit`. Nothing is stored until then.
pub struct AuditBatch {
    txn: DatabaseTransaction,
    enterprise_id: String,
    head: (i64, String),
    last: Option<audit_event::Model>,
    stored: std::collections::HashSet<String>,
}

impl AuditBatch {
    /// Appends `entry` unless an event with its id is stored already; `None` then.
    pub async fn append_new(
        &mut self,
        entry: &AuditEntry,
    ) -> Result<Option<audit_event::Model>, DomainError> {
        if let Some(id) = &entry.id
            && !self.stored.insert(id.clone())
        {
            return Ok(None);
        }
        let event = insert_after(&self.txn, &self.enterprise_id, self.head.clone(), entry).await?;
        self.head = (event.seq, event.hash.clone());
        self.last = Some(event.clone());
        Ok(Some(event))
    }

    /// The batch's transaction, for reads that must see what it appended.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    pub async fn commit(self) -> Result<(), DomainError> {
        if let Some(last) = &self.last {
            set_head(&self.txn, &self.enterprise_id, last).await?;
        }
        self.txn.commit().await.map_err(storage)
    }
}

/// Which events a query wants; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub enterprise_id: String,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub action_prefix: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl EventQuery {
    fn condition(&self) -> Condition {
        let mut condition =
            Condition::all().add(audit_event::Column::EnterpriseId.eq(self.enterprise_id.as_str()));
        if let Some(actor) = &self.actor {
            condition = condition.add(audit_event::Column::Actor.eq(actor.as_str()));
        }
        if let Some(action) = &self.action {
            condition = condition.add(audit_event::Column::Action.eq(action.as_str()));
        }
        if let Some(prefix) = &self.action_prefix {
            condition = condition.add(audit_event::Column::Action.starts_with(prefix.as_str()));
        }
        match (&self.target_type, &self.target_id) {
            (Some(kind), Some(id)) => {
                condition = condition.add(audit_event::Column::Target.eq(format!("{kind}:{id}")));
            }
            (Some(kind), None) => {
                condition =
                    condition.add(audit_event::Column::Target.starts_with(format!("{kind}:")));
            }
            (None, Some(id)) => {
                condition = condition.add(audit_event::Column::Target.ends_with(format!(":{id}")));
            }
            (None, None) => {}
        }
        if let Some(outcome) = &self.outcome {
            condition = condition.add(audit_event::Column::Outcome.eq(outcome.as_str()));
        }
        if let Some(from) = self.from {
            condition = condition.add(audit_event::Column::Time.gte(from));
        }
        if let Some(until) = self.until {
            condition = condition.add(audit_event::Column::Time.lt(until));
        }
        condition
    }
}

impl Store {
    /// Opens an append to one enterprise's chain: a transaction holding its lock, and which of
    /// `ids` are stored already (AU2: at-least-once delivery, stored once).
    pub async fn audit_batch(
        &self,
        enterprise_id: &str,
        ids: Vec<String>,
    ) -> Result<AuditBatch, DomainError> {
        let txn = self.begin().await?;
        let head = lock_head(&txn, enterprise_id).await?;
        let stored = audit_event::Entity::find()
            .select_only()
            .column(audit_event::Column::Id)
            .filter(audit_event::Column::Id.is_in(ids))
            .into_tuple::<String>()
            .all(&txn)
            .await
            .map_err(storage)?
            .into_iter()
            .collect();
        Ok(AuditBatch {
            txn,
            enterprise_id: enterprise_id.to_owned(),
            head,
            last: None,
            stored,
        })
    }

    /// A page of events, newest first, strictly before sequence `before` when given.
    pub async fn list_events(
        &self,
        query: &EventQuery,
        before: Option<i64>,
        limit: u64,
    ) -> Result<Vec<audit_event::Model>, DomainError> {
        let mut condition = query.condition();
        if let Some(before) = before {
            condition = condition.add(audit_event::Column::Seq.lt(before));
        }
        audit_event::Entity::find()
            .filter(condition)
            .order_by_desc(audit_event::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(storage)
    }

    /// A page of events, oldest first, strictly after sequence `after`.
    pub async fn events_after(
        &self,
        query: &EventQuery,
        after: i64,
        limit: u64,
    ) -> Result<Vec<audit_event::Model>, DomainError> {
        audit_event::Entity::find()
            .filter(query.condition().add(audit_event::Column::Seq.gt(after)))
            .order_by_asc(audit_event::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(storage)
    }

    /// The enterprise's events in order (tests).
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

    /// How many events, or distinct targets, match, counting no further than `cap`: the alert
    /// rules only need to know whether a threshold is reached, and a capped count costs the
    /// same however busy the window is.
    pub async fn count_events(
        &self,
        db: &impl ConnectionTrait,
        query: &EventQuery,
        extra: Condition,
        distinct_targets: bool,
        cap: u64,
    ) -> Result<u64, DomainError> {
        let select = audit_event::Entity::find()
            .filter(query.condition().add(extra))
            .select_only();
        let found: Vec<String> = if distinct_targets {
            select
                .column(audit_event::Column::Target)
                .distinct()
                .limit(cap)
                .into_tuple::<String>()
                .all(db)
                .await
        } else {
            select
                .column(audit_event::Column::Id)
                .limit(cap)
                .into_tuple::<String>()
                .all(db)
                .await
        }
        .map_err(storage)?;
        Ok(found.len() as u64)
    }

    /// Walks the chain from its checkpoint (or its start) in pages; `None` when every link
    /// holds. Returns the first broken link and how many events were checked.
    pub async fn verify_chain_from(
        &self,
        enterprise_id: &str,
        start: (i64, String),
    ) -> Result<(Option<BrokenLink>, u64), DomainError> {
        let (mut last_seq, mut expected_prev) = start;
        let mut checked = 0u64;
        let query = EventQuery {
            enterprise_id: enterprise_id.to_owned(),
            ..EventQuery::default()
        };
        loop {
            // Pages by position in the table's order, not by `seq`, so a moved event is seen
            // where it now sits.
            let page = self.events_after(&query, last_seq, 1000).await?;
            if page.is_empty() {
                return Ok((None, checked));
            }
            for event in page {
                let broken = |problem| {
                    Some(BrokenLink {
                        seq: event.seq,
                        event_id: event.id.clone(),
                        problem,
                    })
                };
                if event.seq != last_seq + 1 {
                    return Ok((
                        broken("sequence gap: an event before it is missing"),
                        checked,
                    ));
                }
                if event.prev_hash != expected_prev {
                    return Ok((broken("does not follow the event before it"), checked));
                }
                if digest(&event) != event.hash {
                    return Ok((broken("content does not match its hash"), checked));
                }
                checked += 1;
                last_seq = event.seq;
                expected_prev = event.hash.clone();
            }
        }
    }

    pub async fn audit_checkpoint(
        &self,
        enterprise_id: &str,
    ) -> Result<Option<crate::domain::retention::Checkpoint>, DomainError> {
        Ok(audit_checkpoint::Entity::find_by_id(enterprise_id)
            .one(&self.db)
            .await
            .map_err(storage)?
            .map(|row| crate::domain::retention::Checkpoint {
                enterprise_id: row.enterprise_id,
                seq: row.seq,
                hash: row.hash,
                created_at: row.created_at,
                signature: row.signature,
            }))
    }

    /// The last event (sequence, hash) of the longest run after `start` whose events are all
    /// older than `cutoff`; `None` when there is none.
    pub async fn audit_prefix_before(
        &self,
        enterprise_id: &str,
        start: i64,
        cutoff: DateTime<Utc>,
    ) -> Result<Option<(i64, String)>, DomainError> {
        let in_chain = Condition::all()
            .add(audit_event::Column::EnterpriseId.eq(enterprise_id))
            .add(audit_event::Column::Seq.gt(start));
        let first_recent = audit_event::Entity::find()
            .filter(in_chain.clone().add(audit_event::Column::Time.gte(cutoff)))
            .order_by_asc(audit_event::Column::Seq)
            .limit(1)
            .one(&self.db)
            .await
            .map_err(storage)?;
        let mut last = audit_event::Entity::find().filter(in_chain);
        if let Some(recent) = first_recent {
            last = last.filter(audit_event::Column::Seq.lt(recent.seq));
        }
        Ok(last
            .order_by_desc(audit_event::Column::Seq)
            .limit(1)
            .one(&self.db)
            .await
            .map_err(storage)?
            .map(|event| (event.seq, event.hash)))
    }

    /// Removes the events the checkpoint covers and stores it, in one transaction: the grant
    /// that lets the database guard allow these deletions exists only inside it.
    pub async fn remove_behind_checkpoint(
        &self,
        checkpoint: &crate::domain::retention::Checkpoint,
    ) -> Result<u64, DomainError> {
        let txn = self.begin().await?;
        lock_head(&txn, &checkpoint.enterprise_id).await?;
        audit_retention_grant::Entity::insert(audit_retention_grant::ActiveModel {
            enterprise_id: Set(checkpoint.enterprise_id.clone()),
            up_to_seq: Set(checkpoint.seq),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(storage)?;
        let removed = audit_event::Entity::delete_many()
            .filter(audit_event::Column::EnterpriseId.eq(checkpoint.enterprise_id.as_str()))
            .filter(audit_event::Column::Seq.lte(checkpoint.seq))
            .exec(&txn)
            .await
            .map_err(storage)?
            .rows_affected;
        audit_checkpoint::Entity::delete_by_id(checkpoint.enterprise_id.as_str())
            .exec(&txn)
            .await
            .map_err(storage)?;
        audit_checkpoint::Entity::insert(audit_checkpoint::ActiveModel {
            enterprise_id: Set(checkpoint.enterprise_id.clone()),
            seq: Set(checkpoint.seq),
            hash: Set(checkpoint.hash.clone()),
            created_at: Set(checkpoint.created_at),
            signature: Set(checkpoint.signature.clone()),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(storage)?;
        audit_retention_grant::Entity::delete_by_id(checkpoint.enterprise_id.as_str())
            .exec(&txn)
            .await
            .map_err(storage)?;
        txn.commit().await.map_err(storage)?;
        Ok(removed)
    }

    /// Walks the whole chain; `None` when every link holds.
    pub async fn verify_chain(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<Option<BrokenLink>, DomainError> {
        Ok(self
            .verify_chain_from(enterprise_id.as_str(), (0, GENESIS.to_owned()))
            .await?
            .0)
    }
}
