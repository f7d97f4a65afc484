//! The one-process install: directory, identity and authz mounted from their libraries, sharing
//! one cache, each on its own port. Also the operator actions of the `praxis` CLI.
#![forbid(unsafe_code)]

pub mod config;
pub mod demo;
pub mod inprocess;

use config::PraxisConfig;
use praxis_directory::domain::notifier::Notifier;
use praxis_directory::domain::{Actor, NewUser, UserKind};
use praxis_identity::TokenSubject;
use praxis_runtime::TokenVerifier;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Where a started install answers.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub directory: SocketAddr,
    pub identity: SocketAddr,
    pub identity_http: SocketAddr,
    pub authz: SocketAddr,
    /// Directory's SCIM 2.0 endpoint (HTTP).
    pub scim: SocketAddr,
}

pub struct Running {
    pub addresses: Addresses,
    pub directory: praxis_directory::Directory,
    /// Identity's authentication (passwords, sessions), for operator commands and tests.
    pub identity: Arc<praxis_identity::auth::Authenticator>,
    /// The cache the three services share.
    pub cache: Arc<dyn praxis_cache::Cache>,
    tasks: JoinSet<Result<(), StartError>>,
}

impl Running {
    /// Waits until every server has stopped (after the shutdown token is cancelled).
    pub async fn wait(mut self) -> Result<(), StartError> {
        let mut outcome = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(error)) => outcome = Err(error),
                Err(error) => outcome = Err(error.into()),
            }
        }
        outcome
    }
}

/// Opens the three services, binds their ports and starts serving. Every error (bad config,
/// database, port in use) comes back before anything serves.
pub async fn start(
    config: &PraxisConfig,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    let notifier = praxis_runtime::notify::from_config(&praxis_runtime::notify::NotifyConfig {
        smtp: config.smtp.clone(),
        sms: config.sms.clone(),
    })?;
    start_with(config, shutdown, notifier).await
}

/// Like [`start`], handing the outboxes (invitations, reset links) to `notifier`.
pub async fn start_with(
    config: &PraxisConfig,
    shutdown: CancellationToken,
    notifier: Arc<dyn Notifier>,
) -> Result<Running, StartError> {
    config.validate()?;
    let cache = praxis_cache::open(&config.cache_url)?;
    let drain = Duration::from_secs(config.drain_seconds);

    // Identity writes the JWK Set the others verify callers with; it reads accounts from the
    // directory, so the directory opens first.
    let directory_config = config.directory();
    let mut audit = config.audit.clone();
    audit
        .archive_dir
        .get_or_insert_with(|| config.data_dir.join("audit-archive"));
    let directory = praxis_directory::open(&directory_config, cache.clone())
        .await?
        .with_audit(&audit, &config.data_dir.join("audit-checkpoint.key"))?
        .with_secrets(
            &config.directory_encryption,
            &config.data_dir.join("directory-secrets.key"),
        )?;
    let identity_config = config.identity();
    let accounts = Arc::new(inprocess::DirectoryAccounts(directory.directory.clone()));
    let identity = Arc::new(
        praxis_identity::open(
            &identity_config,
            cache.clone(),
            praxis_identity::AccountSource::Given(accounts),
        )
        .await?,
    );
    let identity_auth = identity.auth.clone();
    let principals = Arc::new(inprocess::DirectoryPrincipals(directory.directory.clone()));
    let authz_config = config.authz();
    let authz = praxis_authz::open(
        &authz_config,
        &praxis_authz::DecisionSettings::default(),
        principals,
        cache.clone(),
    )
    .await?;
    let verifier = Arc::new(TokenVerifier::with_tls(
        &directory_config.auth,
        &config.tls,
    )?);
    // API keys are checked by identity here, without a hop over HTTP.
    verifier.set_api_key_checker(identity.api_keys.clone());

    let directory_listener = TcpListener::bind(&directory_config.listen).await?;
    let identity_listener = TcpListener::bind(&identity_config.service.listen).await?;
    let identity_http_listener = TcpListener::bind(&identity_config.http_listen).await?;
    let authz_listener = TcpListener::bind(&authz_config.listen).await?;
    let scim_listener = TcpListener::bind(&config.scim_listen).await?;
    let addresses = Addresses {
        directory: directory_listener.local_addr()?,
        identity: identity_listener.local_addr()?,
        identity_http: identity_http_listener.local_addr()?,
        authz: authz_listener.local_addr()?,
        scim: scim_listener.local_addr()?,
    };

    let mut tasks: JoinSet<Result<(), StartError>> = JoinSet::new();
    let tls = config.tls.server()?;
    let host = directory.host(verifier.clone(), drain).tls(tls.clone());
    let token = shutdown.clone();
    tasks.spawn(async move { Ok(host.serve(directory_listener, token).await?) });
    let host = identity.host(verifier.clone(), drain).tls(tls.clone());
    let token = shutdown.clone();
    tasks.spawn(async move { Ok(host.serve(identity_listener, token).await?) });
    let host = authz.host(verifier, drain).tls(tls);
    let token = shutdown.clone();
    tasks.spawn(async move { Ok(host.serve(authz_listener, token).await?) });
    let relay = identity.spawn_workers(notifier.clone(), shutdown.clone());
    tasks.spawn(async move { relay.await.map_err(|error| error.into()) });
    let token = shutdown.clone();
    let http_tls = config.tls.http_server()?;
    let scim_directory = directory.directory.clone();
    let scim_tls = http_tls.clone();
    let scim_public_url = config.scim_public_url.clone();
    let scim_token = shutdown.clone();
    tasks.spawn(async move {
        praxis_directory::scim::serve(
            scim_directory,
            scim_listener,
            scim_tls,
            scim_public_url.as_deref(),
            scim_token,
        )
        .await
    });
    tasks.spawn(async move {
        identity
            .serve_http(identity_http_listener, http_tls, token)
            .await
    });

    let follower = authz.spawn_workers(
        shutdown.clone(),
        Some(Arc::new(inprocess::DirectoryAudit(
            directory.directory.clone(),
        ))),
    );
    tasks.spawn(async move { follower.await.map_err(|error| error.into()) });
    for worker in directory.spawn_workers(notifier, shutdown.clone()) {
        tasks.spawn(async move { worker.await.map_err(|error| error.into()) });
    }

    Ok(Running {
        cache,
        addresses,
        directory: directory.directory,
        identity: identity_auth,
        tasks,
    })
}

