//! What every Praxis service shares: configuration, telemetry, the gRPC host (health, reflection,
//! request context, caller authentication, graceful drain), and the mapping of errors to
//! `tonic::Status` with google.rpc details.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod health;
pub mod host;
pub mod metrics;
pub mod notify;
pub mod outbox;
pub mod request_context;
pub mod secrets;
pub mod telemetry;
pub mod tls;

pub use auth::{Caller, TokenVerifier};
pub use host::ServiceHost;
