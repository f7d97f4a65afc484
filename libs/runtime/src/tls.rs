//! Optional TLS (rustls) for every listener and every call between services. Off unless a
//! certificate is configured; with `require_client_cert`, gRPC listeners accept only callers
//! presenting a certificate signed by `ca_file` (mTLS), and every Praxis client presents its own.
//!
//! Outgoing calls use TLS when their URL is `https://`, trusting `ca_file` (or the system's
//! roots when it is unset).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// PEM certificate chain this service presents: as a server, and as a client to peers
    /// that require client certificates.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that sign the other services' certificates.
    pub ca_file: Option<PathBuf>,
    /// mTLS on the gRPC listener: refuse callers without a certificate signed by `ca_file`.
    pub require_client_cert: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls: {0}")]
    Config(String),
    #[error("tls: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn nonempty(path: &Option<PathBuf>) -> Option<&Path> {
    path.as_deref().filter(|p| !p.as_os_str().is_empty())
}

impl TlsConfig {
    /// A certificate is configured: listeners serve TLS.
    pub fn enabled(&self) -> bool {
        nonempty(&self.cert_file).is_some()
    }

    pub fn validate(&self) -> Result<(), TlsError> {
        let cert = nonempty(&self.cert_file).is_some();
        let key = nonempty(&self.key_file).is_some();
        if cert != key {
            return Err(TlsError::Config(
                "tls.cert_file and tls.key_file go together".to_owned(),
            ));
        }
        if self.require_client_cert && (!cert || nonempty(&self.ca_file).is_none()) {
            return Err(TlsError::Config(
                "tls.require_client_cert needs tls.cert_file, tls.key_file and tls.ca_file"
                    .to_owned(),
            ));
        }
        Ok(())
    }

    fn identity(&self) -> Result<Option<tonic::transport::Identity>, TlsError> {
        match (nonempty(&self.cert_file), nonempty(&self.key_file)) {
            (Some(cert), Some(key)) => Ok(Some(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ))),
            _ => Ok(None),
        }
    }

    fn ca(&self) -> Result<Option<tonic::transport::Certificate>, TlsError> {
        nonempty(&self.ca_file)
            .map(|path| read(path).map(tonic::transport::Certificate::from_pem))
            .transpose()
    }

    /// What a gRPC listener serves with; `None` when TLS is off.
    pub fn server(&self) -> Result<Option<tonic::transport::ServerTlsConfig>, TlsError> {
        self.validate()?;
        let Some(identity) = self.identity()? else {
            return Ok(None);
        };
        let mut config = tonic::transport::ServerTlsConfig::new().identity(identity);
        if self.require_client_cert
            && let Some(ca) = self.ca()?
        {
            config = config.client_ca_root(ca);
        }
        Ok(Some(config))
    }

    /// What an `https://` call presents and trusts.
    pub fn client(&self) -> Result<tonic::transport::ClientTlsConfig, TlsError> {
        self.validate()?;
        let mut config = tonic::transport::ClientTlsConfig::new();
        config = match self.ca()? {
            Some(ca) => config.ca_certificate(ca),
            None => config.with_webpki_roots(),
        };
        if let Some(identity) = self.identity()? {
            config = config.identity(identity);
        }
        Ok(config)
    }

    /// A lazily connecting endpoint for `url`, with TLS when it is `https://`.
    pub fn endpoint(&self, url: &str) -> Result<tonic::transport::Endpoint, TlsError> {
        let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
            .map_err(|error| TlsError::Config(format!("{url}: {error}")))?;
        if url.starts_with("https://") {
            return endpoint
                .tls_config(self.client()?)
                .map_err(|error| TlsError::Config(format!("{url}: {error}")));
        }
        Ok(endpoint)
    }

    /// An HTTP client that trusts `ca_file` too (JWK Sets, API key checks over `https://`).
    pub fn http_client(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, TlsError> {
        let Some(path) = nonempty(&self.ca_file) else {
            return Ok(builder);
        };
        let mut builder = builder;
        for certificate in reqwest::Certificate::from_pem_bundle(&read(path)?)
            .map_err(|error| TlsError::Config(format!("{}: {error}", path.display())))?
        {
            builder = builder.add_root_certificate(certificate);
        }
        Ok(builder)
    }

    /// rustls settings for an HTTP listener (identity's JWK Set and SSO pages): server
    /// certificate only, since browsers present none.
    pub fn http_server(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        self.validate()?;
        let (Some(cert), Some(key)) = (nonempty(&self.cert_file), nonempty(&self.key_file)) else {
            return Ok(None);
        };
        let bad = |path: &Path, error: &dyn std::fmt::Display| {
            TlsError::Config(format!("{}: {error}", path.display()))
        };
        let chain = CertificateDer::pem_slice_iter(&read(cert)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| bad(cert, &error))?;
        let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| bad(key, &e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|error| bad(cert, &error))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

/// Serves `app` on `listener` until `shutdown`, over TLS when `tls` is given. Handlers may read
/// the peer's address (`ConnectInfo<SocketAddr>`) either way.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let stopped = shutdown.cancelled_owned();
    match tls {
        // `tap_io` gives the TLS listener the peer address `ConnectInfo` needs.
        Some(tls) => {
            axum::serve(TlsListener::new(listener, tls)?.tap_io(|_| {}), app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}

/// A TCP listener whose connections are TLS: handshakes run beside the accept loop (bounded
/// in time), so a slow client holds up no one else. For `axum::serve`.
pub struct TlsListener {
    handshaken: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
}

const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl TlsListener {
    pub fn new(
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let (sender, handshaken) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                // Ends (and frees the port) once the server has dropped this listener.
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = sender.closed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::debug!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handed = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { handshaken, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_configuration_is_refused_before_start() {
        let off = TlsConfig::default();
        assert!(!off.enabled());
        assert!(off.server().ok().flatten().is_none());
        let cert_only = TlsConfig {
            cert_file: Some("/etc/praxis/tls.crt".into()),
            ..TlsConfig::default()
        };
        assert!(cert_only.validate().is_err());
        let mutual_without_ca = TlsConfig {
            cert_file: Some("/etc/praxis/tls.crt".into()),
            key_file: Some("/etc/praxis/tls.key".into()),
            require_client_cert: true,
            ..TlsConfig::default()
        };
        assert!(mutual_without_ca.validate().is_err());
        let missing = TlsConfig {
            ca_file: Some("/etc/praxis/ca.crt".into()),
            ..mutual_without_ca
        };
        assert!(missing.validate().is_ok());
        let error = missing
            .server()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("/etc/praxis/tls.crt"), "{error}");
    }

    #[test]
    fn only_https_urls_get_tls() {
        let tls = TlsConfig::default();
        assert!(tls.endpoint("http://127.0.0.1:1").is_ok());
        assert!(tls.endpoint("https://127.0.0.1:1").is_ok());
        assert!(tls.endpoint("not a url").is_err());
    }
}
