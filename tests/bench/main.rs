//! `praxis-bench`: load against running Praxis services, reported against the machine's ceiling.
//!
//! It makes its own enterprise first (with a platform admin's token), then runs each scenario in
//! a closed loop at every `--concurrency` and in an open loop at every `--rate`, each bounded by
//! `--warmup` + `--duration` and `--max-requests`. The ceiling — grpc.health.v1 Check on the same
//! server, same load — is measured in the same run, so every figure comes with its share of what
//! the machine can do at all. Writes `bench.json`, `bench.md` and `bench.svg` into `--out`.
//!
//! ```text
//! praxis serve &                        # or the three services
//! PRAXIS_BENCH_TOKEN=$(praxis token --platform-admin) praxis-bench --scenario all --duration 10s
//! ```

mod load;
mod report;
mod scenarios;

use clap::Parser;
use load::Limits;
use report::{DataShape, Latency, Machine, Ratio, Report, Run};
use scenarios::{Scenario, Servers, Service};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
#[command(
    name = "praxis-bench",
    version,
    about = "Load generator and performance report for Praxis"
)]
struct Args {
    /// directory's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    directory: String,
    /// identity's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50052")]
    identity: String,
    /// authz's gRPC address.
    #[arg(long, default_value = "127.0.0.1:50053")]
    authz: String,
    /// A platform admin's access token (`praxis token --platform-admin`).
    #[arg(long, env = "PRAXIS_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// `all`, or a comma-separated list of: ceiling, check, check-cold, batch-check, introspect,
    /// login, list-users, snapshot. The ceiling is always measured.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    scenario: Vec<String>,
    /// Measured time per run, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before each run.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Closed loop: calls in flight, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    concurrency: Vec<usize>,
    /// Open loop: requests per second, one run per value (none by default).
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Open loop at a share of each scenario's best closed-loop throughput in this run, e.g.
    /// `0.5`: every scenario at half its own capacity (needs at least one `--concurrency`).
    #[arg(long, value_delimiter = ',')]
    rate_share: Vec<f64>,
    /// Open loop: requests outstanding at most; beyond it a request counts as an error.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: u64,
    /// Requests per run at most, warm-up included.
    #[arg(long, default_value_t = 2_000_000)]
    max_requests: u64,
    /// HTTP/2 connections to each service; calls are spread over them.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Tokio worker threads of the load client; 1 is a current-thread runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Generated enterprise: practices, roles and users (see `praxis_tests::datagen`).
    #[arg(long, default_value_t = 5)]
    practices: usize,
    #[arg(long, default_value_t = 20)]
    roles: usize,
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Directory writes in flight while generating.
    #[arg(long, default_value_t = 8)]
    generate_parallel: usize,
    /// Where bench.json, bench.md and bench.svg go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Names the run in the outputs, e.g. "praxis serve, SQLite".
    #[arg(long, default_value = "Praxis")]
    label: String,
    /// Exit 0 even when requests failed (the outputs say how many).
    #[arg(long)]
    allow_errors: bool,
    /// Closed loops run in this many rounds: each round gives the ceilings and every scenario,
    /// one after another, a 1/rounds share of `--warmup` and `--duration`. A machine whose speed
    /// drifts (a shared VM) then slows a scenario and the ceiling it is compared with alike.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
}

/// A scenario on its server, with its load (calls in flight, or a rate) and its call.
type Planned = (Scenario, Service, (usize, Option<f64>), load::Call);

