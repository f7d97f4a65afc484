//! Delivery of the directory's outbox (invitations, D13) through the shared `Notifier`.

pub use praxis_runtime::notify::{LogNotifier, MemoryNotifier, Notification, Notifier};

use super::*;

/// Messages one relay pass hands out at most.
pub const OUTBOX_BATCH: u64 = 100;

impl Directory {
    /// Hands pending messages to `notifier`, oldest first; stops at the first failure so order
    /// holds, and returns how many went out.
    pub async fn relay_outbox(
        &self,
        notifier: &dyn Notifier,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, DomainError> {
        let pending = self.store.pending_outbox(OUTBOX_BATCH).await?;
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
