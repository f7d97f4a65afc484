//! Data-access audit events ("user U read patient P", AU2) sent to directory's AuditService in
//! the background: recording one never waits for the network.
//!
//! Events queue in memory and go out in batches with the service's own credential. A batch that
//! cannot be delivered is retried with backoff until directory takes it; event ids are chosen
//! here, so a batch delivered twice is stored once. When the queue is full, [`AuditSink::record`]
//! refuses at once and the handler decides (the example service then refuses the request:
//! patient data is not served unaudited).

use crate::clients::Praxis;
use praxis_proto::audit::v1 as pb;
use praxis_runtime::auth::Caller;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

const BATCH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit queue is full; the event was not recorded")]
    Full,
    #[error("the audit sender has stopped")]
    Stopped,
}

/// What happened, before it becomes an event.
#[derive(Debug, Clone)]
pub struct Access {
    /// Dotted, e.g. `patient.read`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub outcome: pb::Outcome,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    delivered: AtomicU64,
    rejected: AtomicU64,
}

/// Clone freely; all clones feed the one background sender.
#[derive(Clone)]
pub struct AuditSink {
    queue: mpsc::Sender<pb::Event>,
    counters: Arc<Counters>,
}

impl AuditSink {
    /// Starts the sender on the current runtime. `praxis` must carry a credential directory
    /// accepts for appending (a service credential).
    pub fn start(praxis: Praxis, capacity: usize) -> Self {
        let (queue, events) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(deliver(praxis, events, counters.clone()));
        Self { queue, counters }
    }

    /// Queues the event for `caller`, without waiting.
    pub fn record(&self, caller: &Caller, access: Access) -> Result<(), AuditError> {
        let event = event(caller, access);
        // Counted before it is queued, so the sender never delivers more than was counted.
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.queue.try_send(event).map_err(|error| {
            self.counters.queued.fetch_sub(1, Ordering::Relaxed);
            match error {
                mpsc::error::TrySendError::Full(_) => AuditError::Full,
                mpsc::error::TrySendError::Closed(_) => AuditError::Stopped,
            }
        })
    }

    /// Events queued and not yet stored by directory.
    pub fn pending(&self) -> u64 {
        let counters = &self.counters;
        let done =
            counters.delivered.load(Ordering::Relaxed) + counters.rejected.load(Ordering::Relaxed);
        counters.queued.load(Ordering::Relaxed).saturating_sub(done)
    }

    /// Waits until everything queued is delivered, or `deadline` passes (at shutdown).
    pub async fn flush(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while self.pending() > 0 {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

fn event(caller: &Caller, access: Access) -> pb::Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pb::Event {
        id: uuid::Uuid::now_v7().to_string(),
        enterprise_id: caller.enterprise_id.clone(),
        time: Some(prost_types::Timestamp {
            seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(now.subsec_nanos()).unwrap_or(0),
        }),
        actor: Some(pb::Actor {
            user_id: caller.user_id.clone(),
            ..pb::Actor::default()
        }),
        action: access.action,
        target: Some(pb::Target {
            r#type: access.target_type,
            id: access.target_id,
        }),
        outcome: access.outcome as i32,
        ip: access.ip,
        user_agent: access.user_agent,
        trace_id: praxis_runtime::request_context::current_trace_id(),
        ..pb::Event::default()
    }
}

async fn deliver(praxis: Praxis, mut events: mpsc::Receiver<pb::Event>, counters: Arc<Counters>) {
    let mut batch = Vec::with_capacity(BATCH);
    while events.recv_many(&mut batch, BATCH).await > 0 {
        let count = batch.len() as u64;
        let mut backoff = Duration::from_millis(100);
        loop {
            let request = pb::AppendEventsRequest {
                events: batch.clone(),
            };
            match praxis.audit().append_events(request).await {
                Ok(_) => {
                    counters.delivered.fetch_add(count, Ordering::Relaxed);
                    break;
                }
                // Directory read the batch and refused it: sending it again would not help.
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::InvalidArgument
                            | tonic::Code::PermissionDenied
                            | tonic::Code::Unauthenticated
                    ) =>
                {
                    tracing::error!(
                        events = count,
                        code = ?status.code(),
                        message = status.message(),
                        "directory refused audit events"
                    );
                    counters.rejected.fetch_add(count, Ordering::Relaxed);
                    break;
                }
                Err(status) => {
                    tracing::warn!(
                        events = count,
                        code = ?status.code(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "audit events not delivered yet"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{Credential, Target};
    use crate::clients::Config;

    fn unreachable_praxis() -> Praxis {
        // A port nothing listens on.
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| format!("http://{address}"))
            .unwrap_or_default();
        let target = Target::new(address);
        let config = Config {
            directory: target.clone(),
            identity: target.clone(),
            authz: target,
            retry: crate::retry::Retry::never(),
        };
        Praxis::connect(&config, Credential::none()).unwrap_or_else(|_| unreachable!())
    }

    fn access() -> Access {
        Access {
            action: "patient.read".into(),
            target_type: "patient".into(),
            target_id: "p-1".into(),
            outcome: pb::Outcome::Success,
            ip: String::new(),
            user_agent: String::new(),
        }
    }

    #[tokio::test]
    async fn events_wait_while_directory_is_away_and_a_full_queue_says_so() {
        let sink = AuditSink::start(unreachable_praxis(), 2);
        let caller = Caller {
            user_id: "u-1".into(),
            enterprise_id: "e-1".into(),
            ..Caller::default()
        };
        // The sender takes the first event and keeps retrying it; two more fill the queue.
        let mut accepted = 0;
        let mut refused = 0;
        for _ in 0..6 {
            match sink.record(&caller, access()) {
                Ok(()) => accepted += 1,
                Err(AuditError::Full) => refused += 1,
                Err(AuditError::Stopped) => unreachable!("the sender runs"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused > 0, "a full queue refuses at once");
        assert_eq!(accepted + refused, 6);
        assert_eq!(
            sink.pending(),
            accepted,
            "nothing delivered, nothing dropped"
        );
        assert!(!sink.flush(Duration::from_millis(200)).await);
    }
}
