//! Sessions in the cache (I4) in front of the database, which stays the record: checking a
//! session on every request (Introspect, the session RPCs) reads the cache, and every change
//! (opened, refreshed, stepped up, ended) writes the database first and then the cache.
//!
//! An ended session is cached as ended, and a reader fills the cache only where nothing is
//! (`set_if_absent`), so a reader holding a copy from before the end cannot bring the session
//! back. If the cache cannot be written after an end, the entry is deleted; if even that
//! fails, a stale copy lives at most `TTL`.

use super::*;

/// How long a cached session is trusted without a write; the bound on staleness when the
/// cache fails while a session ends.
const TTL: std::time::Duration = std::time::Duration::from_secs(30);

fn key(id: &str) -> String {
    format!("praxis:identity:session:{id}")
}

impl Authenticator {
    /// The session, from the cache when it holds it, else from the database (then cached).
    pub(super) async fn session(&self, id: &str) -> Result<Option<session::Model>, AuthError> {
        match self.cache.get(&key(id)).await {
            Ok(Some(bytes)) => {
                if let Ok(row) = serde_json::from_slice::<session::Model>(&bytes) {
                    return Ok(Some(row));
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "session cache unavailable; reading the database"),
        }
        let row = sessions::get(&self.db, id).await?;
        if let Some(row) = &row
            && let Ok(bytes) = serde_json::to_vec(row)
        {
            // Never over an entry a writer put there meanwhile (an end, a refresh).
            let _ = self.cache.set_if_absent(&key(id), &bytes, TTL).await;
        }
        Ok(row)
    }

    /// After a write to sessions `ids`: the database's rows replace what the cache held.
    pub(super) async fn recache_sessions(&self, ids: &[String]) {
        for id in ids {
            let row = match sessions::get(&self.db, id).await {
                Ok(row) => row,
                Err(error) => {
                    tracing::warn!(%error, "session not re-read for the cache");
                    None
                }
            };
            let written = match row.as_ref().map(serde_json::to_vec) {
                Some(Ok(bytes)) => self.cache.set(&key(id), &bytes, TTL).await.is_ok(),
                _ => false,
            };
            if !written && let Err(error) = self.cache.delete(&key(id)).await {
                tracing::error!(%error, session = %id, "session cache entry may be stale until it expires");
            }
        }
    }

    /// Ends sessions `ids` (those still open) in the database with `note` in the same
    /// transaction, then in the cache.
    pub(crate) async fn end_sessions(
        &self,
        ids: &[String],
        reason: &str,
        now: DateTime<Utc>,
        note: Option<AuditNote>,
    ) -> Result<u64, AuthError> {
        let txn = self.db.begin().await?;
        let ended = sessions::end(&txn, ids, reason, now).await?;
        if let Some(note) = note {
            note.write(&txn).await?;
        }
        txn.commit().await?;
        self.recache_sessions(ids).await;
        Ok(ended)
    }
}
