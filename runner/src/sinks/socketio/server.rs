//! The dashboard's web server: the embedded page at `/`, Socket.IO at `/socket.io/` (protocol 5,
//! and 4 for Socket.IO 2.x clients), access checks, and broadcasting that never waits for a slow
//! browser.

use super::access::{Access, Refusal};
use super::board::{Board, Snapshot, tutorial_message};
use crate::format::window_points::Point;
use crate::serve::ListenError;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::{SocketError, SocketIo};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Largest HTTP payload (a polling request or response, a WebSocket message) in bytes; larger
/// client messages close that client's connection.
const MAX_CLIENT_MESSAGE: u64 = 64 * 1024;

/// Room of the clients that speak the tutorial's protocol.
const TUTORIAL_ROOM: &str = "tutorial";

/// What the page is told when it connects: title and series.
#[derive(Clone, Debug, Serialize)]
pub struct PageConfig {
    /// Chart title.
    pub title: String,
    /// Points shown.
    pub points: usize,
    /// Series in order: key in the records and label on the chart.
    pub series: Vec<Series>,
}

/// One chart series.
#[derive(Clone, Debug, Serialize)]
pub struct Series {
    /// The key value in the window records (e.g. gender "0").
    pub key: String,
    /// Its label.
    pub label: String,
}

/// Counters for the run summary and the load benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages not delivered because a browser's buffer was full (slow client).
    pub dropped: AtomicU64,
    /// Connections refused (token, origin or the cap).
    pub refused: AtomicU64,
    /// Clients connected now.
    pub connected: AtomicUsize,
    /// Client messages ignored (unknown events or bad payloads).
    pub ignored: AtomicU64,
    /// Connections closed on a protocol or transport error: a message over the size limit or
    /// one that does not parse (Engine.IO cannot tell these from a connection that broke off).
    pub broken: AtomicU64,
}

/// A running dashboard.
pub struct Dashboard {
    io: SocketIo,
    board: Mutex<Board>,
    /// Delivery counters.
    pub stats: Stats,
}

