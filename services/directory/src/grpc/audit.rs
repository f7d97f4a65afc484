//! `praxis.audit.v1.AuditService`: append (idempotent), list, export as a stream, verify the
//! chain, watch alerts.

use super::actor;
use crate::domain::audit::{Alert, IncomingEvent};
use crate::domain::{Actor, Directory};
use crate::store::audit::{AuditEntry, EventQuery};
use crate::store::entities::audit_event;
use praxis_cache::Cache;
use praxis_proto::audit::v1 as pb;
use praxis_proto::audit::v1::audit_service_server::AuditService;
use praxis_runtime::error::{FieldViolations, invalid_argument};
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Where alerts are announced, as JSON `Alert`s, for every replica's watchers.
pub const ALERTS_CHANNEL: &str = "praxis:audit:alerts";

pub struct AuditApi {
    pub directory: Directory,
    pub cache: Arc<dyn Cache>,
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

const MAX_DETAILS: usize = 16 * 1024;
const CHUNK: usize = 256 * 1024;

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn time_in(value: &prost_types::Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(value.seconds, u32::try_from(value.nanos).ok()?)
}

fn outcome_out(stored: &str) -> pb::Outcome {
    match stored {
        "SUCCESS" => pb::Outcome::Success,
        "FAILURE" => pb::Outcome::Failure,
        "DENIED" => pb::Outcome::Denied,
        _ => pb::Outcome::Unspecified,
    }
}

fn outcome_in(value: i32) -> Option<&'static str> {
    match pb::Outcome::try_from(value).ok()? {
        pb::Outcome::Success => Some("SUCCESS"),
        pb::Outcome::Failure => Some("FAILURE"),
        pb::Outcome::Denied => Some("DENIED"),
        pb::Outcome::Unspecified => None,
    }
}

