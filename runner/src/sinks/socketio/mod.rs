//! Sink `socketio`: a live dashboard. Serves a page (embedded in the binary, works offline) that
//! draws the windows in panels — line charts of the last N windows, bars and tables of the latest
//! one, a number — as the pipeline file lists them (by default one line chart), and pushes every
//! closed window to every connected browser over Socket.IO. Also speaks the tutorial's Flask-SocketIO events (`test_message`,
//! `test_connect` → `connected`) so its original page and Socket.IO 2.x clients keep working.

mod board;
mod pages;
pub mod server;

use crate::format::window_points::{self, Fields};
use crate::record::Batch;
use crate::serve::access::Access;
use crate::serve::tls::ServerTls;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, Sink, Stage, StageConfig,
    StageError, StageKind, StageMetrics, StageResult,
};
use crate::stage::{DropReason, Rejects};
use async_trait::async_trait;
use serde::Deserialize;
use server::{Dashboard, PageConfig, PanelKind, PanelView, Series};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

crate::stage_options! {
    /// Options of the `socketio` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SocketIoConfig, documented in OPTIONS {
        #[serde(default = "default_listen")]
        listen: String => OptionDoc::of("host:port", "\"127.0.0.1:5000\"", "where to serve the page and Socket.IO (loopback unless you say otherwise)"),
        #[serde(default = "default_points")]
        points: usize => OptionDoc::of("integer", "20", "windows shown on the chart (and sent to browsers that connect late)"),
        #[serde(default = "default_title")]
        title: String => OptionDoc::of("string", "\"男女生购物人数实时分析\"", "chart title"),
        #[serde(default = "default_series")]
        series: BTreeMap<String, String> => OptionDoc::of("{ key = \"label\" }", "{ 0 = \"女生购物人数\", 1 = \"男生购物人数\" }", "which keys to plot and their labels (others are hidden)"),
        key_field: Option<String> => window_points::KEY_FIELD_OPTION,
        value_field: Option<String> => window_points::VALUE_FIELD_OPTION,
        token: Option<String> => OptionDoc::of("string", "none", "clients must present it: the page takes it once from ?token= and keeps it in a cookie; others send auth {token} or Authorization: Bearer"),
        tls: Option<ServerTls> => OptionDoc::of("{ cert, key }", "none (plain HTTP)", "serve HTTPS with these PEM files (certificate chain, private key)"),
        #[serde(default)]
        allowed_origins: Vec<String> => OptionDoc::of("[string]", "[] (same origin only)", "other web origins allowed to connect (besides localhost and IP addresses on the dashboard's port); \"*\" for any"),
        #[serde(default = "default_max_connections")]
        max_connections: usize => OptionDoc::of("integer", "20000", "most browsers connected at once; more are refused and counted"),
        #[serde(default = "default_buffer")]
        client_buffer: usize => OptionDoc::of("integer", "128", "messages queued per browser; a slow browser beyond it misses updates (counted)"),
        static_dir: Option<std::path::PathBuf> => OptionDoc::of("string", "none (the embedded page)", "serve this directory's files at / instead of the embedded page (index.html for a directory): a page of your own, speaking the events of docs/dashboard.md"),
        panels: Option<Vec<PanelConfig>> => OptionDoc::of("[{ type, title, key, value, input, series, points }]", "one line chart (title, series, key_field, value_field)", "the page's panels, in order: type \"line\" (the last `points` windows, a series per key), \"bar\" or \"table\" (the latest window, per key), \"number\" (the latest window's total); each reads the sink's inputs, or only `input`"),
    }
}

/// One panel of the page (`panels`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelConfig {
    /// What it draws.
    #[serde(rename = "type")]
    kind: PanelKind,
    /// Its heading.
    #[serde(default)]
    title: String,
    /// The series key field (default: the first field that is not a window bound).
    key: Option<String>,
    /// The value field (default: the last field).
    value: Option<String>,
    /// The one input (component id) it reads (default: every input of the sink).
    input: Option<String>,
    /// Labels of keys; a line chart with labels draws only those keys.
    #[serde(default)]
    series: BTreeMap<String, String>,
    /// Windows a line chart shows (default: the sink's `points`).
    points: Option<usize>,
}

