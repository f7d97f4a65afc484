//! The cache every service uses for shared, expiring state: values with a TTL, single-use
//! values (OIDC state, nonces), atomic counters in a time window (rate limits, lockouts), and
//! publish/subscribe for invalidation. Redis (or Redis Cluster) in production; in-memory for the
//! embedded default and one-process installs.
#![forbid(unsafe_code)]

mod memory;
mod redis_cache;

pub use memory::MemoryCache;
pub use redis_cache::RedisCache;

use futures::future::BoxFuture;
use praxis_runtime::health::Probe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("invalid cache configuration: {0}")]
    Config(String),
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Message(Vec<u8>),
    /// Messages may have been lost (the connection dropped, or the reader fell behind):
    /// whoever caches on the strength of invalidations must drop everything.
    Gap,
}

pub struct Subscription {
    receiver: mpsc::Receiver<Notice>,
}

impl Subscription {
    fn new(receiver: mpsc::Receiver<Notice>) -> Self {
        Self { receiver }
    }

    /// The next notice, or `None` once the cache is gone.
    pub async fn next(&mut self) -> Option<Notice> {
        self.receiver.recv().await
    }

    /// A notice already received, without waiting: a reader that acts once for all the
    /// notices waiting drains them with this after `next`.
    pub fn ready(&mut self) -> Option<Notice> {
        self.receiver.try_recv().ok()
    }
}

#[async_trait::async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;
    /// Stores only if the key is absent; true when stored.
    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError>;
    /// Reads and removes in one step, so a single-use value is used at most once.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    /// True when the key existed.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;
    /// Adds one and returns the count; the first increment opens a window of `window`, after
    /// which the count starts again from zero.
    async fn increment(&self, key: &str, window: Duration) -> Result<i64, CacheError>;
    /// Takes one token from the bucket at `key` (at most `capacity` tokens, refilled at
    /// `capacity` per `period`): `Ok(None)` when taken, `Ok(Some(wait))` when empty, with how
    /// long until the next token. Every replica sharing the cache shares the bucket.
    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        period: Duration,
    ) -> Result<Option<Duration>, CacheError>;
    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError>;
    async fn subscribe(&self, channel: &str) -> Result<Subscription, CacheError>;
    async fn ping(&self) -> Result<(), CacheError>;
}

/// One token-bucket step over the stored state (tokens, last refill in ms), at `now_ms`:
/// the new state and, when no token was left, the wait for the next one. Shared by the
/// in-memory cache and, as Lua, by Redis.
pub(crate) fn bucket_step(
    state: Option<(f64, u64)>,
    capacity: u32,
    period: Duration,
    now_ms: u64,
) -> ((f64, u64), Option<Duration>) {
    let capacity = f64::from(capacity.max(1));
    let per_ms = capacity / (period.as_millis().max(1) as f64);
    let (tokens, at) = state.unwrap_or((capacity, now_ms));
    let tokens = (tokens + now_ms.saturating_sub(at) as f64 * per_ms).min(capacity);
    if tokens >= 1.0 {
        ((tokens - 1.0, now_ms), None)
    } else {
        let wait_ms = ((1.0 - tokens) / per_ms).ceil().max(1.0) as u64;
        ((tokens, now_ms), Some(Duration::from_millis(wait_ms)))
    }
}

/// Opens the cache named by a service's `cache_url`: `memory`, a `redis://` URL, or several
/// comma-separated `redis://` URLs for the seed nodes of a Redis Cluster.
pub fn open(url: &str) -> Result<Arc<dyn Cache>, CacheError> {
    let url = url.trim();
    if url == "memory" {
        return Ok(Arc::new(MemoryCache::new()));
    }
    let nodes: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .collect();
    if nodes
        .iter()
        .any(|node| !node.starts_with("redis://") && !node.starts_with("rediss://"))
    {
        return Err(CacheError::Config(format!(
            "cache_url must be `memory` or redis:// URLs, got {url:?}"
        )));
    }
    match nodes.as_slice() {
        [] => Err(CacheError::Config("cache_url is empty".to_owned())),
        [single] => Ok(Arc::new(RedisCache::single(single)?)),
        several => Ok(Arc::new(RedisCache::cluster(several)?)),
    }
}

/// Health follows the cache: SERVING only while it answers.
pub struct CacheProbe(pub Arc<dyn Cache>);

impl Probe for CacheProbe {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|error| error.to_string()) })
    }
}

#[cfg(test)]
mod contract_tests;