/// The stored form of an actor (`user:<id>`, …); exactly one field must be set.
fn actor_in(actor: &pb::Actor) -> Option<String> {
    let set: Vec<String> = [
        ("user", &actor.user_id),
        ("service_account", &actor.service_account_id),
        ("api_key", &actor.api_key_id),
        ("service", &actor.service),
    ]
    .into_iter()
    .filter(|(_, id)| !id.trim().is_empty())
    .map(|(kind, id)| format!("{kind}:{}", id.trim()))
    .collect();
    match set.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

fn actor_out(stored: &str) -> pb::Actor {
    let mut actor = pb::Actor::default();
    match stored.split_once(':') {
        Some(("user" | "platform", id)) => actor.user_id = id.to_owned(),
        Some(("service_account", id)) => actor.service_account_id = id.to_owned(),
        Some(("api_key", id)) => actor.api_key_id = id.to_owned(),
        Some(("service", name)) => actor.service = name.to_owned(),
        _ => actor.service = stored.to_owned(),
    }
    actor
}

pub fn event_out(event: audit_event::Model) -> pb::Event {
    let details = serde_json::from_str::<serde_json::Value>(&event.details)
        .ok()
        .map(|json| praxis_proto::json::to_struct(&json));
    let target = match event.target.split_once(':') {
        Some((kind, id)) => pb::Target {
            r#type: kind.to_owned(),
            id: id.to_owned(),
        },
        None => pb::Target {
            r#type: String::new(),
            id: event.target.clone(),
        },
    };
    pb::Event {
        id: event.id,
        enterprise_id: event.enterprise_id,
        time: Some(timestamp(event.time)),
        actor: Some(actor_out(&event.actor)),
        action: event.action,
        target: Some(target),
        outcome: outcome_out(&event.outcome).into(),
        ip: event.ip,
        user_agent: event.user_agent,
        trace_id: event.trace_id,
        details,
        sequence: event.seq,
        previous_hash: event.prev_hash,
        hash: event.hash,
    }
}

fn plain(text: &str, max: usize) -> bool {
    text.chars().count() <= max && !text.chars().any(char::is_control)
}

/// An incoming event, checked; problems are reported under `events[i].…`.
fn event_in(
    index: usize,
    event: pb::Event,
    now: chrono::DateTime<chrono::Utc>,
    violations: &mut FieldViolations,
) -> Option<IncomingEvent> {
    let field = |name: &str| format!("events[{index}].{name}");
    let mut ok = true;
    let mut problem = |name: &str, message: &str| {
        violations.add(&field(name), message);
        ok = false;
    };
    if uuid::Uuid::parse_str(&event.id).is_err() {
        problem("id", "a UUID (v7) chosen by the sender");
    }
    let time = event.time.as_ref().and_then(time_in);
    match time {
        None => problem("time", "required"),
        Some(time) if time > now + chrono::Duration::minutes(5) => {
            problem("time", "more than five minutes in the future")
        }
        Some(_) => {}
    }
    let actor = event.actor.as_ref().and_then(actor_in);
    if actor.is_none() {
        problem(
            "actor",
            "exactly one of user_id, service_account_id, api_key_id, service",
        );
    }
    let action_ok = !event.action.is_empty()
        && event.action.len() <= 100
        && event
            .action
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._:-".contains(c));
    if !action_ok {
        problem("action", "1-100 of a-z, 0-9, '.', '_', ':', '-'");
    }
    let target = event.target.unwrap_or_default();
    let kind_ok = target.r#type.len() <= 50
        && target
            .r#type
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !kind_ok || target.r#type.is_empty() != target.id.is_empty() || !plain(&target.id, 200) {
        problem(
            "target",
            "type (a-z, 0-9, _) and id (at most 200 characters) together, or neither",
        );
    }
    let outcome = outcome_in(event.outcome);
    if outcome.is_none() {
        problem("outcome", "SUCCESS, FAILURE or DENIED");
    }
    if !event.ip.is_empty() && event.ip.parse::<std::net::IpAddr>().is_err() {
        problem("ip", "an IP address");
    }
    if !plain(&event.user_agent, 512) {
        problem("user_agent", "at most 512 characters");
    }
    if !event.trace_id.is_empty()
        && (event.trace_id.len() != 32 || !event.trace_id.chars().all(|c| c.is_ascii_hexdigit()))
    {
        problem("trace_id", "32 hex digits (W3C trace id)");
    }
    let details = event
        .details
        .as_ref()
        .map(praxis_proto::json::from_struct)
        .unwrap_or_else(|| serde_json::json!({}));
    if details.to_string().len() > MAX_DETAILS {
        problem("details", "at most 16 KiB as JSON");
    }
    if !plain(&event.enterprise_id, 100) {
        problem("enterprise_id", "an enterprise id");
    }
    if !ok {
        return None;
    }
    Some(IncomingEvent {
        enterprise_id: event.enterprise_id.trim().to_owned(),
        entry: AuditEntry {
            id: Some(event.id.to_lowercase()),
            actor: actor?,
            action: event.action,
            target: if target.r#type.is_empty() {
                String::new()
            } else {
                format!("{}:{}", target.r#type, target.id)
            },
            outcome: outcome?.to_owned(),
            details,
            time: time?,
            ip: event.ip,
            user_agent: event.user_agent,
            trace_id: event.trace_id.to_lowercase(),
        },
    })
}

/// The query a filter asks for; the caller's own enterprise when it names none.
fn query_in(filter: Option<pb::EventFilter>, actor: &Actor) -> Result<EventQuery, Status> {
    let filter = filter.unwrap_or_default();
    let enterprise_id = match (filter.enterprise_id.trim(), actor) {
        ("", Actor::Caller(caller)) => caller.enterprise_id.clone(),
        (id, _) => id.to_owned(),
    };
    let mut query = EventQuery {
        enterprise_id,
        ..EventQuery::default()
    };
    if let Some(wanted) = filter.actor.filter(|a| *a != pb::Actor::default()) {
        query.actor = Some(
            actor_in(&wanted)
                .ok_or_else(|| invalid_argument("filter.actor", "exactly one of its fields"))?,
        );
    }
    match filter.action.trim() {
        "" => {}
        prefix if prefix.ends_with('*') => {
            query.action_prefix = Some(prefix.trim_end_matches('*').to_owned())
        }
        action => query.action = Some(action.to_owned()),
    }
    query.target_type = Some(filter.target_type.trim().to_owned()).filter(|t| !t.is_empty());
    query.target_id = Some(filter.target_id.trim().to_owned()).filter(|t| !t.is_empty());
    if filter.outcome != 0 {
        query.outcome = Some(
            outcome_in(filter.outcome)
                .ok_or_else(|| invalid_argument("filter.outcome", "a known outcome"))?
                .to_owned(),
        );
    }
    query.from = filter.start_time.as_ref().and_then(time_in);
    query.until = filter.end_time.as_ref().and_then(time_in);
    Ok(query)
}

