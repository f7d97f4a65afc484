//! The whole system as separate processes on loopback, as it runs in Kubernetes: the built
//! `praxis-directory`, `praxis-identity`, `praxis-authz` (or one `praxis serve`) and the example
//! `praxis-patients`, each with its own database (PostgreSQL schemas when the run has
//! PostgreSQL, SQLite files otherwise) and Redis when the run has it. Processes can be stopped
//! and started again on the same ports, for fault runs.

use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Three service processes.
    Separate,
    /// One `praxis serve`.
    Serve,
}

/// Where the binaries are: `PRAXIS_TEST_BIN_DIR`, or the profile folder this test runs from.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PRAXIS_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/<profile>/deps/integration-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

const BINARIES: [&str; 5] = [
    "praxis",
    "praxis-directory",
    "praxis-identity",
    "praxis-authz",
    "praxis-patients",
];

/// The binaries this needs, or why not: `cargo test` builds only test targets, so they come
/// from `cargo build --workspace --bins` (CI builds them before the tests).
pub fn binaries_missing() -> Option<String> {
    let dir = bin_dir();
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not in {} (cargo build --workspace --bins)",
            missing.join(", "),
            dir.display()
        )
    })
}

struct Process {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

pub struct Urls {
    pub directory: String,
    pub identity: String,
    pub identity_http: String,
    pub authz: String,
    pub patients: String,
}

pub struct System {
    pub layout: Layout,
    pub backend: String,
    pub urls: Urls,
    /// A platform admin's access token, signed by this system's identity.
    pub platform_token: String,
    /// What test clients present and trust (empty without TLS).
    pub tls: praxis_runtime::tls::TlsConfig,
    processes: BTreeMap<&'static str, Process>,
    work: tempfile::TempDir,
    _databases: Vec<praxis_store::testing::TestDatabase>,
}

/// Every test logs in from 127.0.0.1 and the run's tests share one Redis: the per-address
/// throttle (I4) would count all of them together. Per-account lockout still applies.
const ATTEMPTS_PER_IP: &str = "100000";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

fn random_bytes(count: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut raw = vec![0u8; count];
    rand::thread_rng().fill_bytes(&mut raw);
    raw
}

/// A shared secret as configuration takes it: printable, no padding.
fn secret(bytes: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Certificates made for one run (openssl): a CA, and one certificate for 127.0.0.1 that
/// every process presents as server and as client.
fn make_certificates(dir: &Path) -> praxis_runtime::tls::TlsConfig {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=praxis test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    run(&ca);
    let mut request = vec!["req", "-subj", "/CN=praxis test service"];
    request.extend(ec);
    request.extend(["-keyout", "service.key", "-out", "service.csr"]);
    run(&request);
    std::fs::write(
        dir.join("service.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("extensions");
    run(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "service.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "service.ext",
        "-out",
        "service.crt",
    ]);
    praxis_runtime::tls::TlsConfig {
        cert_file: Some(dir.join("service.crt")),
        key_file: Some(dir.join("service.key")),
        ca_file: Some(dir.join("ca.crt")),
        require_client_cert: true,
    }
}

impl System {
    /// Plain HTTP/2 between the processes.
    pub async fn start(layout: Layout) -> System {
        Self::start_with(layout, false).await
    }

    /// Every listener on TLS and every gRPC listener requiring client certificates (mTLS).
    pub async fn start_mutual_tls(layout: Layout) -> System {
        Self::start_with(layout, true).await
    }

    async fn start_with(layout: Layout, mutual_tls: bool) -> System {
        let work = tempfile::tempdir().expect("tempdir");
        let tls = if mutual_tls {
            make_certificates(work.path())
        } else {
            praxis_runtime::tls::TlsConfig::default()
        };
        let scheme = if mutual_tls { "https" } else { "http" };
        let bin = bin_dir();
        let postgres = std::env::var(praxis_store::testing::DATABASE_URL_VAR)
            .ok()
            .filter(|url| !url.is_empty());
        let redis = postgres.as_ref().and_then(|_| {
            std::env::var(crate::REDIS_URL_VAR)
                .ok()
                .filter(|url| !url.is_empty())
        });
        let mut databases = Vec::new();
        let database = |name: &str| {
            let work = work.path().to_path_buf();
            let postgres = postgres.clone();
            let name = name.to_owned();
            async move {
                match postgres {
                    Some(base) => {
                        let db = praxis_store::testing::postgres(&base)
                            .await
                            .expect("a PostgreSQL schema");
                        (db.url.clone(), Some(db))
                    }
                    None => (
                        format!("sqlite://{}/{name}.db?mode=rwc", work.display()),
                        None,
                    ),
                }
            }
        };
        let (directory_db, db) = database("directory").await;
        databases.extend(db);
        let (identity_db, db) = database("identity").await;
        databases.extend(db);
        let (authz_db, db) = database("authz").await;
        databases.extend(db);
        let backend = format!(
            "{}+{}",
            if postgres.is_some() {
                "postgres"
            } else {
                "sqlite"
            },
            if redis.is_some() { "redis" } else { "memory" }
        );
        let cache = redis.unwrap_or_else(|| "memory".to_owned());

        let [directory, identity, http, authz, patients] = [(); 5].map(|()| free_port());
        let urls = Urls {
            directory: format!("{scheme}://127.0.0.1:{directory}"),
            identity: format!("{scheme}://127.0.0.1:{identity}"),
            identity_http: format!("{scheme}://127.0.0.1:{http}"),
            authz: format!("{scheme}://127.0.0.1:{authz}"),
            patients: format!("{scheme}://127.0.0.1:{patients}"),
        };
        let jwks = format!("{}/.well-known/jwks.json", urls.identity_http);
        let api_keys = format!("{}/api-keys/verify", urls.identity_http);
        let encryption_key = base64::engine::general_purpose::STANDARD.encode(random_bytes(32));
        let authz_credential = secret(48);
        let patients_credential = secret(48);
        let mut common = env(&[
            ("PRAXIS_CACHE_URL", &cache),
            ("PRAXIS_TELEMETRY__LOG_FORMAT", "json"),
            ("PRAXIS_TELEMETRY__LOG_FILTER", "info"),
        ]);
        let path = |file: &Option<PathBuf>| {
            file.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let (cert, key, ca) = (
            path(&tls.cert_file),
            path(&tls.key_file),
            path(&tls.ca_file),
        );
        if mutual_tls {
            common.extend(env(&[
                ("PRAXIS_TLS__CERT_FILE", &cert),
                ("PRAXIS_TLS__KEY_FILE", &key),
                ("PRAXIS_TLS__CA_FILE", &ca),
                ("PRAXIS_TLS__REQUIRE_CLIENT_CERT", "true"),
            ]));
        }
        let mut processes = BTreeMap::new();
        let mut add =
            |name: &'static str, program: &str, args: &[&str], own: Vec<(String, String)>| {
                let mut all = common.clone();
                all.extend(own);
                processes.insert(
                    name,
                    Process {
                        program: bin.join(program),
                        args: args.iter().map(|a| (*a).to_owned()).collect(),
                        env: all,
                        log: work.path().join(format!("{name}.log")),
                        child: None,
                    },
                );
            };
        let data_dir = work.path().join("data");
        let data_dir = data_dir.to_string_lossy().into_owned();
        let token_env;
        match layout {
            Layout::Separate => {
                let auth = env(&[
                    ("PRAXIS_AUTH__JWKS_URL", &jwks),
                    ("PRAXIS_AUTH__API_KEY_URL", &api_keys),
                ]);
                let mut own = auth.clone();
                own.extend(env(&[
                    ("PRAXIS_LISTEN", &format!("127.0.0.1:{directory}")),
                    ("PRAXIS_DATABASE_URL", &directory_db),
                    ("PRAXIS_AUTH__SERVICE_CREDENTIALS__AUTHZ", &authz_credential),
                    (
                        "PRAXIS_AUTH__SERVICE_CREDENTIALS__PATIENTS",
                        &patients_credential,
                    ),
                    (
                        "PRAXIS_AUDIT__CHECKPOINT_KEY",
                        &base64::engine::general_purpose::STANDARD.encode(random_bytes(32)),
                    ),
                    (
                        "PRAXIS_ENCRYPTION__KEY",
                        &base64::engine::general_purpose::STANDARD.encode(random_bytes(32)),
                    ),
                ]));
                add("directory", "praxis-directory", &[], own);
                let mut own = auth.clone();
                own.extend(env(&[
                    ("PRAXIS_LISTEN", &format!("127.0.0.1:{identity}")),
                    ("PRAXIS_HTTP_LISTEN", &format!("127.0.0.1:{http}")),
                    ("PRAXIS_DATABASE_URL", &identity_db),
                    ("PRAXIS_ENCRYPTION__KEY", &encryption_key),
                    ("PRAXIS_DIRECTORY_URL", &urls.directory),
                    ("PRAXIS_LOGIN__ATTEMPTS_PER_IP_PER_MINUTE", ATTEMPTS_PER_IP),
                ]));
                add("identity", "praxis-identity", &[], own);
                let mut own = auth;
                own.extend(env(&[
                    ("PRAXIS_LISTEN", &format!("127.0.0.1:{authz}")),
                    ("PRAXIS_DATABASE_URL", &authz_db),
                    ("PRAXIS_DIRECTORY_URL", &urls.directory),
                    ("PRAXIS_AUDIT_CREDENTIAL", &authz_credential),
                ]));
                add("authz", "praxis-authz", &[], own);
                token_env = env(&[
                    ("PRAXIS_IDENTITY__DATABASE_URL", &identity_db),
                    ("PRAXIS_IDENTITY__ENCRYPTION_KEY", &encryption_key),
                ]);
            }
            Layout::Serve => {
                let own = env(&[
                    (
                        "PRAXIS_DIRECTORY__LISTEN",
                        &format!("127.0.0.1:{directory}"),
                    ),
                    ("PRAXIS_IDENTITY__LISTEN", &format!("127.0.0.1:{identity}")),
                    ("PRAXIS_IDENTITY__HTTP_LISTEN", &format!("127.0.0.1:{http}")),
                    ("PRAXIS_AUTHZ__LISTEN", &format!("127.0.0.1:{authz}")),
                    ("PRAXIS_DIRECTORY__DATABASE_URL", &directory_db),
                    ("PRAXIS_IDENTITY__DATABASE_URL", &identity_db),
                    ("PRAXIS_AUTHZ__DATABASE_URL", &authz_db),
                    ("PRAXIS_IDENTITY__ENCRYPTION_KEY", &encryption_key),
                    ("PRAXIS_SERVICE_CREDENTIALS__PATIENTS", &patients_credential),
                    ("PRAXIS_DRAIN_SECONDS", "2"),
                    ("PRAXIS_SCIM_LISTEN", &format!("127.0.0.1:{}", free_port())),
                    (
                        "PRAXIS_IDENTITY__LOGIN__ATTEMPTS_PER_IP_PER_MINUTE",
                        ATTEMPTS_PER_IP,
                    ),
                ]);
                token_env = own.clone();
                add("praxis", "praxis", &["--data-dir", &data_dir, "serve"], own);
            }
        }
        add(
            "patients",
            "praxis-patients",
            &[],
            env(&[
                ("PATIENTS_LISTEN", &format!("127.0.0.1:{patients}")),
                ("PRAXIS_DIRECTORY_URL", &urls.directory),
                ("PRAXIS_IDENTITY_URL", &urls.identity),
                ("PRAXIS_AUTHZ_URL", &urls.authz),
                ("PRAXIS_JWKS_URL", &jwks),
                ("PRAXIS_API_KEY_URL", &api_keys),
                ("PRAXIS_SERVICE_CREDENTIAL", &patients_credential),
                // Short, so the tests see a role change or a revoked key within a second or so.
                ("PATIENTS_DECISION_CACHE_MS", "1000"),
                ("PATIENTS_API_KEY_CACHE_MS", "1000"),
            ])
            .into_iter()
            .chain(if mutual_tls {
                env(&[
                    ("PATIENTS_TLS_CERT_FILE", &cert),
                    ("PATIENTS_TLS_KEY_FILE", &key),
                    ("PATIENTS_TLS_CA_FILE", &ca),
                    ("PATIENTS_TLS_REQUIRE_CLIENT_CERT", "true"),
                ])
            } else {
                Vec::new()
            })
            .collect(),
        );

        let backend = if mutual_tls {
            format!("{backend}+mtls")
        } else {
            backend
        };
        let mut system = System {
            layout,
            tls,
            backend,
            urls,
            platform_token: String::new(),
            processes,
            work,
            _databases: databases,
        };
        let order: &[&'static str] = match layout {
            Layout::Separate => &["directory", "identity", "authz", "patients"],
            Layout::Serve => &["praxis", "patients"],
        };
        for name in order {
            system.start_process(name).await;
        }
        system.platform_token = system.cli_token(&data_dir, &token_env).await;
        system
    }

    async fn cli_token(&self, data_dir: &str, env: &[(String, String)]) -> String {
        let output = Command::new(bin_dir().join("praxis"))
            .args(["--data-dir", data_dir, "token", "--platform-admin"])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .expect("praxis token");
        assert!(
            output.status.success(),
            "praxis token: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts `name` (again) and waits until it answers.
    pub async fn start_process(&mut self, name: &str) {
        let process = self.processes.get_mut(name).expect("known process");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&process.log)
            .expect("log file");
        let child = Command::new(&process.program)
            .args(&process.args)
            .envs(process.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", process.program.display()));
        process.child = Some(child);
        self.wait_ready(name).await;
    }

    /// Stops `name` abruptly (SIGKILL), as a crash or an evicted pod would.
    pub async fn kill_process(&mut self, name: &str) {
        let process = self.processes.get_mut(name).expect("known process");
        if let Some(mut child) = process.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Stops `name` the way Kubernetes does (SIGTERM, then it drains and exits).
    pub async fn stop_process(&mut self, name: &str) {
        let process = self.processes.get_mut(name).expect("known process");
        if let Some(mut child) = process.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }

    /// The health-checked gRPC services of each process.
    fn readiness(&self, name: &str) -> Vec<(String, &'static str)> {
        match name {
            "directory" => vec![(
                self.urls.directory.clone(),
                "praxis.directory.v1.UserService",
            )],
            "identity" => vec![(self.urls.identity.clone(), "praxis.identity.v1.AuthService")],
            "authz" => vec![(self.urls.authz.clone(), "praxis.authz.v1.AuthzService")],
            "praxis" => vec![
                (
                    self.urls.directory.clone(),
                    "praxis.directory.v1.UserService",
                ),
                (self.urls.identity.clone(), "praxis.identity.v1.AuthService"),
                (self.urls.authz.clone(), "praxis.authz.v1.AuthzService"),
            ],
            _ => vec![(
                self.urls.patients.clone(),
                "example.patients.v1.PatientService",
            )],
        }
    }

    async fn wait_ready(&mut self, name: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for (url, service) in self.readiness(name) {
            loop {
                if serving(&url, service, &self.tls).await {
                    break;
                }
                let exited = self
                    .processes
                    .get_mut(name)
                    .and_then(|p| p.child.as_mut())
                    .is_some_and(|child| child.try_wait().ok().flatten().is_some());
                if exited || tokio::time::Instant::now() > deadline {
                    panic!(
                        "{name} is not serving {service} at {url}; its log ends:\n{}",
                        self.log_tail(name, 30)
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = self
            .processes
            .get(name)
            .and_then(|p| std::fs::read_to_string(&p.log).ok())
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn work_dir(&self) -> &Path {
        self.work.path()
    }

    /// A channel to `url`, as a client holding this system's certificate when it has TLS.
    pub async fn channel(&self, url: &str) -> tonic::transport::Channel {
        self.tls
            .endpoint(url)
            .expect("endpoint")
            .timeout(Duration::from_secs(20))
            .connect_lazy()
    }
}

/// The gRPC health of `service` at `url` is SERVING.
async fn serving(url: &str, service: &str, tls: &praxis_runtime::tls::TlsConfig) -> bool {
    let Ok(endpoint) = tls.endpoint(url) else {
        return false;
    };
    let Ok(channel) = endpoint
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2))
        .connect()
        .await
    else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .is_ok_and(|answer| {
            answer.into_inner().status
                == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        })
}
