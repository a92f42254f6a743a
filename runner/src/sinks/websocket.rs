//! Sink `websocket`: sends every record, as a JSON object, to every connected client — over a
//! plain WebSocket (`ws://host:port/`, a client that asks to upgrade) or as Server-Sent Events on
//! the same address (`EventSource`, `curl -N`: any other GET) — with the dashboard's rules on who
//! may connect (`serve::access`: token, origin, connection cap).
//!
//! Live only: a client gets what is sent while it is connected. Each client has a queue of
//! `client_buffer` messages; a client that falls further behind misses messages, counted, and is
//! not allowed to hold the pipeline back.

use crate::record::Batch;
use crate::record::json::row_json;
use crate::serve::access::{Access, Refusal};
use crate::serve::tls::ServerTls;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, Sink, Stage, StageConfig,
    StageError, StageKind, StageResult,
};
use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

crate::stage_options! {
    /// Options of the `websocket` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WebSocketSinkConfig, documented in OPTIONS {
        #[serde(default = "default_listen")]
        listen: String => OptionDoc::of("host:port", "\"127.0.0.1:5001\"", "where to accept WebSocket and Server-Sent Events clients (loopback unless you say otherwise)"),
        token: Option<String> => OptionDoc::of("string", "none", "clients must present it: `Authorization: Bearer <token>`, or the `weir_token` cookie"),
        tls: Option<ServerTls> => OptionDoc::of("{ cert, key }", "none (plain)", "serve wss:// and https:// with these PEM files (certificate chain, private key)"),
        #[serde(default)]
        allowed_origins: Vec<String> => OptionDoc::of("[string]", "[] (localhost and IP addresses on this port)", "other web origins whose pages may connect; \"*\" for any"),
        #[serde(default = "default_max_connections")]
        max_connections: usize => OptionDoc::of("integer", "20000", "most clients connected at once; more are refused (503) and counted"),
        #[serde(default = "default_buffer")]
        client_buffer: usize => OptionDoc::of("integer", "1024", "messages queued per client; a client further behind misses messages (counted)"),
    }
}

fn default_listen() -> String {
    "127.0.0.1:5001".into()
}
fn default_max_connections() -> usize {
    20_000
}
fn default_buffer() -> usize {
    1024
}

/// The largest message a client may send (clients have nothing to say; pings and closes fit).
const MAX_CLIENT_MESSAGE: usize = 4096;

/// The `websocket` sink type.
pub fn factory() -> Builtin<WebSocketSinkConfig> {
    Builtin::new(
        StageKind::Sink,
        "websocket",
        "Sends each record as JSON to every client of a plain WebSocket or Server-Sent Events",
        OPTIONS,
    )
}

impl BuiltinConfig for WebSocketSinkConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        issues.extend(crate::serve::listen_issue(
            "listen",
            &self.listen,
            "127.0.0.1:5001",
        ));
        if self.client_buffer == 0 {
            issues.push(OptionIssue::new("client_buffer", "must be at least 1"));
        }
        if let Some(tls) = &self.tls {
            issues.extend(tls.check());
        }
        issues
    }

    fn warnings(&self) -> Vec<OptionIssue> {
        crate::serve::token::open_listener_warning(
            "listen",
            &self.listen,
            self.token.is_some(),
            self.tls.is_some(),
        )
    }
}

/// What the server and the sink share.
struct Hub {
    /// Where records go to the clients; taken (closing every client's stream) when the sink
    /// finishes.
    messages: std::sync::Mutex<Option<broadcast::Sender<Arc<str>>>>,
    access: Access,
    connected: AtomicUsize,
    refused: AtomicU64,
    dropped: AtomicU64,
    served: AtomicU64,
}

impl StageConfig for WebSocketSinkConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let listener = crate::serve::bind(&self.listen)?;
        let addr = listener
            .local_addr()
            .map_err(|e| StageError::stream("read the address of", &self.listen, e))?;
        let (messages, _) = broadcast::channel(self.client_buffer);
        let hub = Arc::new(Hub {
            messages: std::sync::Mutex::new(Some(messages)),
            access: Access::new(
                self.token.as_deref(),
                self.allowed_origins.clone(),
                addr.port(),
                self.max_connections,
            ),
            connected: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            served: AtomicU64::new(0),
        });
        let app = Router::new().fallback(accept).with_state(Arc::clone(&hub));
        let tls = self.tls.as_ref().map(ServerTls::load).transpose()?;
        let secure = tls.is_some();
        let serving = crate::serve::spawn(listener, app, format!("{} on {addr}", cx.path), tls)
            .map_err(|e| StageError::stream("serve", &self.listen, e))?;
        let (ws, http) = if secure {
            ("wss", "https")
        } else {
            ("ws", "http")
        };
        tracing::info!(
            "{}: records at {ws}://{addr}/ (WebSocket) and {http}://{addr}/ (Server-Sent Events)",
            cx.path
        );
        Ok(Stage::Sink(Box::new(WebSocketSink {
            hub,
            serving,
            label: cx.path.clone(),
        })))
    }
}