/// One export row: JSON for lines, the same fields flattened for CSV.
pub(crate) fn export_json(event: &audit_event::Model) -> serde_json::Value {
    serde_json::json!({
        "id": event.id,
        "enterprise_id": event.enterprise_id,
        "sequence": event.seq,
        "time": event.time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "actor": event.actor,
        "action": event.action,
        "target": event.target,
        "outcome": event.outcome,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "trace_id": event.trace_id,
        "details": serde_json::from_str::<serde_json::Value>(&event.details).unwrap_or_default(),
        "previous_hash": event.prev_hash,
        "hash": event.hash,
    })
}

const CSV_HEADER: [&str; 14] = [
    "id",
    "enterprise_id",
    "sequence",
    "time",
    "actor",
    "action",
    "target",
    "outcome",
    "ip",
    "user_agent",
    "trace_id",
    "details",
    "previous_hash",
    "hash",
];

fn csv_row(writer: &mut csv::Writer<&mut Vec<u8>>, event: &audit_event::Model) -> csv::Result<()> {
    let seq = event.seq.to_string();
    let time = event
        .time
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    writer.write_record([
        event.id.as_str(),
        event.enterprise_id.as_str(),
        &seq,
        &time,
        event.actor.as_str(),
        event.action.as_str(),
        event.target.as_str(),
        event.outcome.as_str(),
        event.ip.as_str(),
        event.user_agent.as_str(),
        event.trace_id.as_str(),
        event.details.as_str(),
        event.prev_hash.as_str(),
        event.hash.as_str(),
    ])
}

