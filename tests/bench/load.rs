//! The two ways of putting load on a server, both bounded by time and by count.
//!
//! Closed loop: `concurrency` callers each send the next request when the previous one answered,
//! so the server sets the pace (throughput at a given number of calls in flight). Open loop:
//! requests leave on a fixed schedule whatever the server does, and each latency is counted from
//! when its request was due, so a stalled server shows up as latency instead of as fewer
//! requests (no coordinated omission).

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tonic::Status;

/// One request of a scenario. The argument numbers the request (scenarios use it to spread over
/// connections and subjects). `Ok(Some(d))` records `d` instead of the whole call, for scenarios
/// whose call does untimed preparation first.
pub type Call =
    Arc<dyn Fn(u64) -> BoxFuture<'static, Result<Option<Duration>, Status>> + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub warmup: Duration,
    pub duration: Duration,
    /// Requests sent at most, warm-up included.
    pub max_requests: u64,
}

pub struct Outcome {
    /// Latencies in microseconds of the measured (post-warm-up) requests that succeeded.
    pub histogram: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Length of the measured window.
    pub elapsed: Duration,
}

impl Outcome {
    /// Adds a later slice of the same run: its requests, errors and measured time.
    pub fn absorb(&mut self, slice: Outcome) {
        let mut tally = Tally {
            histogram: Some(std::mem::replace(&mut self.histogram, histogram())),
            errors: self.errors,
            first_error: self.first_error.take(),
        };
        tally.merge(Tally {
            histogram: Some(slice.histogram),
            errors: slice.errors,
            first_error: slice.first_error,
        });
        let elapsed = self.elapsed + slice.elapsed;
        *self = tally.outcome(elapsed);
    }

    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.histogram.len() as f64 / seconds
        } else {
            0.0
        }
    }
}

fn histogram() -> Histogram<u64> {
    // One microsecond to one minute, three significant figures: constant bounds the crate
    // accepts, so this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

#[derive(Default)]
struct Tally {
    histogram: Option<Histogram<u64>>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, result: Result<Duration, Status>) {
        match result {
            Ok(latency) => {
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                self.histogram
                    .get_or_insert_with(histogram)
                    .saturating_record(micros);
            }
            Err(status) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        if let Some(other_histogram) = other.histogram {
            let mine = self.histogram.get_or_insert_with(histogram);
            // Same bounds on both sides, so adding cannot fail; saturate if it somehow did.
            if mine.add(&other_histogram).is_err() {
                for value in other_histogram.iter_recorded() {
                    mine.saturating_record_n(value.value_iterated_to(), value.count_at_value());
                }
            }
        }
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn outcome(self, elapsed: Duration) -> Outcome {
        Outcome {
            histogram: self.histogram.unwrap_or_else(histogram),
            errors: self.errors,
            first_error: self.first_error,
            elapsed,
        }
    }
}

/// `concurrency` callers in a loop until the time or the count runs out.
pub async fn closed(call: Call, concurrency: usize, limits: Limits) -> Outcome {
    let started = Instant::now();
    let measure_from = started + limits.warmup;
    let end = measure_from + limits.duration;
    let sent = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (call, sent) = (call.clone(), sent.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                if n >= limits.max_requests || Instant::now() >= end {
                    break;
                }
                let at = Instant::now();
                let result = call(n).await;
                if at >= measure_from {
                    tally.record(result.map(|timed| timed.unwrap_or_else(|| at.elapsed())));
                }
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for worker in workers {
        if let Ok(done) = worker.await {
            tally.merge(done);
        }
    }
    let elapsed = Instant::now()
        .min(end)
        .saturating_duration_since(measure_from);
    tally.outcome(elapsed)
}

/// Requests at `rate` per second on a fixed schedule, at most `max_in_flight` outstanding; a
/// request that would exceed that is counted as an error rather than delayed.
pub async fn open(call: Call, rate: f64, max_in_flight: u64, limits: Limits) -> Outcome {
    let started = Instant::now();
    let measure_from = started + limits.warmup;
    let end = measure_from + limits.duration;
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let in_flight = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    loop {
        let due = started + interval.mul_f64(n as f64);
        if due >= end || n >= limits.max_requests {
            break;
        }
        tokio::time::sleep_until(due).await;
        // Everything due by now leaves now (the timer's granularity is a millisecond).
        let now = Instant::now();
        while n < limits.max_requests {
            let due = started + interval.mul_f64(n as f64);
            if due > now || due >= end {
                break;
            }
            let measured = due >= measure_from;
            if in_flight.load(Ordering::Relaxed) >= max_in_flight {
                if measured {
                    tally
                        .lock()
                        .map(|mut t| {
                            t.record(Err(Status::resource_exhausted(format!(
                                "more than {max_in_flight} requests outstanding"
                            ))))
                        })
                        .ok();
                }
            } else {
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (call, tally, in_flight) = (call.clone(), tally.clone(), in_flight.clone());
                tasks.spawn(async move {
                    let result = call(n).await;
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                    if measured {
                        let result = result.map(|timed| timed.unwrap_or_else(|| due.elapsed()));
                        if let Ok(mut tally) = tally.lock() {
                            tally.record(result);
                        }
                    }
                });
            }
            n += 1;
        }
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    // Requests answered late still count, over the time it took to answer them: a server that
    // cannot keep up shows its real rate, not the schedule's.
    let elapsed = end
        .max(Instant::now())
        .saturating_duration_since(measure_from);
    let tally = match Arc::try_unwrap(tally) {
        Ok(mutex) => mutex.into_inner().unwrap_or_default(),
        Err(shared) => shared
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default(),
    };
    tally.outcome(elapsed)
}
