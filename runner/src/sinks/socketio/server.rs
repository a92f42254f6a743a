//! The dashboard's web server: the embedded page at `/`, Socket.IO at `/socket.io/` (protocol 5,
//! and 4 for Socket.IO 2.x clients), access checks, and broadcasting that never waits for a slow
//! browser.

use super::board::{Board, Snapshot, tutorial_message};
use crate::format::window_points::Point;
use crate::serve::ListenError;
use crate::serve::access::{Access, Refusal};
use axum::Router;
use serde::Serialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{SocketError, SocketIo};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Largest HTTP payload (a polling request or response, a WebSocket message) in bytes; larger
/// client messages close that client's connection.
const MAX_CLIENT_MESSAGE: u64 = 64 * 1024;

/// How long an Engine.IO session may stay open without connecting to the namespace; browsers
/// connect within milliseconds of opening it. Until then the session holds its buffers, so this
/// bounds what clients that open sessions and never connect can hold (socketioxide's default is
/// 45 s).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Room of the clients that speak the tutorial's protocol.
const TUTORIAL_ROOM: &str = "tutorial";

/// What the page is told when it connects: the title and the panels (and, for pages that know
/// one chart only, the first panel's points and series).
#[derive(Clone, Debug, Serialize)]
pub struct PageConfig {
    /// Page title.
    pub title: String,
    /// Points the first panel shows.
    pub points: usize,
    /// The first panel's labelled series: key in the records and label on the chart.
    pub series: Vec<Series>,
    /// Every panel, in order.
    pub panels: Vec<PanelView>,
}

/// What a panel draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PanelKind {
    /// The last windows, a line per key.
    Line,
    /// The latest window, a bar per key.
    Bar,
    /// The latest window, a row per key, with the totals so far.
    Table,
    /// The latest window's total.
    Number,
}

/// A panel as the page is told of it.
#[derive(Clone, Debug, Serialize)]
pub struct PanelView {
    /// What it draws.
    #[serde(rename = "type")]
    pub kind: PanelKind,
    /// Its heading.
    pub title: String,
    /// Windows kept (and drawn, by a line chart).
    pub points: usize,
    /// Labels of keys; a line chart with labels draws only those keys, others draw every key seen.
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
    /// One board per panel.
    boards: Mutex<Vec<Board>>,
    /// Delivery counters.
    pub stats: Stats,
}

impl Dashboard {
    /// Starts disconnecting every browser (their pages reconnect by themselves, to whatever
    /// serves the address next) without waiting for it: a browser that stopped reading could
    /// hold the goodbye up for as long as it likes.
    pub fn close(&self) {
        let io = self.io.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), io.close()).await;
        });
    }
}