fn default_max_connections() -> usize {
    20_000
}

fn default_listen() -> String {
    "127.0.0.1:5000".into()
}
fn default_points() -> usize {
    20
}
fn default_title() -> String {
    "男女生购物人数实时分析".into()
}
fn default_series() -> BTreeMap<String, String> {
    [("0", "女生购物人数"), ("1", "男生购物人数")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
fn default_buffer() -> usize {
    128
}

/// The `socketio` sink type.
pub fn factory() -> Builtin<SocketIoConfig> {
    Builtin::new(
        StageKind::Sink,
        "socketio",
        "Live dashboard: a chart of the last windows in the browser, over Socket.IO",
        OPTIONS,
    )
}

impl BuiltinConfig for SocketIoConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        issues.extend(crate::serve::listen_issue(
            "listen",
            &self.listen,
            "127.0.0.1:5000",
        ));
        if !(1..=10_000).contains(&self.points) {
            issues.push(OptionIssue::new(
                "points",
                format!("points must be between 1 and 10000, found {}", self.points),
            ));
        }
        if self.series.is_empty() {
            issues.push(
                OptionIssue::new("series", "no series to plot")
                    .hint("e.g. series = { 0 = \"female\", 1 = \"male\" }"),
            );
        }
        if let Some(tls) = &self.tls {
            issues.extend(tls.check());
        }
        if self.max_connections == 0 {
            issues.push(OptionIssue::new(
                "max_connections",
                "max_connections must be at least 1",
            ));
        }
        if self.client_buffer == 0 {
            issues.push(OptionIssue::new(
                "client_buffer",
                "client_buffer must be at least 1",
            ));
        }
        for (i, panel) in self.panels.iter().flatten().enumerate() {
            if panel.points.is_some_and(|p| !(1..=10_000).contains(&p)) {
                issues.push(OptionIssue::new(
                    "panels",
                    format!("panel {}: points must be between 1 and 10000", i + 1),
                ));
            }
        }
        if let Some(dir) = &self.static_dir
            && !dir.is_dir()
        {
            issues.push(OptionIssue::new(
                "static_dir",
                format!("{} is not a directory", dir.display()),
            ));
        }
        if self.panels.as_ref().is_some_and(Vec::is_empty) {
            issues.push(
                OptionIssue::new("panels", "no panels to draw")
                    .hint("e.g. panels = [{ type = \"bar\", key = \"province\" }]"),
            );
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

/// Which records feed a panel, and which of their fields it draws.
struct PanelFeed {
    fields: Fields,
    /// The input port it reads (None: every input).
    input: Option<usize>,
}

impl SocketIoConfig {
    /// The page's panels and what feeds each: `panels` as written, or one line chart from the
    /// sink's own `title`, `series`, `key_field` and `value_field`.
    fn panels(&self, inputs: &[String]) -> Result<(Vec<PanelView>, Vec<PanelFeed>), StageError> {
        let labels = |series: &BTreeMap<String, String>| -> Vec<Series> {
            series
                .iter()
                .map(|(key, label)| Series {
                    key: key.clone(),
                    label: label.clone(),
                })
                .collect()
        };
        let Some(panels) = &self.panels else {
            let view = PanelView {
                kind: PanelKind::Line,
                title: self.title.clone(),
                points: self.points,
                series: labels(&self.series),
            };
            let feed = PanelFeed {
                fields: Fields {
                    key: self.key_field.clone(),
                    value: self.value_field.clone(),
                },
                input: None,
            };
            return Ok((vec![view], vec![feed]));
        };
        let mut views = Vec::with_capacity(panels.len());
        let mut feeds = Vec::with_capacity(panels.len());
        for (i, panel) in panels.iter().enumerate() {
            let input = match &panel.input {
                None => None,
                Some(id) => Some(inputs.iter().position(|known| known == id).ok_or_else(|| {
                    StageError::Input(format!(
                        "panel {} reads `{id}`, which is not an input of this sink (its inputs: \
                         {})",
                        i + 1,
                        inputs.join(", ")
                    ))
                })?),
            };
            views.push(PanelView {
                kind: panel.kind,
                title: panel.title.clone(),
                points: panel.points.unwrap_or(self.points),
                series: labels(&panel.series),
            });
            feeds.push(PanelFeed {
                fields: Fields {
                    key: panel.key.clone(),
                    value: panel.value.clone(),
                },
                input,
            });
        }
        Ok((views, feeds))
    }
}

impl StageConfig for SocketIoConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let (panels, feeds) = self.panels(&cx.inputs)?;
        let page = PageConfig {
            title: self.title.clone(),
            points: self.points,
            series: panels[0].series.clone(),
            panels,
        };
        let access = |port| {
            Access::new(
                self.token.as_deref(),
                self.allowed_origins.clone(),
                port,
                self.max_connections,
            )
        };
        let tls = self.tls.as_ref().map(ServerTls::load).transpose()?;
        let (dashboard, serving) = server::start(
            &self.listen,
            page,
            self.static_dir.clone(),
            access,
            self.client_buffer,
            tls,
        )?;
        Ok(Stage::Sink(Box::new(SocketIoSink {
            serving,
            dashboard,
            feeds,
            label: cx.path.clone(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
        })))
    }
}

struct SocketIoSink {
    /// The server; it stops when the sink finishes (or is dropped).
    serving: crate::serve::Serving,
    dashboard: Arc<Dashboard>,
    /// What feeds each panel, in the page's order.
    feeds: Vec<PanelFeed>,
    /// Where records it cannot show go (`<id>.errors`).
    rejects: Rejects,
    label: String,
    metrics: Arc<StageMetrics>,
}

#[async_trait]
impl Sink for SocketIoSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        self.write_from(0, batch).await
    }

    async fn write_from(&mut self, input: usize, batch: Batch) -> StageResult {
        // A record no panel reading it can draw is rejected once, with the first panel's reason.
        let mut skipped_by_all: Option<Vec<window_points::Skipped>> = None;
        for (panel, feed) in self.feeds.iter().enumerate() {
            if feed.input.is_some_and(|only| only != input) {
                continue;
            }
            let (points, skipped) = window_points::points(&batch, &feed.fields);
            skipped_by_all = Some(match skipped_by_all {
                None => skipped,
                Some(before) => before
                    .into_iter()
                    .filter(|(row, _)| skipped.iter().any(|(other, _)| other == row))
                    .collect(),
            });
            for point in points {
                self.dashboard.publish(panel, point).await;
                // A batch may close many windows at once (a replay catching up). Let the
                // browsers' writer tasks take each update off their queues before the next one,
                // so a burst longer than `client_buffer` is dropped only for browsers that are
                // really behind.
                tokio::task::yield_now().await;
            }
        }
        let skipped = skipped_by_all.unwrap_or_default();
        if !skipped.is_empty() {
            self.metrics
                .add_dropped(DropReason::Invalid, skipped.len() as u64);
            self.rejects.reject_rows(&batch, &skipped);
        }
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        let stats = &self.dashboard.stats;
        tracing::info!(
            "{}: {} browser(s) connected; {} updates dropped for slow browsers, {} connections refused, {} client messages ignored, {} connections closed on an oversized or broken message",
            self.label,
            self.dashboard.clients(),
            stats.dropped.load(Ordering::Relaxed),
            stats.refused.load(Ordering::Relaxed),
            stats.ignored.load(Ordering::Relaxed),
            stats.broken.load(Ordering::Relaxed)
        );
        self.dashboard.close();
        self.serving.stop().await;
        Ok(())
    }
}
