//! One suite, every backend: in-memory always, Redis when `PRAXIS_TEST_REDIS_URL` is set, a
//! Redis Cluster when `PRAXIS_TEST_REDIS_CLUSTER_URLS` is.

use crate::{Cache, Notice, open};
use std::sync::Arc;
use std::time::Duration;

fn backends() -> Vec<(&'static str, Arc<dyn Cache>)> {
    let mut backends: Vec<(&'static str, Arc<dyn Cache>)> =
        vec![("memory", open("memory").expect("memory cache"))];
    if let Some(url) = std::env::var("PRAXIS_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        eprintln!("cache contract: also running on Redis at {url}");
        backends.push(("redis", open(&url).expect("redis cache")));
    }
    // Seed nodes of a Redis Cluster, comma-separated, as `cache_url` takes them.
    if let Some(urls) = std::env::var("PRAXIS_TEST_REDIS_CLUSTER_URLS")
        .ok()
        .filter(|urls| !urls.is_empty())
    {
        eprintln!("cache contract: also running on the Redis Cluster at {urls}");
        backends.push(("redis-cluster", open(&urls).expect("redis cluster cache")));
    }
    backends
}

fn key(name: &str) -> String {
    format!("test:{}:{name}", uuid::Uuid::now_v7())
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    for (backend, cache) in backends() {
        let k = key("ttl");
        cache
            .set(&k, b"v", Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(
            cache.get(&k).await.unwrap().as_deref(),
            Some(&b"v"[..]),
            "{backend}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            cache.get(&k).await.unwrap(),
            None,
            "{backend}: expired value still there"
        );
    }
}

#[tokio::test]
async fn set_if_absent_stores_once_and_take_is_single_use() {
    for (backend, cache) in backends() {
        let k = key("once");
        assert!(
            cache
                .set_if_absent(&k, b"first", Duration::from_secs(30))
                .await
                .unwrap(),
            "{backend}"
        );
        assert!(
            !cache
                .set_if_absent(&k, b"second", Duration::from_secs(30))
                .await
                .unwrap(),
            "{backend}"
        );
        assert_eq!(
            cache.take(&k).await.unwrap().as_deref(),
            Some(&b"first"[..]),
            "{backend}"
        );
        assert_eq!(
            cache.take(&k).await.unwrap(),
            None,
            "{backend}: a taken value was taken twice"
        );
        cache.set(&k, b"x", Duration::from_secs(30)).await.unwrap();
        assert!(cache.delete(&k).await.unwrap(), "{backend}");
        assert!(!cache.delete(&k).await.unwrap(), "{backend}");
    }
}

#[tokio::test]
async fn token_buckets_hold_their_capacity_under_concurrency_and_refill() {
    for (backend, cache) in backends() {
        let k = key("bucket");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    cache
                        .take_token(&k, 5, Duration::from_millis(1000))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut waits = Vec::new();
        for task in tasks {
            waits.push(task.await.unwrap());
        }
        let taken = waits.iter().filter(|w| w.is_none()).count();
        assert_eq!(taken, 5, "{backend}: {waits:?}");
        assert!(
            waits
                .iter()
                .flatten()
                .all(|wait| *wait > Duration::ZERO && *wait <= Duration::from_millis(200)),
            "{backend}: one token comes back every 200 ms: {waits:?}"
        );
        tokio::time::sleep(Duration::from_millis(450)).await;
        let refilled = [
            cache
                .take_token(&k, 5, Duration::from_millis(1000))
                .await
                .unwrap(),
            cache
                .take_token(&k, 5, Duration::from_millis(1000))
                .await
                .unwrap(),
            cache
                .take_token(&k, 5, Duration::from_millis(1000))
                .await
                .unwrap(),
        ];
        assert_eq!(
            refilled.iter().filter(|w| w.is_none()).count(),
            2,
            "{backend}: 450 ms refill two tokens: {refilled:?}"
        );
    }
}

#[tokio::test]
async fn counters_count_atomically_within_their_window() {
    for (backend, cache) in backends() {
        let k = key("counter");
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let cache = cache.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    cache
                        .increment(&k, Duration::from_millis(700))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut counts = Vec::new();
        for task in tasks {
            counts.push(task.await.unwrap());
        }
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=20).collect::<Vec<i64>>(),
            "{backend}: increments were lost or repeated"
        );
        // Later increments do not extend the window: it closes 700 ms after the first.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            cache
                .increment(&k, Duration::from_millis(700))
                .await
                .unwrap(),
            21,
            "{backend}"
        );
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(
            cache
                .increment(&k, Duration::from_millis(700))
                .await
                .unwrap(),
            1,
            "{backend}: window never closed"
        );
    }
}

#[tokio::test]
async fn subscribers_receive_what_is_published() {
    for (backend, cache) in backends() {
        let channel = key("channel");
        let mut first = cache.subscribe(&channel).await.unwrap();
        let mut second = cache.subscribe(&channel).await.unwrap();
        cache.publish(&channel, b"enterprise-1:42").await.unwrap();
        cache
            .publish(&key("other-channel"), b"not for us")
            .await
            .unwrap();
        for subscription in [&mut first, &mut second] {
            let notice = tokio::time::timeout(Duration::from_secs(5), subscription.next())
                .await
                .expect("no message in time");
            assert_eq!(
                notice,
                Some(Notice::Message(b"enterprise-1:42".to_vec())),
                "{backend}"
            );
        }
        let nothing_else = tokio::time::timeout(Duration::from_millis(200), first.next()).await;
        assert!(
            nothing_else.is_err(),
            "{backend}: received a message from another channel"
        );

        // What arrived while the reader was busy is there without waiting, and then nothing.
        for revision in 1..=3 {
            cache
                .publish(&channel, format!("enterprise-1:{revision}").as_bytes())
                .await
                .unwrap();
        }
        let first_one = tokio::time::timeout(Duration::from_secs(5), second.next())
            .await
            .expect("no message in time");
        assert_eq!(first_one, Some(Notice::Message(b"enterprise-1:1".to_vec())));
        let mut waiting = Vec::new();
        for _ in 0..50 {
            while let Some(notice) = second.ready() {
                waiting.push(notice);
            }
            if waiting.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            waiting,
            vec![
                Notice::Message(b"enterprise-1:2".to_vec()),
                Notice::Message(b"enterprise-1:3".to_vec())
            ],
            "{backend}"
        );
        assert_eq!(second.ready(), None, "{backend}");
    }
}

#[tokio::test]
async fn ping_answers_and_bad_urls_are_refused() {
    for (backend, cache) in backends() {
        cache
            .ping()
            .await
            .unwrap_or_else(|error| panic!("{backend}: {error}"));
    }
    assert!(open("memcached://127.0.0.1").is_err());
    assert!(open("").is_err());
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    // Nothing listens on port 1 of loopback.
    let cache = open("redis://127.0.0.1:1").unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), cache.ping())
        .await
        .expect("ping hung");
    assert!(outcome.is_err());
    assert!(cache.get("k").await.is_err());
}
