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

/// Serves `app` on `listener` until the process ends; a server error is logged, naming `what`.
/// Accepted connections get `TCP_NODELAY`: updates are small and must not wait for Nagle's
/// algorithm (with delayed ACKs that adds ~40 ms to some messages).
pub fn spawn(listener: tokio::net::TcpListener, app: Router, what: String) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("{what} stopped: {e}");
        }
    });
}
