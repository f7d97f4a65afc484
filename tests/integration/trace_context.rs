//! W3C trace context: what arrives in `traceparent` becomes the parent of the call's span, and
//! leaves again on the calls the handler makes.

use opentelemetry::trace::TraceContextExt;
use praxis_runtime::request_context::{PropagateTraceContext, RequestContextLayer};
use tonic::service::Interceptor;
use tower::{Layer, Service, ServiceExt};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn incoming_trace_context_reaches_outgoing_calls() {
    use opentelemetry::trace::TracerProvider as _;
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    // The "handler" records what it would send downstream.
    let handler = tower::service_fn(|_request: http::Request<()>| async {
        let seen = tracing::Span::current()
            .context()
            .span()
            .span_context()
            .trace_id()
            .to_string();
        let outgoing = PropagateTraceContext
            .call(tonic::Request::new(()))
            .expect("interceptor");
        let traceparent = outgoing
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok::<_, std::convert::Infallible>(http::Response::new((seen, traceparent)))
    });
    let mut service = RequestContextLayer::new("test").layer(handler);
    let request = http::Request::builder()
        .uri("/praxis.test.v1.Test/Call")
        .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
        .body(())
        .unwrap();
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    let (seen, traceparent) = response.into_body();
    assert_eq!(
        seen, TRACE_ID,
        "the call's span continues the caller's trace"
    );
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")),
        "outgoing traceparent {traceparent:?}"
    );
    assert!(
        !traceparent.contains("00f067aa0ba902b7"),
        "the outgoing parent is our span, not the caller's"
    );
}
