//! AU2 for authz: custom-policy changes (in the change's transaction) and denied Checks are
//! written to a local outbox, and a relay hands them to the directory's audit trail at least
//! once; the trail stores each event id once.

use praxis_proto::audit::v1 as pb;
use praxis_runtime::error::DeliveryError;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub at: DateTimeUtc,
        pub enterprise_id: String,
        /// The caller's user id.
        pub actor: String,
        pub action: String,
        /// `<type>:<id>`.
        pub target: String,
        /// `SUCCESS` or `DENIED`.
        pub outcome: String,
        pub ip: String,
        pub trace_id: String,
        /// JSON object.
        pub details: String,
        pub delivered_at: Option<DateTimeUtc>,
        /// Why the audit trail refused this event for good; empty while it is deliverable.
        pub refused: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What authz records.
#[derive(Debug, Clone)]
pub struct Record {
    pub enterprise_id: String,
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub outcome: &'static str,
    pub ip: Option<String>,
    pub details: serde_json::Value,
}

/// Writes `record` to the outbox, in `db`'s transaction when it is one.
pub async fn write<C: ConnectionTrait>(db: &C, record: Record) -> Result<(), DbErr> {
    outbox::Entity::insert(row(record))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Writes `records` to the outbox in one statement: all of them or none.
pub async fn write_all<C: ConnectionTrait>(db: &C, records: Vec<Record>) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    outbox::Entity::insert_many(records.into_iter().map(row))
        .exec_without_returning(db)
        .await?;
    Ok(())
}

fn row(record: Record) -> outbox::ActiveModel {
    let ip = record
        .ip
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        .unwrap_or_default();
    outbox::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        at: Set(chrono::Utc::now()),
        enterprise_id: Set(record.enterprise_id),
        actor: Set(record.actor),
        action: Set(record.action.to_owned()),
        target: Set(record.target),
        outcome: Set(record.outcome.to_owned()),
        ip: Set(ip),
        trace_id: Set(praxis_runtime::request_context::current_trace_id()),
        details: Set(record.details.to_string()),
        delivered_at: Set(None),
        refused: Set(String::new()),
    }
}

/// Where the relay delivers: the directory's `AuditService` (in process in the one-process
/// install).
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    async fn append(&self, events: Vec<pb::Event>) -> Result<(), DeliveryError>;
}

/// The directory's `AuditService` over gRPC, called with authz's service credential.
pub struct GrpcAuditSink {
    client: pb::audit_service_client::AuditServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            praxis_runtime::request_context::PropagateTraceContext,
        >,
    >,
    authorization: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl GrpcAuditSink {
    /// Connects lazily: authz starts while directory is not up yet.
    pub fn new(
        directory_url: &str,
        credential: &praxis_runtime::config::ServiceSecret,
        tls: &praxis_runtime::tls::TlsConfig,
    ) -> Result<Self, String> {
        let channel = tls
            .endpoint(directory_url)
            .map_err(|e| format!("directory_url: {e}"))?
            .connect_timeout(std::time::Duration::from_secs(2))
            .timeout(std::time::Duration::from_secs(10))
            .connect_lazy();
        let authorization = format!("Bearer {}", credential.0)
            .parse()
            .map_err(|_| "audit_credential is not a header value".to_owned())?;
        Ok(Self {
            client: pb::audit_service_client::AuditServiceClient::with_interceptor(
                channel,
                praxis_runtime::request_context::PropagateTraceContext,
            ),
            authorization,
        })
    }
}

#[async_trait::async_trait]
impl AuditSink for GrpcAuditSink {
    async fn append(&self, events: Vec<pb::Event>) -> Result<(), DeliveryError> {
        let mut request = tonic::Request::new(pb::AppendEventsRequest { events });
        request
            .metadata_mut()
            .insert("authorization", self.authorization.clone());
        self.client
            .clone()
            .append_events(request)
            .await
            .map(|_| ())
            .map_err(|status| DeliveryError::from_status("directory audit", &status))
    }
}

fn event(row: outbox::Model) -> pb::Event {
    let (kind, id) = row.target.split_once(':').unwrap_or(("", ""));
    let details = serde_json::from_str::<serde_json::Value>(&row.details)
        .unwrap_or_else(|_| serde_json::json!({"raw": row.details}));
    pb::Event {
        id: row.id,
        enterprise_id: row.enterprise_id,
        time: Some(prost_types::Timestamp {
            seconds: row.at.timestamp(),
            nanos: i32::try_from(row.at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        actor: Some(pb::Actor {
            user_id: row.actor,
            ..Default::default()
        }),
        action: row.action,
        target: (!kind.is_empty() && !id.is_empty()).then(|| pb::Target {
            r#type: kind.to_owned(),
            id: id.to_owned(),
        }),
        outcome: if row.outcome == "SUCCESS" {
            pb::Outcome::Success
        } else {
            pb::Outcome::Denied
        }
        .into(),
        ip: row.ip,
        trace_id: row.trace_id,
        details: Some(praxis_proto::json::to_struct(&details)),
        ..Default::default()
    }
}

/// Delivers one batch of undelivered events, oldest first; returns how many. Events the trail
/// refuses for good are set aside with the reason (kept) so they do not hold back the others.
pub async fn relay_once(db: &DatabaseConnection, sink: &dyn AuditSink) -> Result<usize, String> {
    let rows = outbox::Entity::find()
        .filter(outbox::Column::DeliveredAt.is_null())
        .filter(outbox::Column::Refused.eq(""))
        .order_by_asc(outbox::Column::Id)
        .limit(200)
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
    let handed = praxis_runtime::outbox::deliver(batch, |events| sink.append(events))
        .await
        .map_err(|e| e.to_string())?;
    praxis_store::outbox::settle::<outbox::Entity>(
        db,
        praxis_store::outbox::OutboxColumns {
            id: outbox::Column::Id,
            delivered_at: outbox::Column::DeliveredAt,
            refused: outbox::Column::Refused,
        },
        &handed,
        "authz audit",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(handed.delivered.len())
}
