//! Outbox relays hand events over in batches. One event the receiver will never take must not
//! hold back every event behind it: when a batch is refused, its events go one at a time, and
//! those refused on their own are set aside (kept, and reported) while the rest go through.

use crate::error::DeliveryError;
use std::future::Future;

/// What became of a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Handed {
    pub delivered: Vec<String>,
    /// Event id and the receiver's reason.
    pub refused: Vec<(String, String)>,
}

/// Delivers `batch` (event id, event) with `send`; an unavailable receiver is an error and
/// nothing is marked.
pub async fn deliver<E, F, Fut>(batch: Vec<(String, E)>, send: F) -> Result<Handed, DeliveryError>
where
    E: Clone,
    F: Fn(Vec<E>) -> Fut,
    Fut: Future<Output = Result<(), DeliveryError>>,
{
    let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
    match send(batch.iter().map(|(_, event)| event.clone()).collect()).await {
        Ok(()) => {
            return Ok(Handed {
                delivered: ids,
                refused: Vec::new(),
            });
        }
        Err(DeliveryError::Unavailable(why)) => return Err(DeliveryError::Unavailable(why)),
        Err(DeliveryError::Refused(_)) => {}
    }
    let mut handed = Handed::default();
    for (id, event) in batch {
        match send(vec![event]).await {
            Ok(()) => handed.delivered.push(id),
            Err(DeliveryError::Refused(why)) => handed.refused.push((id, why)),
            Err(DeliveryError::Unavailable(why)) if handed.delivered.is_empty() => {
                return Err(DeliveryError::Unavailable(why));
            }
            // Keep what went through; the rest waits for the next round.
            Err(DeliveryError::Unavailable(_)) => break,
        }
    }
    Ok(handed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_refused_event_does_not_hold_back_the_others() {
        let batch: Vec<(String, u32)> = (1..=4).map(|n| (format!("e{n}"), n)).collect();
        let handed = deliver(batch, |events: Vec<u32>| async move {
            if events.contains(&3) {
                Err(DeliveryError::Refused("bad event".into()))
            } else {
                Ok(())
            }
        })
        .await
        .expect("handed");
        assert_eq!(handed.delivered, ["e1", "e2", "e4"]);
        assert_eq!(handed.refused, [("e3".to_owned(), "bad event".to_owned())]);

        let away = deliver(vec![("e1".to_owned(), 1u32)], |_| async {
            Err(DeliveryError::Unavailable("down".into()))
        })
        .await;
        assert!(matches!(away, Err(DeliveryError::Unavailable(_))));
    }
}
