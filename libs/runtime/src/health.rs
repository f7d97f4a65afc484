//! grpc.health.v1 that tells the truth: a service is SERVING only while every dependency it
//! needs (its database, its cache) answers.

use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A dependency whose reachability decides the service's health.
pub trait Probe: Send + Sync {
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// The health name a liveness probe asks: SERVING while the process runs, whatever its
/// dependencies do, so an outage of the database makes pods unready but never restarts them.
pub const LIVENESS: &str = "liveness";

/// Every service answers NOT_SERVING, rather than "unknown service", until its first probe.
pub async fn register_not_serving(reporter: &HealthReporter, service_names: &[&'static str]) {
    for name in service_names.iter().copied().chain([""]) {
        reporter
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;
}

/// Runs every probe each `interval` and sets all `service_names` (and the server as a whole,
/// the empty name) to SERVING or NOT_SERVING. Stops at shutdown, leaving NOT_SERVING behind so
/// load balancers stop sending work while in-flight calls drain.
pub fn spawn_monitor(
    reporter: HealthReporter,
    service_names: Vec<&'static str>,
    probes: Vec<Arc<dyn Probe>>,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<ServingStatus> = None;
        loop {
            let status = check_all(&probes).await;
            if last != Some(status) {
                for name in service_names.iter().copied().chain([""]) {
                    reporter.set_service_status(name, status).await;
                }
                last = Some(status);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
        for name in service_names.iter().copied().chain([""]) {
            reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    })
}

async fn check_all(probes: &[Arc<dyn Probe>]) -> ServingStatus {
    let mut healthy = true;
    for probe in probes {
        // A dependency that hangs is as bad as one that refuses.
        let outcome = tokio::time::timeout(Duration::from_secs(2), probe.check()).await;
        let failure = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error),
            Err(_) => Some("timed out".to_owned()),
        };
        if let Some(error) = failure {
            tracing::warn!(dependency = probe.name(), error = %error, "dependency unhealthy");
            healthy = false;
        }
    }
    if healthy {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}
