//! Serving HTTP from a sink: bind the configured address (a busy port is an error that names the
//! `listen` key) and run an axum app on the current runtime.

use axum::Router;

/// Binds `listen` now, so that a busy or invalid address fails the stage before the run starts.
pub fn bind(listen: &str) -> Result<tokio::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind(listen).map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "cannot listen on {listen}: the address is already in use (set another `listen`, e.g. \"127.0.0.1:0\" for any free port)"
        ),
        _ => format!("cannot listen on {listen}: {e}"),
    })?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())
}

/// Kernel send buffer of each accepted connection, in bytes. Linux otherwise grows it up to
/// `tcp_wmem`'s maximum (4 MiB here) for a client that has stopped reading, so with thousands of
/// clients a few stalled ones could pin gigabytes; with a cap they fall behind quickly and the
/// sink's per-client queue drops (and counts) their updates instead. Dashboard updates are a few
/// hundred bytes.
const SEND_BUFFER: usize = 64 * 1024;

/// Serves `app` on `listener` until the process ends; a server error is logged, naming `what`.
/// Accepted connections get `TCP_NODELAY` (updates are small and must not wait for Nagle's
/// algorithm: with delayed ACKs that adds ~40 ms to some messages) and a bounded send buffer.
pub fn spawn(listener: tokio::net::TcpListener, app: Router, what: String) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        if let Err(e) = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!("cannot set SO_SNDBUF: {e}");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("{what} stopped: {e}");
        }
    });
}
