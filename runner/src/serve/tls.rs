//! Optional TLS for weir's listeners: `tls = { cert, key }`, PEM files, served with rustls — for
//! the HTTP listeners (the dashboard, `/metrics`) through [`TlsListener`], and for the embedded
//! Kafka broker, which also may require client certificates signed by a CA ([`server_config`]).
//! Handshakes run beside the accept loop, each with a deadline and a bounded number at a time, so
//! a client that stalls mid-handshake holds up no one else.

use crate::stage::OptionIssue;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// `tls = { cert, key }`: serve HTTPS with this certificate chain and private key.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM file: the server's certificate, then any intermediates.
    pub cert: String,
    /// PEM file: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing, unreadable or not PEM.
    #[error("tls.{key}: cannot read {file}: {message}")]
    Read {
        /// `cert` or `key`.
        key: &'static str,
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// The certificate file holds no certificate.
    #[error("tls.{key}: {file} holds no PEM certificate")]
    NoCertificate {
        /// `cert` or `ca`.
        key: &'static str,
        /// The file.
        file: String,
    },
    /// rustls refused the client CA (e.g. not a CA certificate).
    #[error("tls.ca: cannot check client certificates against {file}: {message}")]
    ClientCa {
        /// The CA file.
        file: String,
        /// rustls' reason.
        message: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("tls: cannot use {cert} with {key}: {message}")]
    Refused {
        /// The certificate file.
        cert: String,
        /// The key file.
        key: String,
        /// rustls' reason.
        message: String,
    },
}

impl ServerTls {
    /// Checks that both files exist; issues name `tls.cert` / `tls.key`.
    pub fn check(&self) -> Vec<OptionIssue> {
        check_files(&[("tls.cert", Some(&self.cert)), ("tls.key", Some(&self.key))])
    }

    /// Reads the files into a server configuration (HTTP/1.1 only, as the servers speak).
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = server_config(&self.cert, &self.key, None)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// An issue for each given file (option key, path) that is not a readable file.
pub fn check_files(files: &[(&str, Option<&String>)]) -> Vec<OptionIssue> {
    files
        .iter()
        .filter_map(|(key, file)| Some((*key, (*file)?)))
        .filter(|(_, file)| !Path::new(file).is_file())
        .map(|(key, file)| OptionIssue::new(key, format!("{file} is not a readable file")))
        .collect()
}

/// A rustls server configuration from PEM files: the certificate chain `cert`, its private key
/// `key`, and, with `client_ca`, a requirement that every client shows a certificate that CA
/// signed (mutual TLS). TLS 1.2 and 1.3 with rustls' safe defaults.
pub fn server_config(
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
) -> Result<rustls::ServerConfig, TlsError> {
    let read = |option: &'static str, file: &str, e: &dyn std::fmt::Display| TlsError::Read {
        key: option,
        file: file.to_string(),
        message: e.to_string(),
    };
    let certificates = |option: &'static str, file: &str| {
        let chain = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| read(option, file, &e))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                key: option,
                file: file.to_string(),
            });
        }
        Ok(chain)
    };
    let chain = certificates("cert", cert)?;
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| read("key", key, &e))?;
    let refused = |e: rustls::Error| TlsError::Refused {
        cert: cert.to_string(),
        key: key.to_string(),
        message: e.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(refused)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for certificate in certificates("ca", ca)? {
                roots.add(certificate).map_err(|e| TlsError::ClientCa {
                    file: ca.to_string(),
                    message: e.to_string(),
                })?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .map_err(|e| TlsError::ClientCa {
                        file: ca.to_string(),
                        message: e.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(chain, private_key)
        .map_err(refused)
}

/// Longest a client may take over its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Most handshakes in progress at once; further connections wait to be accepted.
const CONCURRENT_HANDSHAKES: usize = 256;

/// A listener that hands out connections whose TLS handshake has completed.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    /// The accept loop, which owns the listening socket: stopped with the listener.
    accepting: tokio::task::AbortHandle,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl TlsListener {
    /// Accepts on `tcp` (each connection first given to `tune`) and shakes hands with `config`,
    /// on the current runtime.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        tune: fn(&TcpStream),
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (handed, ready) = mpsc::channel(CONCURRENT_HANDSHAKES);
        let slots = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if handed.is_closed() {
                    return;
                }
                tune(&stream);
                let (acceptor, handed) = (acceptor.clone(), handed.clone());
                tokio::spawn(async move {
                    let shake = tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream));
                    match shake.await {
                        Ok(Ok(tls)) => {
                            drop(slot);
                            let _ = handed.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer} failed: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            accepting: accepting.abort_handle(),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends with the listener; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl From<TlsError> for crate::stage::StageError {
    fn from(error: TlsError) -> Self {
        crate::stage::StageError::External(Box::new(error))
    }
}
