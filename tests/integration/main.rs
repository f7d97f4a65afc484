//! Every cross-service test, in one binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod api_keys;
mod audit;
mod auth;
mod authz;
mod authz_decisions;
mod datagen;
mod directory;
mod directory_ldap;
mod directory_roles;
mod directory_sync;
mod directory_users;
mod e2e;
mod foundation;
mod health;
mod identity_login;
mod identity_passkeys;
mod lookups;
mod migrations;
mod notify_smtp;
mod sso_browser;
mod sso_oidc;
mod sso_saml;
mod trace_context;
