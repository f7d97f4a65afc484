//! For services that call Praxis and protect their own gRPC APIs with it:
//!
//! - [`clients`]: typed clients for directory, identity and authz over load-balanced channels,
//!   with timeouts, retries for calls that are safe to repeat, and trace context on every call;
//! - [`server`]: the tower layers that authenticate each incoming call (access tokens verified
//!   locally against identity's JWK Set; API keys checked with identity, briefly remembered) and
//!   put the [`Caller`] in the request's extensions;
//! - [`authorize`]: "may this caller do X?" through authz, failing closed, briefly cached;
//! - [`audit`]: data-access events appended to the audit trail without blocking the request.
#![forbid(unsafe_code)]

pub mod audit;
pub mod authorize;
pub mod channel;
pub mod clients;
pub mod retry;
pub mod server;

pub use authorize::{Authorizer, Decision, Need};
pub use channel::{Credential, Target};
pub use clients::{Config, Praxis};
/// The generated messages and clients, for requests and responses.
pub use praxis_proto as proto;
pub use praxis_runtime::auth::Caller;
/// Logs and trace context for the service itself (`telemetry::init`).
pub use praxis_runtime::{
    config::{LogFormat, TelemetryConfig},
    telemetry,
    tls::TlsConfig,
};
