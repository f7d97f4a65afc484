//! Metrics in Prometheus text format at `GET /metrics`, for scrapers (a ServiceMonitor) that do
//! not speak OTLP. The same instruments also go over OTLP when that is configured.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tokio_util::sync::CancellationToken;

/// A metric reader that fills a fresh registry; add it to the meter provider.
pub fn prometheus_reader() -> Result<
    (
        opentelemetry_prometheus::PrometheusExporter,
        prometheus::Registry,
    ),
    opentelemetry_sdk::error::OTelSdkError,
> {
    let registry = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()?;
    Ok((exporter, registry))
}

/// The registry's metrics in the Prometheus text exposition format.
pub fn render(registry: &prometheus::Registry) -> Result<String, prometheus::Error> {
    let mut buffer = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// Binds `listen` (when set) and serves `/metrics` there in the background until `shutdown`.
pub async fn start(
    listen: Option<&str>,
    registry: prometheus::Registry,
    shutdown: CancellationToken,
) -> std::io::Result<Option<std::net::SocketAddr>> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = serve(registry, listener, shutdown).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(Some(address))
}

/// Serves `/metrics` until `shutdown`.
pub async fn serve(
    registry: prometheus::Registry,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(registry);
    tracing::info!(address = %listener.local_addr()?, "serving metrics");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn scrape(State(registry): State<prometheus::Registry>) -> Response {
    match render(&registry) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
