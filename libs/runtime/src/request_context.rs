//! Per-call context: a request id (taken from `x-request-id` or made), a tracing span whose
//! parent is the caller's W3C trace context, RPC metrics, and the trace context passed on to
//! the calls we make.

use futures::future::BoxFuture;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::propagation::{Extractor, Injector};
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the call being served; also echoed in the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Accept a caller's request id only if it is short and printable, so it is safe to log.
fn incoming_request_id(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let acceptable =
        !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    acceptable.then(|| value.to_owned())
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// The W3C trace id of the call being served (32 hex digits), or empty outside one: audit
/// events carry it so a trail entry leads to its trace.
pub fn current_trace_id() -> String {
    use opentelemetry::trace::TraceContextExt;
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if span_context.is_valid() {
        span_context.trace_id().to_string()
    } else {
        String::new()
    }
}

/// Client interceptor: passes the current span's trace context on to the callee.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateTraceContext;

impl tonic::service::Interceptor for PropagateTraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(request.metadata_mut()));
        });
        Ok(request)
    }
}

/// Bucket bounds in seconds, from a warm Check's tenth of a millisecond to a slow login's
/// seconds (the SDK's default bounds start at 5, so every call would fall in the first bucket).
const DURATION_BOUNDARIES: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1,
    0.25, 1.0, 5.0,
];

#[derive(Clone)]
struct RpcMetrics {
    calls: Counter<u64>,
    duration: Histogram<f64>,
}

impl RpcMetrics {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("praxis");
        Self {
            calls: meter
                .u64_counter("rpc.server.calls")
                .with_description("gRPC calls served")
                .build(),
            duration: meter
                .f64_histogram("rpc.server.duration")
                .with_unit("s")
                .with_description("time to answer a gRPC call")
                .with_boundaries(DURATION_BOUNDARIES.to_vec())
                .build(),
        }
    }
}

#[derive(Clone)]
pub struct RequestContextLayer {
    service: &'static str,
    metrics: RpcMetrics,
}

impl RequestContextLayer {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            metrics: RpcMetrics::new(),
        }
    }
}

impl<S> tower::Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService {
            inner,
            service: self.service,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestContextService<S> {
    inner: S,
    service: &'static str,
    metrics: RpcMetrics,
}

impl<S, B, R> tower::Service<http::Request<B>> for RequestContextService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let request_id = incoming_request_id(request.headers())
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let method = request.uri().path().to_owned();
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        let span = tracing::info_span!(
            "rpc",
            service = self.service,
            rpc.method = %method,
            request_id = %request_id,
            user_id = tracing::field::Empty,
            enterprise_id = tracing::field::Empty,
        );
        // A malformed or absent traceparent simply starts a new trace.
        let _ = span.set_parent(parent);
        request
            .extensions_mut()
            .insert(RequestId(request_id.clone()));
        let metrics = self.metrics.clone();
        let service = self.service;
        Box::pin(
            async move {
                let started = Instant::now();
                let result = inner.call(request).await;
                let grpc_status = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned(),
                    Err(_) => "transport".to_owned(),
                };
                let attributes = [
                    KeyValue::new("service", service),
                    KeyValue::new("rpc.method", method),
                    KeyValue::new("rpc.grpc.status_code", grpc_status),
                ];
                metrics.calls.add(1, &attributes);
                metrics
                    .duration
                    .record(started.elapsed().as_secs_f64(), &attributes);
                result.map(|mut response| {
                    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
                        response.headers_mut().insert(REQUEST_ID_HEADER, value);
                    }
                    response
                })
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_short_request_ids_are_kept() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, http::HeaderValue::from_static("abc-123"));
        assert_eq!(incoming_request_id(&headers).as_deref(), Some("abc-123"));
        headers.insert(
            REQUEST_ID_HEADER,
            http::HeaderValue::from_static("has space"),
        );
        assert_eq!(incoming_request_id(&headers), None);
        let long = "x".repeat(129);
        headers.insert(
            REQUEST_ID_HEADER,
            http::HeaderValue::from_str(&long).unwrap_or(http::HeaderValue::from_static("")),
        );
        assert_eq!(incoming_request_id(&headers), None);
    }
}