/// A client leaving, whichever way it goes.
struct Seat(Arc<Hub>);

impl Hub {
    /// A queue of what is sent from now on; `None` once the sink has finished.
    fn subscribe(&self) -> Option<broadcast::Receiver<Arc<str>>> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes a seat for a new client, or says why not (the status and the reason).
fn admit(hub: &Arc<Hub>, request: &Request) -> Result<Seat, (StatusCode, &'static str)> {
    let refuse = |refusal: Refusal| {
        hub.refused.fetch_add(1, Ordering::Relaxed);
        let status = match refusal {
            Refusal::Token => StatusCode::UNAUTHORIZED,
            Refusal::Origin => StatusCode::FORBIDDEN,
            Refusal::Full => StatusCode::SERVICE_UNAVAILABLE,
        };
        tracing::debug!("refused a client: {}", refusal.reason());
        (status, refusal.reason())
    };
    if request.method() != axum::http::Method::GET {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "GET only"));
    }
    hub.access.check(request.headers(), None).map_err(refuse)?;
    let seated = hub.connected.fetch_add(1, Ordering::AcqRel) + 1;
    let seat = Seat(Arc::clone(hub));
    if seated > hub.access.max_connections {
        return Err(refuse(Refusal::Full));
    }
    hub.served.fetch_add(1, Ordering::Relaxed);
    Ok(seat)
}

/// Every request: a WebSocket upgrade, or a stream of Server-Sent Events.
async fn accept(State(hub): State<Arc<Hub>>, mut request: Request) -> Response {
    let seat = match admit(&hub, &request) {
        Ok(seat) => seat,
        Err(refused) => return refused.into_response(),
    };
    let headers = request.headers();
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(messages) = hub.subscribe() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the stream has ended").into_response();
    };
    if !upgrade {
        return events(messages, seat);
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key").into_response();
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return (
            StatusCode::BAD_REQUEST,
            [(header::SEC_WEBSOCKET_VERSION, "13")],
            "WebSocket version 13 only",
        )
            .into_response();
    }
    let accept_key = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("a WebSocket upgrade failed: {e}");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_CLIENT_MESSAGE))
            .max_frame_size(Some(MAX_CLIENT_MESSAGE));
        let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            Role::Server,
            Some(config),
        )
        .await;
        serve_socket(socket, messages, &seat.0).await;
        drop(seat);
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(value) = HeaderValue::from_str(&accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// Sends the messages to one WebSocket client until it leaves or the sink ends (then it closes
/// the socket); what the client sends is read (pings are answered) and otherwise ignored.
async fn serve_socket<S>(
    socket: tokio_tungstenite::WebSocketStream<S>,
    mut messages: broadcast::Receiver<Arc<str>>,
    hub: &Hub,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut to_client, mut from_client) = socket.split();
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(text) => {
                    if to_client.send(Message::text(&*text)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    hub.dropped.fetch_add(missed, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = to_client.send(Message::Close(None)).await;
                    let _ = to_client.close().await;
                    return;
                }
            },
            incoming = from_client.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The messages as Server-Sent Events (`data: {...}`), until the client leaves or the sink ends.
fn events(messages: broadcast::Receiver<Arc<str>>, seat: Seat) -> Response {
    let stream =
        futures_util::stream::unfold((messages, seat), |(mut messages, seat)| async move {
            loop {
                match messages.recv().await {
                    Ok(text) => {
                        let event = format!("data: {text}\n\n");
                        return Some((Ok::<_, std::convert::Infallible>(event), (messages, seat)));
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        seat.0.dropped.fetch_add(missed, Ordering::Relaxed);
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

struct WebSocketSink {
    hub: Arc<Hub>,
    serving: crate::serve::Serving,
    label: String,
}

#[async_trait]
impl Sink for WebSocketSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        if let Some(messages) = &*self.hub.messages.lock().unwrap_or_else(|p| p.into_inner()) {
            for row in batch.rows() {
                // No client connected is not an error: the message goes nowhere.
                let _ = messages.send(Arc::from(row_json(&row)));
            }
        }
        // Let the clients' tasks take the batch off their queues before the next one.
        tokio::task::yield_now().await;
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        tracing::info!(
            "{}: {} clients served, {} connected at the end; {} messages missed by slow \
             clients, {} connections refused",
            self.label,
            self.hub.served.load(Ordering::Relaxed),
            self.hub.connected.load(Ordering::Relaxed),
            self.hub.dropped.load(Ordering::Relaxed),
            self.hub.refused.load(Ordering::Relaxed)
        );
        // Closing the channel ends every client's stream (WebSocket clients get a close frame).
        drop(
            self.hub
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        // Let the clients' tasks send their close frames before the server goes.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        self.serving.stop().await;
        Ok(())
    }
}
