//! `praxis-authz`: the authz service on its own.

use clap::Parser;
use praxis_runtime::cli::{ServiceArgs, ServiceCommand};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc: a decision allocates little, but the gRPC around it
/// allocates and frees on every call, from both workers.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    let config: praxis_authz::AuthzConfig = praxis_runtime::config::load(args.config.as_deref())?;
    config.service.validate()?;
    let runtime = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    runtime.block_on(run(args, config))
}

async fn run(args: ServiceArgs, config: praxis_authz::AuthzConfig) -> anyhow::Result<()> {
    let telemetry = praxis_runtime::telemetry::init("praxis-authz", &config.service.telemetry)?;
    if let Some(ServiceCommand::Migrate) = args.command {
        return praxis_authz::migrate(&config.service.database_url)
            .await
            .map_err(|e| anyhow::anyhow!(e));
    }
    let tls = &config.service.tls;
    let verifier = Arc::new(praxis_runtime::TokenVerifier::with_tls(
        &config.service.auth,
        tls,
    )?);
    let cache = praxis_cache::open(&config.service.cache_url)?;
    let directory = Arc::new(praxis_authz::principals::GrpcDirectory::new(
        &config.directory_url,
        tls,
    )?);
    let service = praxis_authz::open(&config.service, &config.decisions, directory, cache)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&config.service.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(praxis_runtime::host::cancel_on_signal(shutdown.clone()));
    let metrics_listen = config.service.telemetry.metrics_listen.as_deref();
    praxis_runtime::metrics::start(
        metrics_listen,
        telemetry.metrics_registry(),
        shutdown.clone(),
    )
    .await?;
    let sink = match &config.audit_credential {
        Some(credential) => Some(Arc::new(
            praxis_authz::audit::GrpcAuditSink::new(&config.directory_url, credential, tls)
                .map_err(|e| anyhow::anyhow!(e))?,
        ) as Arc<dyn praxis_authz::audit::AuditSink>),
        None => None,
    };
    let follower = service.spawn_workers(shutdown.clone(), sink);
    let host = service
        .host(verifier, Duration::from_secs(config.service.drain_seconds))
        .tls(tls.server()?);
    host.serve(listener, shutdown).await?;
    follower.abort();
    Ok(())
}
