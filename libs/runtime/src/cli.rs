//! The command line every standalone service binary shares.

use std::path::PathBuf;

#[derive(Debug, clap::Parser)]
pub struct ServiceArgs {
    /// TOML configuration file; `PRAXIS_*` variables override it.
    #[arg(long, env = "PRAXIS_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Serve (the default).
    Serve,
    /// Apply this service's database migrations and exit (a deployment's migration step).
    Migrate,
}
