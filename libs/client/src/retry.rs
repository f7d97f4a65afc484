//! Retries for calls that may safely run twice (reads and decisions): only when the service
//! could not be reached or was not ready, with jittered exponential backoff, within a bound.

use std::future::Future;
use std::time::Duration;
use tonic::{Code, Status};

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all, the first one included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 3,
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl Retry {
    pub fn never() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// Runs `call` until it succeeds, fails for a reason a retry cannot fix, or the attempts
    /// are spent; the last answer is returned.
    pub async fn idempotent<T, F, Fut>(&self, mut call: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut backoff = self.first_backoff;
        let mut attempt = 1;
        loop {
            match call().await {
                Err(status) if attempt < self.attempts && retryable(&status) => {
                    tracing::debug!(code = ?status.code(), attempt, "retrying an idempotent call");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }
}

impl Retry {
    /// [`Retry::idempotent`] for one generated-client call: `call` gets a fresh clone of the
    /// client and of the request each time.
    pub async fn call<C, Req, Res, F, Fut>(
        &self,
        client: &C,
        request: Req,
        call: F,
    ) -> Result<Res, Status>
    where
        C: Clone,
        Req: Clone,
        F: Fn(C, Req) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Res>, Status>>,
    {
        self.idempotent(|| {
            let answer = call(client.clone(), request.clone());
            async move { answer.await.map(tonic::Response::into_inner) }
        })
        .await
    }
}

/// UNAVAILABLE is what tonic reports when it cannot connect, and what a draining or starting
/// server answers; anything else is the service's answer and asking again would not change it.
fn retryable(status: &Status) -> bool {
    status.code() == Code::Unavailable
}

/// Between half and all of `backoff`, so clients that failed together do not retry together.
fn jittered(backoff: Duration) -> Duration {
    use rand::Rng;
    let share = rand::thread_rng().gen_range(0.5..=1.0);
    backoff.mul_f64(share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn unavailable_is_retried_until_an_answer() {
        let tries = AtomicU32::new(0);
        let answer = quick(3)
            .idempotent(|| async {
                if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Status::unavailable("connection refused"))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(answer.ok(), Some(7));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_answers_are_not_retried() {
        let tries = AtomicU32::new(0);
        let answer: Result<(), Status> = quick(4)
            .idempotent(|| async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(Status::unavailable("down"))
            })
            .await;
        assert_eq!(answer.map_err(|s| s.code()), Err(Code::Unavailable));
        assert_eq!(tries.load(Ordering::SeqCst), 4);

        let tries = AtomicU32::new(0);
        let answer: Result<(), Status> = quick(4)
            .idempotent(|| async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(Status::permission_denied("no"))
            })
            .await;
        assert_eq!(answer.map_err(|s| s.code()), Err(Code::PermissionDenied));
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }
}