#[derive(Clone, Copy, Debug)]
enum Load {
    Closed(usize),
    Rate(f64),
    Share(f64),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unit must be ms, s or m: {text}")),
    };
    if !(0.0..=3600.0).contains(&seconds) {
        return Err(format!("between 0 and an hour: {text}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn scenarios(names: &[String]) -> Result<BTreeSet<Scenario>, String> {
    let mut chosen = BTreeSet::new();
    for name in names {
        if name == "all" {
            chosen.extend(Scenario::MEASURED);
            continue;
        }
        let scenario = <Scenario as clap::ValueEnum>::from_str(name, true)
            .map_err(|_| format!("unknown scenario {name}"))?;
        if scenario != Scenario::Ceiling {
            chosen.insert(scenario);
        }
    }
    Ok(chosen)
}

async fn connect(address: &str, connections: usize) -> Result<Vec<Channel>, String> {
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("{address}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let mut channels = Vec::new();
    for _ in 0..connections.max(1) {
        channels.push(
            endpoint
                .connect()
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?,
        );
    }
    Ok(channels)
}

fn run_of(
    scenario: Scenario,
    server: &str,
    load: (usize, Option<f64>),
    outcome: &load::Outcome,
) -> Run {
    Run {
        scenario: scenario.name().to_owned(),
        server: server.to_owned(),
        mode: if load.1.is_some() { "open" } else { "closed" }.to_owned(),
        concurrency: load.0,
        target_rate: load.1,
        requests: outcome.histogram.len(),
        errors: outcome.errors,
        first_error: outcome.first_error.clone(),
        seconds: outcome.elapsed.as_secs_f64(),
        throughput: outcome.throughput(),
        latency_us: Latency::of(&outcome.histogram),
        vs_ceiling: None,
    }
}

fn service_name(service: Service) -> &'static str {
    match service {
        Service::Directory => "directory",
        Service::Identity => "identity",
        Service::Authz => "authz",
    }
}

async fn bench(args: &Args) -> Result<Report, String> {
    let chosen = scenarios(&args.scenario)?;
    let load_before = report::load_average();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let servers = Servers {
        directory: connect(&args.directory, args.connections).await?,
        identity: connect(&args.identity, args.connections).await?,
        authz: connect(&args.authz, args.connections).await?,
    };
    let shape = praxis_tests::datagen::Shape {
        practices: args.practices.max(1),
        roles: args.roles,
        users: args.users.max(2),
        parallel: args.generate_parallel,
        seed: 7,
    };
    eprintln!(
        "generating an enterprise: {} practices, {} roles, {} users …",
        shape.practices, shape.roles, shape.users
    );
    let prepared = scenarios::prepare(&servers, &args.token, &shape)
        .await
        .map_err(|status| {
            format!(
                "preparing the data failed: {:?} {} (is --token a platform admin's token?)",
                status.code(),
                status.message()
            )
        })?;
    eprintln!("generated in {:.1} s", prepared.seconds);
    let limits = Limits {
        warmup: args.warmup,
        duration: args.duration,
        max_requests: args.max_requests,
    };
    let services: BTreeSet<Service> = chosen.iter().map(|s| s.service()).collect();
    // Closed loops first: a `--rate-share` is a share of what the closed loops reached.
    let loads: Vec<Load> = args
        .concurrency
        .iter()
        .map(|c| Load::Closed(*c.max(&1)))
        .chain(args.rate.iter().map(|r| Load::Rate(*r)))
        .chain(args.rate_share.iter().map(|f| Load::Share(*f)))
        .collect();
    let mut runs: Vec<Run> = Vec::new();
    let resolve = |load: Load, scenario: Scenario, server: &str, runs: &[Run]| match load {
        Load::Closed(c) => (c, None),
        Load::Rate(rate) => (0, Some(rate)),
        Load::Share(share) => {
            let peak = runs
                .iter()
                .filter(|r| {
                    r.mode == "closed" && r.scenario == scenario.name() && r.server == server
                })
                .map(|r| r.throughput)
                .fold(0.0, f64::max);
            (0, Some((peak * share).max(1.0)))
        }
    };
    for load in &loads {
        // Ceilings first, then the scenarios, each with its own load resolved now.
        let plan: Vec<Planned> = services
            .iter()
            .map(|s| (Scenario::Ceiling, *s))
            .chain(chosen.iter().map(|c| (*c, c.service())))
            .map(|(scenario, service)| {
                let resolved = resolve(*load, scenario, service_name(service), &runs);
                let call = scenarios::call(scenario, &servers, &prepared.subjects, service);
                (scenario, service, resolved, call)
            })
            .collect();
        let rounds = match load {
            Load::Closed(_) => args.rounds,
            Load::Rate(_) | Load::Share(_) => 1,
        };
        let slice = Limits {
            warmup: limits.warmup / rounds,
            duration: limits.duration / rounds,
            max_requests: (limits.max_requests / u64::from(rounds)).max(1),
        };
        let mut outcomes: Vec<Option<load::Outcome>> = plan.iter().map(|_| None).collect();
        for _ in 0..rounds {
            for ((_, _, resolved, call), total) in plan.iter().zip(outcomes.iter_mut()) {
                let outcome = measure(call.clone(), *resolved, args.max_in_flight, slice).await;
                match total {
                    Some(total) => total.absorb(outcome),
                    None => *total = Some(outcome),
                }
            }
        }
        let mut ceilings: Vec<(Service, Run)> = Vec::new();
        for ((scenario, service, resolved, _), outcome) in plan.into_iter().zip(outcomes) {
            let Some(outcome) = outcome else { continue };
            let mut run = run_of(scenario, service_name(service), resolved, &outcome);
            if scenario == Scenario::Ceiling {
                ceilings.push((service, run.clone()));
            } else if let Some((_, ceiling)) = ceilings.iter().find(|(s, _)| *s == service) {
                run.vs_ceiling =
                    (ceiling.throughput > 0.0 && ceiling.latency_us.p99 > 0).then(|| Ratio {
                        throughput: run.throughput / ceiling.throughput,
                        p99: run.latency_us.p99 as f64 / ceiling.latency_us.p99 as f64,
                    });
            }
            eprintln!("{}", line(&run));
            runs.push(run);
        }
    }
    let subjects = &prepared.subjects.data;
    Ok(Report {
        label: args.label.clone(),
        started_at,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: report::cpu_model(),
            kernel: report::kernel(),
            load_average_before: load_before,
            load_average_after: report::load_average(),
            client_runtime: if args.client_threads <= 1 {
                "tokio current-thread".into()
            } else {
                format!("tokio multi-thread, {} workers", args.client_threads)
            },
        },
        data: DataShape {
            practices: subjects.practices.len(),
            roles: subjects.role_ids.len(),
            users: subjects.users.len(),
            seconds_to_generate: prepared.seconds,
        },
        rounds: args.rounds,
        runs,
    })
}

async fn measure(
    call: load::Call,
    load: (usize, Option<f64>),
    max_in_flight: u64,
    limits: Limits,
) -> load::Outcome {
    match load.1 {
        Some(rate) => load::open(call, rate, max_in_flight, limits).await,
        None => load::closed(call, load.0, limits).await,
    }
}

fn line(run: &Run) -> String {
    let load = run
        .target_rate
        .map_or(format!("{} in flight", run.concurrency), |r| {
            format!("{r:.0}/s")
        });
    let mut text = format!(
        "{:<12} {:<9} {:<12} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
        run.scenario,
        run.server,
        load,
        run.throughput,
        run.latency_us.p50 as f64 / 1000.0,
        run.latency_us.p99 as f64 / 1000.0,
        run.errors
    );
    if let Some(error) = &run.first_error {
        text.push_str(&format!("  first error: {error}"));
    }
    if let Some(ratio) = run.vs_ceiling {
        text.push_str(&format!(
            "  ({:.0} % of the ceiling, p99 {:.2}×)",
            ratio.throughput * 100.0,
            ratio.p99
        ));
    }
    text
}

fn write(args: &Args, report: &Report) -> Result<(), String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("bench.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("bench.md"), report::markdown(report))
        .map_err(|e| e.to_string())?;
    report::plot(report, &args.out.join("bench.svg")).map_err(|e| format!("plot: {e}"))?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("praxis-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(bench(&args)) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("praxis-bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = write(&args, &report) {
        eprintln!("praxis-bench: {error}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "wrote {}/bench.json, bench.md and bench.svg",
        args.out.display()
    );
    let failed: u64 = report.runs.iter().map(|r| r.errors).sum();
    if failed > 0 && !args.allow_errors {
        if let Some(run) = report.runs.iter().find(|r| r.first_error.is_some()) {
            eprintln!(
                "praxis-bench: {failed} requests failed; first in {}: {}",
                run.scenario,
                run.first_error.as_deref().unwrap_or_default()
            );
            if run
                .first_error
                .as_deref()
                .is_some_and(|e| e.contains("ResourceExhausted"))
                && run.scenario == "login"
            {
                eprintln!(
                    "  identity throttles logins per client address: raise login.attempts_per_ip_per_minute \
                     (PRAXIS_IDENTITY__LOGIN__ATTEMPTS_PER_IP_PER_MINUTE for praxis serve) for the bench"
                );
            }
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