/// One admitted client's place under the connection cap, held by its socket; dropping it (with
/// the socket) gives the place back.
/// (Weak: the dashboard owns its sockets.)
struct Admission {
    dashboard: std::sync::Weak<Dashboard>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(dashboard) = self.dashboard.upgrade() {
            dashboard.stats.connected.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Binds `listen` and serves the dashboard on the current tokio runtime.
pub fn start(
    listen: &str,
    page: PageConfig,
    page_dir: Option<std::path::PathBuf>,
    access: impl FnOnce(u16) -> Access,
    buffer: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(Arc<Dashboard>, crate::serve::Serving), ListenError> {
    let listener = crate::serve::bind(listen)?;
    let addr = listener.local_addr().map_err(|source| ListenError::Bind {
        address: listen.to_string(),
        source,
    })?;
    let (app, dashboard) = app(page, page_dir, access(addr.port()), buffer);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let serving = crate::serve::spawn(listener, app, format!("dashboard server on {addr}"), tls)
        .map_err(|source| ListenError::Bind {
            address: listen.to_string(),
            source,
        })?;
    tracing::info!("dashboard at {scheme}://{addr}/");
    Ok((dashboard, serving))
}

/// The dashboard's web app (page, assets, Socket.IO) and its state, not yet served; with
/// `buffer` messages queued per client. Must be called on a tokio runtime.
pub fn app(
    page: PageConfig,
    page_dir: Option<std::path::PathBuf>,
    access: Access,
    buffer: usize,
) -> (Router, Arc<Dashboard>) {
    let (socket_io, io) = SocketIo::builder()
        .max_payload(MAX_CLIENT_MESSAGE)
        .ws_max_message_size(MAX_CLIENT_MESSAGE as usize)
        .ws_max_frame_size(MAX_CLIENT_MESSAGE as usize)
        .max_buffer_size(buffer)
        .connect_timeout(CONNECT_TIMEOUT)
        .build_svc();
    let dashboard = Arc::new(Dashboard {
        io: io.clone(),
        boards: Mutex::new(page.panels.iter().map(|p| Board::new(p.points)).collect()),
        stats: Stats::default(),
    });
    let page = Arc::new(page);
    // Handlers hold the dashboard weakly: it owns them (through `io`), and must be dropped when
    // its sink lets go of it.
    // A client is admitted, and its events listened for, before socketioxide acknowledges its
    // connect: a connect middleware is awaited before the acknowledgement, the connect handler
    // runs after it on a task of its own, so an event sent right after the acknowledgement (the tutorial
    // page's `test_connect`) would race the handler's registrations.
    let admit = {
        let weak = Arc::downgrade(&dashboard);
        async move |socket: SocketRef,
                    TryData(auth): TryData<Value>|
                    -> Result<(), std::convert::Infallible> {
            let Some(dashboard) = weak.upgrade() else {
                return Ok(());
            };
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
                // Told and disconnected by the connect handler, once the client is connected.
                dashboard.stats.refused.fetch_add(1, Ordering::Relaxed);
                socket.extensions.insert(refusal);
                return Ok(());
            }
            // The client stays counted exactly as long as socketioxide keeps its socket: the
            // count is released when the socket is dropped, however it left (its session
            // closed, a namespace disconnect, or one racing the connect, which socketioxide can
            // let through without ever running a disconnect handler).
            socket.extensions.insert(Arc::new(Admission {
                dashboard: Arc::downgrade(&dashboard),
            }));
            // The tutorial's page announces itself with `test_connect`; only such clients get
            // `test_message`, so the dashboard page's own clients are not sent every window twice.
            socket.on("test_connect", async |s: SocketRef| {
                s.join(TUTORIAL_ROOM);
                let _ = s.emit("connected", &json!({ "data": "Connected" }));
            });
            let counter = weak.clone();
            socket.on_fallback(async move || {
                if let Some(counter) = counter.upgrade() {
                    counter.stats.ignored.fetch_add(1, Ordering::Relaxed);
                }
            });
            let counter = weak.clone();
            socket.on_disconnect(async move |reason: DisconnectReason| {
                if matches!(
                    reason,
                    DisconnectReason::PacketParsingError | DisconnectReason::TransportError
                ) && let Some(counter) = counter.upgrade()
                {
                    counter.stats.broken.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("dashboard: a connection closed: {reason}");
                }
            });
            Ok(())
        }
    };
    let on_connect = {
        let weak = Arc::downgrade(&dashboard);
        async move |socket: SocketRef| {
            let Some(dashboard) = weak.upgrade() else {
                return;
            };
            if let Some(refusal) = socket.extensions.get::<Refusal>() {
                tracing::debug!("dashboard: refused a connection: {}", refusal.reason());
                let _ = socket.emit("refused", &json!({ "reason": refusal.reason() }));
                let _ = socket.disconnect();
                return;
            }
            let history = dashboard.history();
            let config_sent = socket.emit("config", &*page);
            let _ = socket.emit("history", &history);
            // Gone already: closed before the handler above was set up, or (a socketioxide race)
            // before the socket joined the namespace. Disconnecting it takes it out of the
            // namespace, should it have got there; its count goes with the socket (above).
            let transport_gone = matches!(
                config_sent,
                Err(socketioxide::SendError::Socket(SocketError::Closed))
            );
            if !socket.connected() || transport_gone {
                let _ = socket.disconnect();
            }
        }
    };
    io.ns("/", on_connect.with(admit));
    let app = super::pages::routes(page_dir)
        // One Socket.IO service for the one path: each socketioxide layer or service holds its
        // own Engine.IO session table, so it must not be applied per route (polling would lose
        // its session between requests).
        .route_service("/socket.io/", socket_io);
    (app, dashboard)
}

impl Dashboard {
    /// What a browser that connects now is sent: every panel's board, and the first one's
    /// points and totals at the top (for pages that know one chart only).
    fn history(&self) -> Value {
        let boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
        let panels: Vec<Snapshot> = boards.iter().map(Board::snapshot).collect();
        let first = panels.first().cloned();
        json!({
            "points": first.as_ref().map(|s| &s.points),
            "totals": first.as_ref().map(|s| &s.totals),
            "panels": panels,
        })
    }

    /// Records a closed window of panel `panel` and pushes it to every browser, without waiting
    /// for slow ones. The tutorial's clients get the first panel's windows.
    pub async fn publish(&self, panel: usize, point: Point) {
        let (update, tutorial) = {
            let mut boards = self.boards.lock().unwrap_or_else(|e| e.into_inner());
            let Some(board) = boards.get_mut(panel) else {
                return;
            };
            let tutorial = (panel == 0).then(|| tutorial_message(&point));
            let mut update = serde_json::to_value(board.add(point)).unwrap_or(Value::Null);
            if let Some(fields) = update.as_object_mut() {
                fields.insert("panel".into(), json!(panel));
            }
            (update, tutorial)
        };
        self.broadcast(None, "window", &update).await;
        let Some(tutorial) = tutorial else { return };
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    const POLLING: &str = "/socket.io/?EIO=4&transport=polling";

    /// A dashboard app for at most 4 clients, with `token` if given.
    fn test_app(token: Option<&str>) -> (Router, Arc<Dashboard>) {
        let page = PageConfig {
            title: "t".into(),
            points: 2,
            series: Vec::new(),
            panels: vec![PanelView {
                kind: PanelKind::Line,
                title: "t".into(),
                points: 2,
                series: Vec::new(),
            }],
        };
        app(page, None, Access::new(token, Vec::new(), 5000, 4), 8)
    }

    async fn call(router: &Router, request: Request<Body>) -> String {
        let response = router.clone().oneshot(request).await.unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        String::from_utf8_lossy(&body).into_owned()
    }

    /// Opens an Engine.IO session and sends `packets`; returns the session's path.
    async fn session(router: &Router, packets: &str) -> String {
        session_with(router, Body::from(packets.to_string())).await
    }

    /// Opens an Engine.IO session and posts `body` to it; returns the session's path.
    async fn session_with(router: &Router, body: Body) -> String {
        let open = call(router, Request::get(POLLING).body(Body::empty()).unwrap()).await;
        let sid = open
            .split("\"sid\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let path = format!("{POLLING}&sid={sid}");
        call(router, Request::post(&path).body(body).unwrap()).await;
        path
    }

    /// Clients that connect again on their session (with or without the token) or leave the
    /// namespace are uncounted once they leave.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_that_connect_again_or_send_odd_packets_are_uncounted_when_they_leave() {
        let (router, dashboard) = test_app(Some("t0ken"));
        for packets in [
            "40{\"token\":\"t0ken\"}\u{1e}40",
            "40{\"token\":\"t0ken\"}\u{1e}40{\"token\":\"t0ken\"}",
            "40{\"token\":\"t0ken\"}\u{1e}41\u{1e}40",
        ] {
            let path = session(&router, packets).await;
            // Read what the server sent, so the connect handlers have run.
            let mut answer = String::new();
            for _ in 0..5 {
                answer += &call(&router, Request::get(&path).body(Body::empty()).unwrap()).await;
                if answer.contains("\"config\"") || answer.contains("Session ID unknown") {
                    break;
                }
            }
            call(&router, Request::post(&path).body(Body::from("1")).unwrap()).await;
        }
        let connected = || dashboard.stats.connected.load(Ordering::Acquire);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(connected(), 0, "clients that left are still counted");
        assert_eq!(
            dashboard.clients(),
            0,
            "sockets of clients that left are kept"
        );
    }

    /// Found by the `socketio` fuzz target: a namespace disconnect (`41`) that socketioxide
    /// handles while the same client's connect (`40`) is between joining the namespace and being
    /// marked connected leaves a socket that is out of the namespace but connected, whose
    /// disconnect handler never runs: counting on that handler leaked one place under the cap
    /// per such client. The target's input (a connect with the token, a binary event, a
    /// namespace disconnect, then connects without the token) sent session after session, as
    /// the fuzz target does, with its runtime (one worker thread); before the fix this failed
    /// within a few hundred sessions.
    #[test]
    fn clients_whose_namespace_disconnect_races_their_connect_are_uncounted() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (router, dashboard) = runtime.block_on(async { test_app(Some("t0ken")) });
        use base64::Engine as _;
        let found = base64::engine::general_purpose::STANDARD
            .decode("NDB7InRva2VuIjoidDBrZW4ifR40NTEAAAAAAAAAAAAAAAAAAAAAAAAAAAAtWzB0b259ZWYifR40MTAeNDBuIjoiHjQwfR40MH0eNDAeNDBrfR40MAbKmjt9HjQwHjQwOiIeNDB9HjQwfR40MB40MGt9HjQwfR40MAAAAAAAAAAAAB40MGsrW2sAVQAAAAAAKmxhLHsiASpsZWNlaG9sZAAARA==")
            .unwrap();
        let connected = || dashboard.stats.connected.load(Ordering::Acquire);
        for session in 0..4000 {
            runtime.block_on(async {
                let path = session_with(&router, Body::from(found.clone())).await;
                let read = call(&router, Request::get(&path).body(Body::empty()).unwrap());
                let _ = tokio::time::timeout(std::time::Duration::from_millis(50), read).await;
                call(&router, Request::post(&path).body(Body::from("1")).unwrap()).await;
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
                while connected() > 0 {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "session {session}: {} clients counted 2 s after their session closed",
                        connected()
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            });
        }
    }

    /// Found by the `socketio` fuzz target: a client that connected and closed its session at
    /// once could leave the connection counted for good (the close came before the connect
    /// handler had set up its disconnect handler), so `max_connections` such clients locked
    /// everyone out.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_that_leave_at_once_do_not_use_up_the_connection_cap() {
        let (router, dashboard) = test_app(None);
        for n in 0..200 {
            // Some connect again on the same session before leaving.
            let packets = if n % 2 == 0 {
                "40"
            } else {
                "40\u{1e}40\u{1e}40"
            };
            let path = session(&router, packets).await;
            call(&router, Request::post(&path).body(Body::from("1")).unwrap()).await;
        }
        // Connect handlers of closed sessions may still be on their way; wait until the count
        // has stayed at zero for 100 ms.
        let connected = || dashboard.stats.connected.load(Ordering::Acquire);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut zero_since = None;
        while zero_since.is_none_or(|t: std::time::Instant| t.elapsed().as_millis() < 100) {
            assert!(
                std::time::Instant::now() < deadline,
                "still {} counted",
                connected()
            );
            zero_since = match (connected(), zero_since) {
                (0, None) => Some(std::time::Instant::now()),
                (0, since) => since,
                _ => None,
            };
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            dashboard.clients(),
            0,
            "socketioxide keeps no socket of a client that is gone"
        );
        let path = session(&router, "40").await;
        let mut answer = String::new();
        for _ in 0..5 {
            answer += &call(&router, Request::get(&path).body(Body::empty()).unwrap()).await;
            if answer.contains("\"config\"") || answer.contains("refused") {
                break;
            }
        }
        assert!(
            answer.contains("\"config\""),
            "a new client is let in: {answer}"
        );
    }
}
