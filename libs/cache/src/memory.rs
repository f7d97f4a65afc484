//! In-process cache on moka: per-entry expiry, atomic per-key updates, broadcast channels.

use crate::{Cache, CacheError, Notice, Subscription};
use moka::Expiry;
use moka::ops::compute::Op;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

#[derive(Clone)]
struct Entry {
    value: Arc<Vec<u8>>,
    ttl: Duration,
    /// Counters keep the expiry their window opened with; plain sets restart it.
    keeps_expiry: bool,
}

struct EntryExpiry;

impl Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &Entry,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _updated_at: Instant,
        remaining: Option<Duration>,
    ) -> Option<Duration> {
        if entry.keeps_expiry {
            remaining
        } else {
            Some(entry.ttl)
        }
    }
}

pub struct MemoryCache {
    entries: moka::future::Cache<String, Entry>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

const CHANNEL_CAPACITY: usize = 1024;

impl MemoryCache {
    pub fn new() -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .expire_after(EntryExpiry)
                .build(),
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn sender(&self, channel: &str) -> broadcast::Sender<Vec<u8>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        channels
            .entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .clone()
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new()
    }
}

fn plain(value: &[u8], ttl: Duration) -> Entry {
    Entry {
        value: Arc::new(value.to_vec()),
        ttl,
        keeps_expiry: false,
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self
            .entries
            .get(key)
            .await
            .map(|entry| entry.value.to_vec()))
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.entries.insert(key.to_owned(), plain(value, ttl)).await;
        Ok(())
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let entry = self
            .entries
            .entry(key.to_owned())
            .or_insert_with(async { plain(value, ttl) })
            .await;
        Ok(entry.is_fresh())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(self
            .entries
            .remove(key)
            .await
            .map(|entry| entry.value.to_vec()))
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        Ok(self.entries.remove(key).await.is_some())
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<i64, CacheError> {
        let result = self
            .entries
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let count = existing
                    .and_then(|entry| counter_value(&entry.into_value().value))
                    .unwrap_or(0)
                    + 1;
                let entry = Entry {
                    value: Arc::new(count.to_string().into_bytes()),
                    ttl: window,
                    keeps_expiry: true,
                };
                std::future::ready(Op::Put(entry))
            })
            .await;
        let count = result
            .into_entry()
            .and_then(|entry| counter_value(&entry.into_value().value));
        count.ok_or_else(|| CacheError::Unavailable("counter lost".to_owned()))
    }

    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        period: Duration,
    ) -> Result<Option<Duration>, CacheError> {
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let mut wait = None;
        self.entries
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let state = existing.and_then(|entry| {
                    let text = String::from_utf8(entry.into_value().value.to_vec()).ok()?;
                    let (tokens, at) = text.split_once(' ')?;
                    Some((tokens.parse().ok()?, at.parse().ok()?))
                });
                let ((tokens, at), waited) = crate::bucket_step(state, capacity, period, now_ms);
                wait = waited;
                let entry = Entry {
                    value: Arc::new(format!("{tokens} {at}").into_bytes()),
                    ttl: period * 2,
                    keeps_expiry: false,
                };
                std::future::ready(Op::Put(entry))
            })
            .await;
        Ok(wait)
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        // No subscriber is not an error: like Redis, the message just reaches nobody.
        let _ = self.sender(channel).send(message.to_vec());
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, CacheError> {
        let mut receiver = self.sender(channel).subscribe();
        let (sender, notices) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(async move {
            loop {
                let notice = match receiver.recv().await {
                    Ok(message) => Notice::Message(message),
                    Err(broadcast::error::RecvError::Lagged(_)) => Notice::Gap,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if sender.send(notice).await.is_err() {
                    break;
                }
            }
        });
        Ok(Subscription::new(notices))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

fn counter_value(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
