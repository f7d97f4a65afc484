//! The example patients service as a library: its contract (`pb`, with a client for tests and
//! callers) and its handlers (`api`). The binary is `praxis-patients`.
#![forbid(unsafe_code)]

pub mod api;
pub use api::pb;