/// Binds `listen` and serves the dashboard on the current tokio runtime.
pub fn start(
    listen: &str,
    page: PageConfig,
    access: impl FnOnce(u16) -> Access,
    buffer: usize,
) -> Result<Arc<Dashboard>, ListenError> {
    let listener = crate::serve::bind(listen)?;
    let addr = listener.local_addr().map_err(|source| ListenError::Bind {
        address: listen.to_string(),
        source,
    })?;
    let access = access(addr.port());
    let (socket_io, io) = SocketIo::builder()
        .max_payload(MAX_CLIENT_MESSAGE)
        .ws_max_message_size(MAX_CLIENT_MESSAGE as usize)
        .ws_max_frame_size(MAX_CLIENT_MESSAGE as usize)
        .max_buffer_size(buffer)
        .build_svc();
    let dashboard = Arc::new(Dashboard {
        io: io.clone(),
        board: Mutex::new(Board::new(page.points)),
        stats: Stats::default(),
    });
    let page = Arc::new(page);
    let on_connect = {
        let dashboard = Arc::clone(&dashboard);
        async move |socket: SocketRef, TryData(auth): TryData<Value>| {
            let auth = auth.ok();
            let admitted = access
                .check(&socket.req_parts().headers, auth.as_ref())
                .and_then(|()| {
                    let stats = &dashboard.stats;
                    let was = stats.connected.fetch_add(1, Ordering::AcqRel);
                    if was >= access.max_connections {
                        stats.connected.fetch_sub(1, Ordering::AcqRel);
                        Err(Refusal::Full)
                    } else {
                        Ok(())
                    }
                });
            if let Err(refusal) = admitted {
                dashboard.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("dashboard: refused a connection: {}", refusal.reason());
                let _ = socket.emit("refused", &json!({ "reason": refusal.reason() }));
                let _ = socket.disconnect();
                return;
            }
            let snapshot: Snapshot = dashboard
                .board
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .snapshot();
            let _ = socket.emit("config", &*page);
            let _ = socket.emit("history", &snapshot);
            // The tutorial's page announces itself with `test_connect`; only such clients get
            // `test_message`, so the dashboard page's own clients are not sent every window twice.
            socket.on("test_connect", async |s: SocketRef| {
                s.join(TUTORIAL_ROOM);
                let _ = s.emit("connected", &json!({ "data": "Connected" }));
            });
            let counter = Arc::clone(&dashboard);
            socket.on_fallback(async move || {
                counter.stats.ignored.fetch_add(1, Ordering::Relaxed);
            });
            let counter = Arc::clone(&dashboard);
            socket.on_disconnect(async move |reason: DisconnectReason| {
                counter.stats.connected.fetch_sub(1, Ordering::AcqRel);
                if matches!(
                    reason,
                    DisconnectReason::PacketParsingError | DisconnectReason::TransportError
                ) {
                    counter.stats.broken.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("dashboard: a connection closed: {reason}");
                }
            });
        }
    };
    io.ns("/", on_connect);
    let app = Router::new()
        .route(
            "/",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("../../../../web/index.html"),
                )
            }),
        )
        .route(
            "/app.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../../web/app.js"),
                )
            }),
        )
        .route(
            "/style.css",
            get(|| async {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../../../../web/style.css"),
                )
            }),
        )
        .route(
            "/vendor/uPlot.iife.min.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../../web/vendor/uPlot.iife.min.js"),
                )
            }),
        )
        .route(
            "/vendor/uPlot.min.css",
            get(|| async {
                asset(
                    "text/css; charset=utf-8",
                    include_str!("../../../../web/vendor/uPlot.min.css"),
                )
            }),
        )
        .route(
            "/vendor/socket.io.min.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("../../../../web/vendor/socket.io.min.js"),
                )
            }),
        )
        // One Socket.IO service for the one path: each socketioxide layer or service holds its
        // own Engine.IO session table, so it must not be applied per route (polling would lose
        // its session between requests).
        .route_service("/socket.io/", socket_io)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found") });
    crate::serve::spawn(listener, app, format!("dashboard server on {addr}"));
    tracing::info!("dashboard at http://{addr}/");
    Ok(dashboard)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    (headers, body)
}

impl Dashboard {
    /// Records a closed window and pushes it to every browser, without waiting for slow ones.
    pub async fn publish(&self, point: Point) {
        let (update, tutorial) = {
            let mut board = self.board.lock().unwrap_or_else(|e| e.into_inner());
            let tutorial = tutorial_message(&point);
            let update = serde_json::to_value(board.add(point)).unwrap_or(Value::Null);
            (update, tutorial)
        };
        self.broadcast(None, "window", &update).await;
        self.broadcast(
            Some(TUTORIAL_ROOM),
            "test_message",
            &json!({ "data": tutorial }),
        )
        .await;
    }

    /// Sends an event to every browser, or to those in `room`.
    async fn broadcast(&self, room: Option<&'static str>, event: &str, data: &Value) {
        let sent = match room {
            Some(room) => self.io.to(room).emit(event, data).await,
            None => self.io.emit(event, data).await,
        };
        let Err(e) = sent else { return };
        // A full per-browser queue (a slow client) fails for that browser only: its update is
        // dropped and counted. A browser that disconnected meanwhile has nothing to lose.
        let dropped = match &e {
            socketioxide::BroadcastError::Socket(errors) => errors
                .iter()
                .filter(|e| matches!(e, SocketError::InternalChannelFull))
                .count() as u64,
            _ => 1,
        };
        self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        tracing::debug!("dashboard: {event} not delivered everywhere: {e}");
    }

    /// Number of connected browsers.
    pub fn clients(&self) -> usize {
        self.io.sockets().len()
    }
}
