//! `praxis-directory`: the directory service on its own.

use clap::Parser;
use praxis_runtime::cli::{ServiceArgs, ServiceCommand};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc, as in every Praxis service (measured on authz: ~10%
/// more calls a second under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ServiceArgs::parse();
    let config = praxis_runtime::config::load_over(
        praxis_directory::default_config(),
        args.config.as_deref(),
    )?;
    config.validate()?;
    let telemetry = praxis_runtime::telemetry::init("praxis-directory", &config.telemetry)?;
    if let Some(ServiceCommand::Migrate) = args.command {
        return praxis_directory::migrate(&config.database_url)
            .await
            .map_err(|e| anyhow::anyhow!(e));
    }
    let verifier = Arc::new(praxis_runtime::TokenVerifier::with_tls(
        &config.auth,
        &config.tls,
    )?);
    let cache = praxis_cache::open(&config.cache_url)?;
    let audit: praxis_directory::domain::retention::AuditFileConfig =
        praxis_runtime::config::load(args.config.as_deref())?;
    let encryption: praxis_directory::EncryptionFileConfig =
        praxis_runtime::config::load(args.config.as_deref())?;
    let service = praxis_directory::open(&config, cache)
        .await
        .and_then(|service| {
            service.with_audit(
                &audit.audit,
                std::path::Path::new(".praxis/audit-checkpoint.key"),
            )
        })
        .and_then(|service| {
            service.with_secrets(
                &encryption.encryption,
                std::path::Path::new(".praxis/directory-secrets.key"),
            )
        })
        .map_err(|e| anyhow::anyhow!(e))?;
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(praxis_runtime::host::cancel_on_signal(shutdown.clone()));
    let metrics_listen = config.telemetry.metrics_listen.as_deref();
    praxis_runtime::metrics::start(
        metrics_listen,
        telemetry.metrics_registry(),
        shutdown.clone(),
    )
    .await?;
    let notify: praxis_runtime::notify::NotifyConfig =
        praxis_runtime::config::load(args.config.as_deref())?;
    let notifier = praxis_runtime::notify::from_config(&notify).map_err(|e| anyhow::anyhow!(e))?;
    service.spawn_workers(notifier, shutdown.clone());
    let scim: praxis_directory::scim::ScimFileConfig =
        praxis_runtime::config::load(args.config.as_deref())?;
    let scim = match scim.scim.listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(&address).await?;
            let public_url = scim.scim.public_url.clone();
            let directory = service.directory.clone();
            let tls = config.tls.http_server()?;
            let token = shutdown.clone();
            Some(tokio::spawn(async move {
                praxis_directory::scim::serve(
                    directory,
                    listener,
                    tls,
                    public_url.as_deref(),
                    token,
                )
                .await
            }))
        }
        None => None,
    };
    let host = service
        .host(verifier, Duration::from_secs(config.drain_seconds))
        .tls(config.tls.server()?);
    host.serve(listener, shutdown).await?;
    if let Some(scim) = scim {
        scim.await?.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}
