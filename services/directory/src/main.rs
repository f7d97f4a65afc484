//! `praxis-directory`: the directory service on its own.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Praxis directory service")]
struct Args {
    /// TOML configuration file; `PRAXIS_*` variables override it.
    #[arg(long, env = "PRAXIS_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let defaults = praxis_directory::default_config();
    let config: praxis_runtime::config::ServiceConfig =
        praxis_runtime::config::load_over(defaults, args.config.as_deref())?;
    config.validate()?;
    let _telemetry = praxis_runtime::telemetry::init("praxis-directory", &config.telemetry)?;
    let verifier = Arc::new(praxis_runtime::TokenVerifier::new(&config.auth)?);
    let cache = praxis_cache::open(&config.cache_url)?;
    let service = praxis_directory::open(&config.database_url, cache)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(praxis_runtime::host::cancel_on_signal(shutdown.clone()));
    service
        .host(verifier, Duration::from_secs(config.drain_seconds))
        .serve(listener, shutdown)
        .await?;
    Ok(())
}
