//! `praxis-authz`: the authz service on its own.

use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "Praxis authz service")]
struct Args {
    /// TOML configuration file; `PRAXIS_*` variables override it.
    #[arg(long, env = "PRAXIS_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: praxis_authz::AuthzConfig = praxis_runtime::config::load(args.config.as_deref())?;
    config.service.validate()?;
    let _telemetry = praxis_runtime::telemetry::init("praxis-authz", &config.service.telemetry)?;
    let verifier = Arc::new(praxis_runtime::TokenVerifier::new(&config.service.auth)?);
    let cache = praxis_cache::open(&config.service.cache_url)?;
    let directory = Arc::new(praxis_authz::principals::GrpcDirectory::new(
        &config.directory_url,
    )?);
    let service = praxis_authz::open(&config.service.database_url, directory, cache)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&config.service.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(praxis_runtime::host::cancel_on_signal(shutdown.clone()));
    service
        .host(verifier, Duration::from_secs(config.service.drain_seconds))
        .serve(listener, shutdown)
        .await?;
    Ok(())
}
