//! Email and SMS go out through one interface. Services write messages to an outbox in the same
//! transaction as the change that causes them, and a relay hands them to a `Notifier` afterwards,
//! at least once, so nothing is lost if the process dies between commit and send.

use std::sync::Mutex;

/// A message waiting in an outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub enterprise_id: String,
    /// e.g. `user.invitation`, `password.reset`
    pub topic: String,
    pub recipient: String,
    /// JSON: what the template for the topic needs (links, codes).
    pub payload: String,
}

#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    async fn deliver(&self, notification: &Notification) -> Result<(), String>;
}

/// Records that a message would go out, without its content: links and codes are credentials
/// and never reach logs.
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
