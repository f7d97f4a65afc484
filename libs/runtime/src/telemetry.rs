//! Logs (JSON or pretty) and OpenTelemetry. Spans always carry an OpenTelemetry context, so W3C
//! trace context flows from incoming to outgoing calls; traces and metrics are exported over OTLP
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Metrics can always be scraped in Prometheus
//! format (see [`crate::metrics`]).

use crate::config::{LogFormat, TelemetryConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes and stops the exporters when dropped (at the end of `main`).
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    metrics: prometheus::Registry,
}

impl TelemetryGuard {
    /// What `/metrics` serves.
    pub fn metrics_registry(&self) -> prometheus::Registry {
        self.metrics.clone()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

pub fn init(
    service_name: &'static str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder().with_service_name(service_name).build();
    let exporting = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();

    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let (prometheus_reader, metrics) =
        crate::metrics::prometheus_reader().map_err(|error| TelemetryError(error.to_string()))?;
    let mut meter_builder = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus_reader);
    if exporting {
        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
            .map_err(|error| TelemetryError(error.to_string()))?;
        tracer_builder = tracer_builder.with_batch_exporter(span_exporter);
        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()
            .map_err(|error| TelemetryError(error.to_string()))?;
        meter_builder = meter_builder.with_periodic_exporter(metric_exporter);
    }
    let meter_provider = meter_builder.build();
    opentelemetry::global::set_meter_provider(meter_provider.clone());
    let tracer_provider = tracer_builder.build();
    let tracer = tracer_provider.tracer(service_name);
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());

    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .map_err(|error| TelemetryError(format!("log_filter: {error}")))?;
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let installed = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .json()
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .pretty(),
            )
            .try_init(),
    };
    installed.map_err(|error| TelemetryError(error.to_string()))?;
    Ok(TelemetryGuard {
        tracer_provider,
        meter_provider,
        metrics,
    })
}
