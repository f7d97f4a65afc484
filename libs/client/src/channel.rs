//! Channels to a Praxis service: one or several endpoints (load balanced), bounded connect and
//! call times, and on every call the credential and the caller's W3C trace context.

use praxis_runtime::tls::TlsConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Where one Praxis service answers, and how long to wait for it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`; several addresses of the same service spread calls over them.
    pub endpoints: Vec<String>,
    pub connect_timeout: Duration,
    /// For each call, unless the call sets a shorter `grpc-timeout`.
    pub call_timeout: Duration,
    /// For `https://` endpoints: the CA to trust and the client certificate to present (mTLS).
    pub tls: TlsConfig,
}

impl Target {
    /// One endpoint with the default times: 2 s to connect, 5 s per call.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self::balanced([endpoint.into()])
    }

    pub fn balanced(endpoints: impl IntoIterator<Item = String>) -> Self {
        Self {
            endpoints: endpoints.into_iter().collect(),
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(5),
            tls: TlsConfig::default(),
        }
    }

    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Channels that connect on first use and reconnect by themselves, so a client made
    /// before the service is up (or while it restarts) works once it is back.
    pub fn channel(&self) -> Result<Balanced, ClientError> {
        let mut members = Vec::with_capacity(self.endpoints.len());
        for address in &self.endpoints {
            let endpoint = self
                .tls
                .endpoint(address)
                .map_err(|error| ClientError::Endpoint(error.to_string()))?
                .connect_timeout(self.connect_timeout)
                .timeout(self.call_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10));
            members.push(Member {
                channel: endpoint.connect_lazy(),
                down_until: AtomicU64::new(0),
            });
        }
        if members.is_empty() {
            return Err(ClientError::Endpoint("no endpoint given".to_owned()));
        }
        Ok(Balanced {
            members: members.into(),
            next: Arc::new(AtomicUsize::new(0)),
            epoch: Instant::now(),
        })
    }
}

/// How long an endpoint that could not be reached is passed over.
const PASS_OVER: Duration = Duration::from_secs(5);

struct Member {
    channel: Channel,
    /// Milliseconds since `epoch` until which calls go elsewhere.
    down_until: AtomicU64,
}

/// Calls spread round-robin over a service's endpoints. An endpoint that could not be reached
/// (a transport error, not an answer) is passed over for a few seconds, so a retried call
/// goes to another one; when all are passed over, they are tried anyway.
#[derive(Clone)]
pub struct Balanced {
    members: Arc<[Member]>,
    next: Arc<AtomicUsize>,
    epoch: Instant,
}

impl Balanced {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn pick(&self) -> usize {
        let count = self.members.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&i| self.members[i].down_until.load(Ordering::Relaxed) <= now)
            .unwrap_or(start % count)
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Balanced {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // Each call waits for its own endpoint's readiness, below.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        use tower::ServiceExt;
        let chosen = self.pick();
        let balanced = self.clone();
        Box::pin(async move {
            let channel = balanced.members[chosen].channel.clone();
            let answer = channel.oneshot(request).await;
            if answer.is_err() {
                let until = balanced.now_ms() + PASS_OVER.as_millis() as u64;
                balanced.members[chosen]
                    .down_until
                    .store(until, Ordering::Relaxed);
            }
            answer
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("not a valid endpoint: {0}")]
    Endpoint(String),
    #[error("credential is not a valid header value")]
    Credential,
}

/// What a client presents to Praxis: a service credential, an API key, or the access token of
/// the user it acts for. Never printed.
#[derive(Clone, Default)]
pub struct Credential(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credential(<redacted>)"
        } else {
            "Credential(none)"
        })
    }
}

impl Credential {
    pub fn none() -> Self {
        Self(None)
    }

    /// `secret` is sent as `authorization: Bearer <secret>`.
    pub fn bearer(secret: &str) -> Result<Self, ClientError> {
        let mut value = MetadataValue::try_from(format!("Bearer {secret}"))
            .map_err(|_| ClientError::Credential)?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }

    /// An `authorization` header as it arrived (a downstream server passing its caller's
    /// token on to authz).
    pub fn from_header(value: &AsciiMetadataValue) -> Self {
        let mut value = value.clone();
        value.set_sensitive(true);
        Self(Some(value))
    }
}

/// Adds the credential and the current span's trace context to every outgoing call.
#[derive(Clone, Debug, Default)]
pub struct Outgoing {
    credential: Credential,
}

impl Outgoing {
    pub fn new(credential: Credential) -> Self {
        Self { credential }
    }
}

impl tonic::service::Interceptor for Outgoing {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let mut request = praxis_runtime::request_context::PropagateTraceContext.call(request)?;
        if let Some(value) = &self.credential.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type PraxisChannel = InterceptedService<Balanced, Outgoing>;

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn the_credential_goes_on_every_call_and_never_into_debug_output() {
        let credential = Credential::bearer("s3cret-value").unwrap_or_default();
        assert!(!format!("{credential:?}").contains("s3cret"));
        let mut outgoing = Outgoing::new(credential);
        let request = outgoing.call(tonic::Request::new(())).ok();
        let header = request
            .as_ref()
            .and_then(|r| r.metadata().get("authorization"))
            .and_then(|v| v.to_str().ok());
        assert_eq!(header, Some("Bearer s3cret-value"));
        assert!(Credential::bearer("line\nbreak").is_err());
    }

    #[tokio::test]
    async fn endpoints_are_checked_and_several_are_balanced() {
        assert!(Target::balanced(Vec::new()).channel().is_err());
        assert!(Target::new("not a uri").channel().is_err());
        assert!(Target::new("http://127.0.0.1:1").channel().is_ok());
        let two = Target::balanced([
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
        ]);
        assert!(two.channel().is_ok());
    }
}
