//! The directory's rules, over plain types: no tonic, no sea-orm. Handlers call these; these call
//! the store.

pub mod access;
pub mod audit;
pub mod authority;
pub mod catalogue;
pub mod email_domains;
pub mod error;
pub mod ldap_sync;
pub mod model;
pub mod notifier;
pub mod persons;
pub mod policy;
pub mod provisioning;
pub mod retention;
pub mod review;
pub mod roles;
pub mod scim_rules;
pub mod service;
pub mod structure;
pub mod sync;
pub mod users;

pub use authority::Authority;
pub use error::DomainError;
pub use model::*;
pub use service::{Directory, DirectorySettings};
