//! `praxis`: all three services in one process (`serve`), and the operator's commands.

use clap::{Parser, Subcommand};
use praxis::config::PraxisConfig;
use praxis::{TokenFor, demo};
use praxis_directory::domain::{NewUser, UserKind};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// mimalloc rather than glibc's malloc, as in every Praxis service (measured on authz: ~10%
/// more calls a second under load).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Praxis: identity and access management for healthcare practices"
)]
struct Cli {
    /// TOML configuration file; `PRAXIS_*` variables override it.
    #[arg(long, global = true, env = "PRAXIS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite files, JWK Set); overrides `data_dir` from the config.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run directory, identity and authz in this process.
    Serve {
        /// Seed a demo enterprise (idempotent) and print how to get a token.
        #[arg(long)]
        demo: bool,
    },
    /// Apply every service's database migrations and exit.
    Migrate,
    /// Create the first enterprise and its admin on a fresh install.
    Bootstrap {
        #[arg(long)]
        enterprise: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long, default_value = "Admin")]
        given_name: String,
        #[arg(long, default_value = "User")]
        family_name: String,
    },
    /// Print an access token signed by this install's identity key (operator use).
    Token {
        /// The user to sign for.
        #[arg(long, required_unless_present = "platform_admin")]
        email: Option<String>,
        /// Sign for a platform admin (creates enterprises) instead of a user.
        #[arg(long, conflicts_with = "email")]
        platform_admin: bool,
        #[arg(long, default_value_t = 900)]
        ttl_seconds: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config: PraxisConfig = praxis_runtime::config::load(cli.config.as_deref())?;
    if let Some(data_dir) = cli.data_dir {
        config.data_dir = data_dir;
    }
    config.validate()?;
    match cli.command {
        Command::Serve { demo } => serve(config, demo).await,
        Command::Migrate => {
            praxis::migrate(&config)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("migrations applied");
            Ok(())
        }
        Command::Bootstrap {
            enterprise,
            admin_email,
            given_name,
            family_name,
        } => {
            let admin = NewUser {
                email: admin_email,
                given_name,
                family_name,
                kind: UserKind::EnterpriseAdmin,
                memberships: Vec::new(),
                person_id: None,
            };
            let (enterprise, admin) = praxis::bootstrap(&config, &enterprise, admin)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("enterprise {} ({})", enterprise.display_name, enterprise.id);
            println!("admin {} ({})", admin.email, admin.id);
            Ok(())
        }
        Command::Token {
            email,
            platform_admin,
            ttl_seconds,
        } => {
            let whom = match (email, platform_admin) {
                (_, true) => TokenFor::PlatformAdmin,
                (Some(email), false) => TokenFor::User { email },
                (None, false) => anyhow::bail!("--email or --platform-admin"),
            };
            let token = praxis::issue_token(&config, whom, Duration::from_secs(ttl_seconds))
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(config: PraxisConfig, seed_demo: bool) -> anyhow::Result<()> {
    let telemetry = praxis_runtime::telemetry::init("praxis", &config.telemetry)?;
    let shutdown = CancellationToken::new();
    let running = praxis::start(&config, shutdown.clone())
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    tokio::spawn(praxis_runtime::host::cancel_on_signal(shutdown.clone()));
    let metrics_listen = config.telemetry.metrics_listen.as_deref();
    praxis_runtime::metrics::start(
        metrics_listen,
        telemetry.metrics_registry(),
        shutdown.clone(),
    )
    .await?;
    if seed_demo {
        let summary = demo::seed(&running.directory).await?;
        for user in &summary.users {
            running
                .identity
                .seed_password_if_absent(&user.id.0, demo::DEMO_PASSWORD)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        print_demo(&config, &running.addresses, &summary);
    }
    running.wait().await.map_err(|e| anyhow::anyhow!(e))
}

fn print_demo(config: &PraxisConfig, addresses: &praxis::Addresses, summary: &demo::DemoSummary) {
    let data_dir = config.data_dir.display();
    println!();
    println!(
        "Demo enterprise {:?} ({}), revision {}",
        summary.enterprise.display_name, summary.enterprise.id, summary.enterprise.revision
    );
    for practice in &summary.practices {
        println!(
            "  practice {:?} ({}): {} lines, {} resources",
            practice.display_name,
            practice.id,
            practice.lines.len(),
            practice.resources.len()
        );
    }
    println!("Users (one of each kind):");
    for user in &summary.users {
        println!("  {:<28} {}", user.kind.as_str(), user.email);
    }
    let admin = summary
        .users
        .iter()
        .find(|u| u.kind == UserKind::EnterpriseAdmin);
    if let Some(admin) = admin {
        println!();
        println!(
            "Each logs in with the password {:?}, e.g.:",
            demo::DEMO_PASSWORD
        );
        println!(
            "  grpcurl -plaintext -d '{{\"email\": \"{}\", \"password\": \"{}\"}}' {} praxis.identity.v1.AuthService/Login",
            admin.email,
            demo::DEMO_PASSWORD,
            addresses.identity
        );
        println!("Or get a token for any of them from the command line:");
        println!(
            "  TOKEN=$({} --data-dir {data_dir} token --email {})",
            this_program(),
            admin.email
        );
        println!("Then:");
        println!(
            "  grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{{\"enterprise_id\": \"{}\"}}' {} praxis.directory.v1.PracticeService/ListPractices",
            summary.enterprise.id, addresses.directory
        );
    }
    println!();
    println!(
        "directory {}  identity {} (HTTP {})  authz {}",
        addresses.directory, addresses.identity, addresses.identity_http, addresses.authz
    );
}

/// How to run this same binary again from the current directory.
fn this_program() -> String {
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    match (exe, cwd) {
        (Some(exe), Some(cwd)) => match exe.strip_prefix(&cwd) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => exe.display().to_string(),
        },
        _ => "praxis".to_owned(),
    }
}
