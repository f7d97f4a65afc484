//! The directory's rules, over plain types: no tonic, no sea-orm. Handlers call these; these call
//! the store.

pub mod error;
pub mod model;
pub mod service;

pub use error::DomainError;
pub use model::*;
pub use service::Directory;
