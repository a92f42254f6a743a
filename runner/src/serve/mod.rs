//! Listening for connections from a stage or the embedded broker: the one check of a `listen`
//! option (an address like `127.0.0.1:5000`), binding it now so a busy port fails the stage
//! before the run starts with a message that names the key, and serving an axum app on the
//! current runtime, over TLS when asked.

pub mod access;
pub mod tls;
pub mod token;

use crate::stage::{OptionIssue, StageError};
use axum::Router;
use std::net::SocketAddr;

/// Why an address cannot be listened on.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The value is not `host:port`.
    #[error("`{value}` is not an address like \"{example}\"")]
    NotAnAddress {
        /// The value as written.
        value: String,
        /// A good value for this option.
        example: &'static str,
    },
    /// Something else listens there.
    #[error(
        "cannot listen on {address}: the address is already in use (set another `listen`, e.g. \"127.0.0.1:0\" for any free port)"
    )]
    InUse {
        /// The address.
        address: String,
    },
    /// Binding failed otherwise (no such interface, no permission).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl From<ListenError> for StageError {
    fn from(error: ListenError) -> Self {
        StageError::External(Box::new(error))
    }
}

/// Reads a `listen` value; `example` is a good value for the option, shown when it is not one.
pub fn listen_address(value: &str, example: &'static str) -> Result<SocketAddr, ListenError> {
    value.parse().map_err(|_| ListenError::NotAnAddress {
        value: value.to_string(),
        example,
    })
}

/// The option issue for a `listen` option (at `key`) whose value is not an address.
pub fn listen_issue(key: &str, value: &str, example: &'static str) -> Option<OptionIssue> {
    listen_address(value, example)
        .err()
        .map(|e| OptionIssue::new(key, e.to_string()))
}

/// Binds `listen` now, so that a busy or invalid address fails the stage before the run starts.
pub fn bind(listen: &str) -> Result<tokio::net::TcpListener, ListenError> {
    let failed = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AddrInUse => ListenError::InUse {
            address: listen.to_string(),
        },
        _ => ListenError::Bind {
            address: listen.to_string(),
            source,
        },
    };
    let listener = std::net::TcpListener::bind(listen).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    tokio::net::TcpListener::from_std(listener).map_err(failed)
}

/// Kernel send buffer of each accepted connection, in bytes. Linux otherwise grows it up to
/// `tcp_wmem`'s maximum (4 MiB here) for a client that has stopped reading, so with thousands of
/// clients a few stalled ones could pin gigabytes; with a cap they fall behind quickly and the
/// sink's per-client queue drops (and counts) their updates instead. Dashboard updates are a few
/// hundred bytes.
const SEND_BUFFER: usize = 64 * 1024;

/// A running server: it stops listening when stopped or dropped (the stage that started it is
/// done, or was replaced by a reload).
#[derive(Debug)]
pub struct Serving(Option<tokio::task::JoinHandle<()>>);

impl Serving {
    /// Stops the server and waits until its address is free again.
    pub async fn stop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Serves `app` on `listener`, over TLS with `tls`, until the returned handle is dropped; a server
/// error is logged, naming `what`.
pub fn spawn(
    listener: tokio::net::TcpListener,
    app: Router,
    what: String,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> Result<Serving, std::io::Error> {
    use axum::serve::ListenerExt;
    let task = match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config, tune)?;
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("{what} stopped: {e}");
                }
            })
        }
        None => {
            let listener = listener.tap_io(|tcp| tune(tcp));
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!("{what} stopped: {e}");
                }
            })
        }
    };
    Ok(Serving(Some(task)))
}

/// Settings of each accepted connection: `TCP_NODELAY` (updates are small and must not wait for
/// Nagle's algorithm: with delayed ACKs that adds ~40 ms to some messages) and a bounded send
/// buffer.
fn tune(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!("cannot set TCP_NODELAY: {e}");
    }
    if let Err(e) = socket2::SockRef::from(tcp).set_send_buffer_size(SEND_BUFFER) {
        tracing::debug!("cannot set SO_SNDBUF: {e}");
    }
}
