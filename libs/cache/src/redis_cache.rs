//! Redis and Redis Cluster. Connections are opened lazily and re-opened by the redis crate, so
//! a service starts, and reports NOT_SERVING, while Redis is down, and recovers when it is back.

use crate::{Cache, CacheError, Notice, Subscription};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, FromRedisValue, Script};
use std::time::Duration;
use tokio::sync::{OnceCell, mpsc};

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

enum Target {
    Single(Client),
    /// Pub/sub messages reach every node of a cluster, so one node serves subscriptions.
    Cluster {
        client: Box<ClusterClient>,
        subscriptions: Client,
    },
}

pub struct RedisCache {
    target: Target,
    connection: OnceCell<Connection>,
    increment_script: Script,
    bucket_script: Script,
}

fn unavailable(error: redis::RedisError) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

fn config_error(error: redis::RedisError) -> CacheError {
    CacheError::Config(error.to_string())
}

impl RedisCache {
    pub fn single(url: &str) -> Result<Self, CacheError> {
        Ok(Self::with_target(Target::Single(
            Client::open(url).map_err(config_error)?,
        )))
    }

    pub fn cluster(urls: &[&str]) -> Result<Self, CacheError> {
        let client = ClusterClient::builder(urls.iter().copied())
            .connection_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .build()
            .map_err(config_error)?;
        let first = urls
            .first()
            .ok_or_else(|| CacheError::Config("no cluster nodes".to_owned()))?;
        let subscriptions = Client::open(*first).map_err(config_error)?;
        Ok(Self::with_target(Target::Cluster {
            client: Box::new(client),
            subscriptions,
        }))
    }

    fn with_target(target: Target) -> Self {
        // INCR and the window's expiry in one step: a crash between them must not leave a
        // counter that never resets (a lockout that never ends).
        let increment_script = Script::new(
            "local n = redis.call('INCR', KEYS[1]) \
             if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
             return n",
        );
        // The token bucket of `bucket_step`, atomically on the server and on its clock, so
        // replicas with skewed clocks still share one bucket.
        let bucket_script = Script::new(
            "local cap = tonumber(ARGV[1]) local period = tonumber(ARGV[2]) \
             local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) \
             local s = redis.call('HMGET', KEYS[1], 'tokens', 'at') \
             local tokens = tonumber(s[1]) or cap local at = tonumber(s[2]) or now \
             local per_ms = cap / period \
             tokens = math.min(cap, tokens + math.max(0, now - at) * per_ms) \
             local wait = 0 \
             if tokens >= 1 then tokens = tokens - 1 \
             else wait = math.max(1, math.ceil((1 - tokens) / per_ms)) end \
             redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now) \
             redis.call('PEXPIRE', KEYS[1], period * 2) \
             return wait",
        );
        Self {
            target,
            connection: OnceCell::new(),
            increment_script,
            bucket_script,
        }
    }

    async fn connection(&self) -> Result<Connection, CacheError> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Single(client) => {
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(TIMEOUT))
                            .set_response_timeout(Some(TIMEOUT))
                            .set_number_of_retries(2);
                        ConnectionManager::new_with_config(client.clone(), config)
                            .await
                            .map(Connection::Single)
                            .map_err(unavailable)
                    }
                    Target::Cluster { client, .. } => client
                        .get_async_connection()
                        .await
                        .map(Connection::Cluster)
                        .map_err(unavailable),
                }
            })
            .await?;
        Ok(connection.clone())
    }

    async fn query<T: FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, CacheError> {
        match self.connection().await? {
            Connection::Single(mut connection) => command.query_async(&mut connection).await,
            Connection::Cluster(mut connection) => command.query_async(&mut connection).await,
        }
        .map_err(unavailable)
    }

    fn subscription_client(&self) -> &Client {
        match &self.target {
            Target::Single(client) => client,
            Target::Cluster { subscriptions, .. } => subscriptions,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        self.query(
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    async fn set_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let reply: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("PX")
                    .arg(millis(ttl))
                    .arg("NX"),
            )
            .await?;
        Ok(reply.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.query(redis::cmd("GETDEL").arg(key)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let removed: i64 = self.query(redis::cmd("DEL").arg(key)).await?;
        Ok(removed > 0)
    }

    async fn increment(&self, key: &str, window: Duration) -> Result<i64, CacheError> {
        let mut invocation = self.increment_script.key(key);
        invocation.arg(millis(window));
        match self.connection().await? {
            Connection::Single(mut connection) => invocation.invoke_async(&mut connection).await,
            Connection::Cluster(mut connection) => invocation.invoke_async(&mut connection).await,
        }
        .map_err(unavailable)
    }

    async fn take_token(
        &self,
        key: &str,
        capacity: u32,
        period: Duration,
    ) -> Result<Option<Duration>, CacheError> {
        let mut invocation = self.bucket_script.key(key);
        invocation.arg(capacity.max(1)).arg(millis(period).max(1));
        let wait: u64 = match self.connection().await? {
            Connection::Single(mut connection) => invocation.invoke_async(&mut connection).await,
            Connection::Cluster(mut connection) => invocation.invoke_async(&mut connection).await,
        }
        .map_err(unavailable)?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }

    async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        let _receivers: i64 = self
            .query(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await?;
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<Subscription, CacheError> {
        let client = self.subscription_client().clone();
        // Subscribed before returning, so a message published right after is not missed.
        let mut pubsub = client.get_async_pubsub().await.map_err(unavailable)?;
        pubsub.subscribe(channel).await.map_err(unavailable)?;
        let (sender, notices) = mpsc::channel(1024);
        let channel = channel.to_owned();
        tokio::spawn(async move {
            loop {
                {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        if sender
                            .send(Notice::Message(message.get_payload_bytes().to_vec()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                // The connection dropped: whatever was published meanwhile is lost.
                if sender.send(Notice::Gap).await.is_err() {
                    return;
                }
                pubsub = loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if sender.is_closed() {
                        return;
                    }
                    match client.get_async_pubsub().await {
                        Ok(mut fresh) => {
                            if fresh.subscribe(&channel).await.is_ok() {
                                break fresh;
                            }
                        }
                        Err(error) => tracing::debug!(%error, "redis subscription: reconnecting"),
                    }
                };
            }
        });
        Ok(Subscription::new(notices))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let _pong: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}
