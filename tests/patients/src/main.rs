//! `praxis-patients`: a tiny patient-records service protected by Praxis, written the way a
//! downstream team would, with nothing but `praxis-client`. Records live in memory.
//!
//! Every call is authenticated by praxis-client's layers (access token or API key), every
//! answer waits for authz's decision (and fails closed without one), and every access to a
//! record is appended to the audit trail in the background.

use praxis_example_patients::api;

use clap::Parser;
use praxis_client::audit::AuditSink;
use praxis_client::server::{Protect, Settings};
use praxis_client::{Authorizer, Config, Credential, Praxis, Target, TlsConfig};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "praxis-patients",
    about = "Example downstream service protected by Praxis"
)]
struct Args {
    #[arg(long, env = "PATIENTS_LISTEN", default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Directory's gRPC address(es), comma-separated (audit events go there).
    #[arg(
        long,
        env = "PRAXIS_DIRECTORY_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50051"
    )]
    directory: Vec<String>,
    #[arg(
        long,
        env = "PRAXIS_IDENTITY_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50052"
    )]
    identity: Vec<String>,
    #[arg(
        long,
        env = "PRAXIS_AUTHZ_URL",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:50053"
    )]
    authz: Vec<String>,
    /// Identity's JWK Set.
    #[arg(
        long,
        env = "PRAXIS_JWKS_URL",
        default_value = "http://127.0.0.1:8080/.well-known/jwks.json"
    )]
    jwks_url: String,
    /// Identity's API key check; unset: API keys are refused.
    #[arg(long, env = "PRAXIS_API_KEY_URL")]
    api_key_url: Option<String>,
    /// This service's credential with Praxis (directory's `auth.service_credentials.patients`).
    #[arg(long, env = "PRAXIS_SERVICE_CREDENTIAL", hide_env_values = true)]
    service_credential: String,
    /// How long an accepted API key is remembered, in milliseconds (a revoked key works here
    /// that much longer).
    #[arg(long, env = "PATIENTS_API_KEY_CACHE_MS", default_value_t = 5000)]
    api_key_cache_ms: u64,
    /// How long an authz decision is reused, in milliseconds.
    #[arg(long, env = "PATIENTS_DECISION_CACHE_MS", default_value_t = 3000)]
    decision_cache_ms: u64,
    /// This service's certificate (PEM): serve TLS, and present it to Praxis over `https://`.
    #[arg(long, env = "PATIENTS_TLS_CERT_FILE")]
    tls_cert_file: Option<std::path::PathBuf>,
    #[arg(long, env = "PATIENTS_TLS_KEY_FILE")]
    tls_key_file: Option<std::path::PathBuf>,
    /// The CA (PEM) that signs Praxis's certificates and, with mTLS, this service's callers'.
    #[arg(long, env = "PATIENTS_TLS_CA_FILE")]
    tls_ca_file: Option<std::path::PathBuf>,
    /// Refuse callers without a client certificate signed by the CA.
    #[arg(
        long,
        env = "PATIENTS_TLS_REQUIRE_CLIENT_CERT",
        default_value_t = false
    )]
    tls_require_client_cert: bool,
    /// `json` or `pretty`.
    #[arg(long, env = "PATIENTS_LOG_FORMAT", default_value = "json")]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let telemetry = praxis_client::TelemetryConfig {
        log_format: if args.log_format == "pretty" {
            praxis_client::LogFormat::Pretty
        } else {
            praxis_client::LogFormat::Json
        },
        ..praxis_client::TelemetryConfig::default()
    };
    let _telemetry = praxis_client::telemetry::init("patients", &telemetry)?;

    let tls = TlsConfig {
        cert_file: args.tls_cert_file,
        key_file: args.tls_key_file,
        ca_file: args.tls_ca_file,
        require_client_cert: args.tls_require_client_cert,
    };
    let config = Config {
        directory: Target::balanced(args.directory).tls(tls.clone()),
        identity: Target::balanced(args.identity).tls(tls.clone()),
        authz: Target::balanced(args.authz).tls(tls.clone()),
        retry: praxis_client::retry::Retry::default(),
    };
    let praxis = Praxis::connect(&config, Credential::none())?;
    let protect = Protect::new(&Settings {
        api_key_url: args.api_key_url,
        api_key_cache: Duration::from_millis(args.api_key_cache_ms),
        tls: tls.clone(),
        ..Settings::new(args.jwks_url)
    })?;
    let audit = AuditSink::start(
        praxis.with_credential(Credential::bearer(&args.service_credential)?),
        10_000,
    );
    let api = api::Patients::new(
        Authorizer::new(praxis, Duration::from_millis(args.decision_cache_ms)),
        audit.clone(),
    );

    // Health for probes, answered without a token (the layers let health through).
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<api::pb::patient_service_server::PatientServiceServer<api::Patients>>()
        .await;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    tracing::info!(address = %listener.local_addr()?, "serving patients");
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls.server()? {
        server = server.tls_config(tls)?;
    }
    server
        .layer(protect.layers("patients"))
        .add_service(health)
        .add_service(api::server(api))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown(),
        )
        .await?;
    if !audit.flush(Duration::from_secs(10)).await {
        tracing::error!(
            pending = audit.pending(),
            "audit events left undelivered at exit"
        );
    }
    Ok(())
}

async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