/// Applies every service's migrations (`praxis migrate`).
pub async fn migrate(config: &PraxisConfig) -> Result<(), StartError> {
    praxis_directory::migrate(&config.directory().database_url).await?;
    praxis_identity::migrate(&config.identity().service.database_url).await?;
    praxis_authz::migrate(&config.authz().database_url).await?;
    Ok(())
}

/// The first enterprise and its admin, for a fresh install (`praxis bootstrap`).
pub async fn bootstrap(
    config: &PraxisConfig,
    enterprise_name: &str,
    admin: NewUser,
) -> Result<
    (
        praxis_directory::domain::Enterprise,
        praxis_directory::domain::User,
    ),
    StartError,
> {
    let cache = praxis_cache::open("memory")?;
    let service = praxis_directory::open(&config.directory(), cache).await?;
    let now = chrono::Utc::now();
    let domain = admin
        .email
        .trim()
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_lowercase())
        .unwrap_or_default();
    if service.directory.is_generic_domain(&domain) {
        return Err(format!(
            "{domain} is a public mail provider; use the enterprise's own domain (D2)"
        )
        .into());
    }
    let enterprise = service
        .directory
        .create_enterprise(&Actor::Operator, enterprise_name, "", now)
        .await?;
    // The admin's own domain is the enterprise's first allowlisted one (D2).
    service
        .directory
        .add_email_domain(&Actor::Operator, &enterprise.id, &domain, now)
        .await?;
    let admin = NewUser {
        kind: UserKind::EnterpriseAdmin,
        memberships: Vec::new(),
        ..admin
    };
    let (user, _) = service
        .directory
        .seed_user(&Actor::Operator, &enterprise.id, admin, now)
        .await?;
    Ok((enterprise, user))
}

/// Whom `praxis token` signs for.
pub enum TokenFor {
    User { email: String },
    PlatformAdmin,
}

/// Signs an access token with identity's active key, for the operator at the data directory
/// (until interactive login arrives, this is how a person gets a token on a dev install).
pub async fn issue_token(
    config: &PraxisConfig,
    whom: TokenFor,
    ttl: Duration,
) -> Result<String, StartError> {
    let cache = praxis_cache::open("memory")?;
    // Only the signing keys are needed here; no one logs in.
    let identity = praxis_identity::open(
        &config.identity(),
        cache.clone(),
        praxis_identity::AccountSource::Given(Arc::new(praxis_identity::accounts::NoAccounts)),
    )
    .await?;
    let now = chrono::Utc::now();
    let session_id = format!("cli-{}", uuid::Uuid::now_v7());
    let subject = match whom {
        TokenFor::PlatformAdmin => TokenSubject {
            user_id: "platform-admin".to_owned(),
            enterprise_id: String::new(),
            session_id,
            kind: praxis_directory::domain::PLATFORM_ADMIN_KIND.to_owned(),
            amr: vec!["cli".to_owned()],
            auth_time: now,
        },
        TokenFor::User { email } => {
            let directory = praxis_directory::open(&config.directory(), cache).await?;
            let user = directory
                .directory
                .find_user_by_email(&Actor::Operator, &email)
                .await?;
            TokenSubject {
                user_id: user.id.0,
                enterprise_id: user.enterprise_id.0,
                session_id,
                kind: user.kind.as_str().to_owned(),
                amr: vec!["cli".to_owned()],
                auth_time: now,
            }
        }
    };
    let ttl = chrono::Duration::from_std(ttl)?;
    Ok(identity.keys.issue(&subject, now, ttl).await?)
}