/// Checks and appends events in their wire form; the gRPC method and the one-process install's
/// identity both come here. Returns how many were newly stored.
pub async fn append_proto(
    directory: &Directory,
    actor: &Actor,
    events: Vec<pb::Event>,
) -> Result<usize, Status> {
    let now = chrono::Utc::now();
    if events.is_empty() || events.len() > crate::domain::audit::MAX_APPEND {
        return Err(invalid_argument("events", "between 1 and 500 events"));
    }
    let mut violations = FieldViolations::new();
    let events: Vec<IncomingEvent> = events
        .into_iter()
        .enumerate()
        .filter_map(|(index, event)| event_in(index, event, now, &mut violations))
        .collect();
    violations.check()?;
    let (appended, _alerts) = directory.append_events(actor, events, now).await?;
    Ok(appended)
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn append_events(
        &self,
        request: Request<pb::AppendEventsRequest>,
    ) -> Result<Response<pb::AppendEventsResponse>, Status> {
        let actor = actor(&request)?;
        let appended = append_proto(&self.directory, &actor, request.into_inner().events).await?;
        Ok(Response::new(pb::AppendEventsResponse {
            appended: i32::try_from(appended).unwrap_or(i32::MAX),
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let query = query_in(body.filter, &actor)?;
        let (events, next) = self
            .directory
            .list_events(&actor, &query, body.page_size, &body.page_token)
            .await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(event_out).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    type ExportEventsStream = Streamed<pb::ExportEventsResponse>;

    async fn export_events(
        &self,
        request: Request<pb::ExportEventsRequest>,
    ) -> Result<Response<Self::ExportEventsStream>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let query = query_in(body.filter, &actor)?;
        self.directory.may_export(&actor, &query.enterprise_id)?;
        let csv = match pb::ExportFormat::try_from(body.format) {
            Ok(pb::ExportFormat::Csv) => true,
            Ok(_) => false,
            Err(_) => return Err(invalid_argument("format", "JSON_LINES or CSV")),
        };
        // A page of events at a time and a few chunks in flight: memory stays bounded however
        // long the trail is.
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let store = self.directory.store().clone();
        tokio::spawn(async move {
            let mut buffer = Vec::with_capacity(CHUNK + 64 * 1024);
            if csv {
                let mut writer = csv::Writer::from_writer(&mut buffer);
                let _ = writer.write_record(CSV_HEADER);
                drop(writer);
            }
            let mut after = 0;
            loop {
                let page = match store.events_after(&query, after, 1000).await {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let Some(last) = page.last() else { break };
                after = last.seq;
                for event in &page {
                    if csv {
                        let mut writer = csv::WriterBuilder::new()
                            .has_headers(false)
                            .from_writer(&mut buffer);
                        let _ = csv_row(&mut writer, event);
                        drop(writer);
                    } else {
                        buffer.extend_from_slice(export_json(event).to_string().as_bytes());
                        buffer.push(b'\n');
                    }
                    if buffer.len() >= CHUNK {
                        let chunk =
                            std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK + 64 * 1024));
                        if sender
                            .send(Ok(pb::ExportEventsResponse { chunk }))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if !buffer.is_empty() {
                let _ = sender
                    .send(Ok(pb::ExportEventsResponse { chunk: buffer }))
                    .await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn verify_chain(
        &self,
        request: Request<pb::VerifyChainRequest>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id = match (request.get_ref().enterprise_id.trim(), &actor) {
            ("", Actor::Caller(caller)) => caller.enterprise_id.clone(),
            (id, _) => id.to_owned(),
        };
        let (broken, checked, checkpoint) = self
            .directory
            .verify_audit_chain(&actor, &enterprise_id)
            .await?;
        Ok(Response::new(pb::VerifyChainResponse {
            intact: broken.is_none(),
            events_checked: i64::try_from(checked).unwrap_or(i64::MAX),
            first_broken: broken.map(|link| pb::BrokenLink {
                sequence: link.seq,
                event_id: link.event_id,
                problem: link.problem.to_owned(),
            }),
            checkpoint: checkpoint.map(|c| pb::Checkpoint {
                sequence: c.seq,
                hash: c.hash,
                create_time: Some(timestamp(c.created_at)),
            }),
        }))
    }

    type WatchAlertsStream = Streamed<pb::WatchAlertsResponse>;

    async fn watch_alerts(
        &self,
        request: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let actor = actor(&request)?;
        let enterprise_id = match (request.get_ref().enterprise_id.trim(), &actor) {
            ("", Actor::Caller(caller)) => caller.enterprise_id.clone(),
            (id, _) => id.to_owned(),
        };
        self.directory.may_watch(&actor, &enterprise_id)?;
        let mut subscription = self
            .cache
            .subscribe(ALERTS_CHANNEL)
            .await
            .map_err(|e| Status::unavailable(format!("alerts unavailable: {e}")))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(notice) = subscription.next().await {
                // A gap loses only announcements: every alert is in the trail (ListEvents
                // with action "alert.raised").
                let praxis_cache::Notice::Message(payload) = notice else {
                    continue;
                };
                let Ok(alert) = serde_json::from_slice::<Alert>(&payload) else {
                    continue;
                };
                if alert.enterprise_id != enterprise_id {
                    continue;
                }
                let message = pb::WatchAlertsResponse {
                    alert: Some(pb::Alert {
                        id: alert.id,
                        enterprise_id: alert.enterprise_id,
                        rule: alert.rule,
                        time: Some(timestamp(alert.time)),
                        subject: alert.subject,
                        summary: alert.summary,
                        event_id: alert.event_id,
                    }),
                };
                if sender.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }
}

/// Announces alerts to every replica's watchers; they are recorded as events already, so a
/// lost announcement loses no alert from the trail.
pub async fn publish(cache: &dyn Cache, alerts: &[Alert]) {
    for alert in alerts {
        let Ok(message) = serde_json::to_vec(alert) else {
            continue;
        };
        if let Err(error) = cache.publish(ALERTS_CHANNEL, &message).await {
            tracing::warn!(%error, "alert not announced; it is in the audit trail");
        }
    }
}
