//! Delivery of outbox messages (invitations, D13) to whoever sends email or SMS. The message is
//! written with the change that causes it; a relay hands it over afterwards, at least once.

use super::*;
use std::sync::Mutex;

#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    async fn deliver(&self, notification: &Notification) -> Result<(), String>;
}

/// Records that a message would go out, without its content: an activation link is a
/// credential and never reaches logs. Real delivery comes with identity's notifier.
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        tracing::info!(id = %notification.id, topic = %notification.topic, "notification handed to the log notifier");
        Ok(())
    }
}

/// Keeps what it is given: a test sink.
#[derive(Default)]
pub struct MemoryNotifier {
    delivered: Mutex<Vec<Notification>>,
}

impl MemoryNotifier {
    pub fn delivered(&self) -> Vec<Notification> {
        self.delivered
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Notifier for MemoryNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        let mut list = self
            .delivered
            .lock()
            .map_err(|_| "sink poisoned".to_owned())?;
        list.push(notification.clone());
        Ok(())
    }
}

impl Directory {
    /// Hands pending messages to `notifier`, oldest first; stops at the first failure so order
    /// holds, and returns how many went out.
    pub async fn relay_outbox(
        &self,
        notifier: &dyn Notifier,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<usize, DomainError> {
        let pending = self.store.pending_outbox(100).await?;
        let mut delivered = 0;
        for notification in pending {
            if !self
                .store
                .claim_outbox(&notification.id, now, chrono::Duration::seconds(60))
                .await?
            {
                continue; // another relay has it
            }
            if let Err(error) = notifier.deliver(&notification).await {
                tracing::warn!(id = %notification.id, %error, "notification not delivered; will retry");
                break;
            }
            self.store.mark_delivered(&notification.id, now).await?;
            delivered += 1;
        }
        Ok(delivered)
    }
}
