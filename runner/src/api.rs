//! The control API of a running pipeline (`weir run --api`): `/health`, `/metrics` (Prometheus
//! text), `/graph` (every stage with its live figures, as JSON), `/tap/STAGE` (records leaving a
//! stage, as JSON lines, for as long as the client reads and never slowing the stage), and at `/`
//! a page that draws the graph with its live figures (embedded, like the dashboard's page).
//! Off unless asked; loopback by default; an optional token (`Authorization: Bearer`) and TLS,
//! as the dashboard and metrics sinks have.

use crate::format::lines::{Encoder, Format};
use crate::serve::token::Token;
use crate::serve::{ListenError, Serving};
use crate::topology::view::{RunView, TapError, prometheus};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the API listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8686";

/// Batches a tap holds for its client; beyond that the client misses them.
const TAP_BUFFER: usize = 8;

#[derive(Clone)]
struct Api {
    view: Arc<RunView>,
    token: Option<Token>,
}

/// Serves the API for `view` on `listen` (on the current tokio runtime), over TLS with `tls`,
/// requiring `token` if given; returns the address bound and the server.
pub fn start(
    listen: &str,
    view: Arc<RunView>,
    token: Option<Token>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<(SocketAddr, Serving), ListenError> {
    let listener = crate::serve::bind(listen)?;
    let bind_error = |source| ListenError::Bind {
        address: listen.to_string(),
        source,
    };
    let addr = listener.local_addr().map_err(bind_error)?;
    let serving = crate::serve::spawn(listener, app(view, token), "control API".into(), tls)
        .map_err(bind_error)?;
    Ok((addr, serving))
}

/// The API's routes, not yet served.
pub fn app(view: Arc<RunView>, token: Option<Token>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async {
                page(
                    "text/html; charset=utf-8",
                    include_str!("../../web/graph.html"),
                )
            }),
        )
        .route(
            "/graph.js",
            get(|| async {
                page(
                    "text/javascript; charset=utf-8",
                    include_str!("../../web/graph.js"),
                )
            }),
        )
        .route(
            "/graph.css",
            get(|| async {
                page(
                    "text/css; charset=utf-8",
                    include_str!("../../web/graph.css"),
                )
            }),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/graph", get(graph))
        .route("/tap/{stage}", get(tap))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "not found: try /graph, /metrics, /health or /tap/STAGE\n",
            )
        })
        .with_state(Api { view, token })
}

/// One of the page's files (they hold nothing secret: the figures come from `/graph`, which
/// takes the token).
fn page(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// 401 unless the request carries the token (when one is required).
fn refused(api: &Api, headers: &HeaderMap) -> Option<Response> {
    let token = api.token.as_ref()?;
    if token.in_bearer(headers) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a token is required (Authorization: Bearer)\n",
        )
            .into_response(),
    )
}

async fn health(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&api, &headers) {
        return refusal;
    }
    let stages = api.view.snapshot().stages.len();
    axum::Json(serde_json::json!({ "status": "ok", "stages": stages })).into_response()
}

async fn metrics(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&api, &headers) {
        return refusal;
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        prometheus(&api.view.snapshot()),
    )
        .into_response()
}

async fn graph(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refused(&api, &headers) {
        return refusal;
    }
    axum::Json(api.view.snapshot()).into_response()
}

/// `/tap/STAGE` options.
#[derive(Debug, Deserialize)]
struct TapOptions {
    /// Stop after this many records.
    limit: Option<u64>,
    /// Keep one record in this many (of those the tap receives).
    sample: Option<u64>,
}

async fn tap(
    State(api): State<Api>,
    headers: HeaderMap,
    Path(stage): Path<String>,
    Query(options): Query<TapOptions>,
) -> Response {
    if let Some(refusal) = refused(&api, &headers) {
        return refusal;
    }
    let tap = match api.view.tap(&stage, TAP_BUFFER) {
        Ok(tap) => tap,
        Err(e) => {
            let status = match e {
                TapError::Unknown(_) => StatusCode::NOT_FOUND,
                TapError::Sink(_) | TapError::Ended(_) => StatusCode::CONFLICT,
            };
            return (status, format!("{e}\n")).into_response();
        }
    };
    let limit = options.limit.unwrap_or(u64::MAX);
    let sample = options.sample.unwrap_or(1).max(1);
    struct Tapping {
        tap: crate::stage::Tap,
        encoder: Encoder,
        seen: u64,
        sent: u64,
    }
    let state = Tapping {
        tap,
        encoder: Encoder::new(Format::Json),
        seen: 0,
        sent: 0,
    };
    let lines = futures_util::stream::unfold(state, move |mut s| async move {
        loop {
            if s.sent >= limit {
                return None;
            }
            let batch = s.tap.batches.recv().await?;
            let mut encoded = Vec::new();
            s.encoder.encode(&batch, &mut encoded);
            let mut chunk = Vec::new();
            for line in encoded.split_inclusive(|&b| b == b'\n') {
                s.seen += 1;
                if (s.seen - 1) % sample == 0 && s.sent < limit {
                    chunk.extend_from_slice(line);
                    s.sent += 1;
                }
            }
            if !chunk.is_empty() {
                return Some((Ok::<_, std::io::Error>(chunk), s));
            }
        }
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        Body::from_stream(lines),
    )
        .into_response()
}
