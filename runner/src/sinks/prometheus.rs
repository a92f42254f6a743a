//! Sink `prometheus`: serves the latest window at `/metrics` in the Prometheus text format, for
//! Grafana and friends — the usual replacement for the built-in dashboard. Per series key it
//! exports a gauge with the last closed window's value (stamped with the window's end time) and a
//! counter with the total over all windows so far.

use crate::format::window_points::{self, Fields};
use crate::record::{Batch, Millis};
use crate::serve::tls::ServerTls;
use crate::serve::token::Token;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, Sink, Stage, StageConfig,
    StageError, StageKind, StageMetrics, StageResult,
};
use crate::stage::{DropReason, Rejects};
use async_trait::async_trait;
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::get;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

crate::stage_options! {
    /// Options of the `prometheus` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct PrometheusConfig, documented in OPTIONS {
        #[serde(default = "default_listen")]
        listen: String => OptionDoc::of("host:port", "\"127.0.0.1:9464\"", "where to serve /metrics"),
        #[serde(default = "default_name")]
        name: String => OptionDoc::of("string", "\"weir_window\"", "metric name prefix: <name>_value (gauge) and <name>_total (counter)"),
        #[serde(default = "default_label")]
        label: String => OptionDoc::of("string", "\"key\"", "label holding the series key, e.g. \"gender\""),
        key_field: Option<String> => window_points::KEY_FIELD_OPTION,
        value_field: Option<String> => window_points::VALUE_FIELD_OPTION,
        token: Option<String> => OptionDoc::of("string", "none", "scrapers must send `Authorization: Bearer <token>` (Prometheus: `authorization: { credentials: … }`)"),
        tls: Option<ServerTls> => OptionDoc::of("{ cert, key }", "none (plain HTTP)", "serve HTTPS with these PEM files (certificate chain, private key)"),
    }
}

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_name() -> String {
    "weir_window".into()
}
fn default_label() -> String {
    "key".into()
}

/// The `prometheus` sink type.
pub fn factory() -> Builtin<PrometheusConfig> {
    Builtin::new(
        StageKind::Sink,
        "prometheus",
        "Serves the latest window per key at /metrics for Prometheus / Grafana",
        OPTIONS,
    )
}

fn is_metric_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl BuiltinConfig for PrometheusConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        issues.extend(crate::serve::listen_issue(
            "listen",
            &self.listen,
            "127.0.0.1:9464",
        ));
        if !is_metric_name(&self.name) {
            issues.push(
                OptionIssue::new(
                    "name",
                    format!("`{}` is not a Prometheus metric name", self.name),
                )
                .hint("letters, digits, `_` and `:`, not starting with a digit"),
            );
        }
        if let Some(tls) = &self.tls {
            issues.extend(tls.check());
        }
        if !is_metric_name(&self.label) || self.label.contains(':') || self.label.starts_with("__")
        {
            issues.push(OptionIssue::new(
                "label",
                format!("`{}` is not a Prometheus label name", self.label),
            ));
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

/// The last window per key and the totals, rendered on each scrape.
#[derive(Debug, Default)]
struct Exported {
    last: BTreeMap<String, (f64, Millis)>,
    totals: BTreeMap<String, f64>,
}

impl Exported {
    fn render(&self, name: &str, label: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP {name}_value Value of the last closed window, per {label}."
        );
        let _ = writeln!(out, "# TYPE {name}_value gauge");
        for (key, (value, end)) in &self.last {
            let _ = writeln!(
                out,
                "{name}_value{{{label}=\"{}\"}} {value} {end}",
                escape(key)
            );
        }
        let _ = writeln!(
            out,
            "# HELP {name}_total Sum of the values of every closed window so far, per {label}."
        );
        let _ = writeln!(out, "# TYPE {name}_total counter");
        for (key, total) in &self.totals {
            let _ = writeln!(out, "{name}_total{{{label}=\"{}\"}} {total}", escape(key));
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl StageConfig for PrometheusConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let listener = crate::serve::bind(&self.listen)?;
        let exported = Arc::new(Mutex::new(Exported::default()));
        let (name, label) = (self.name.clone(), self.label.clone());
        let scraped = Arc::clone(&exported);
        let token = self.token.as_deref().map(Token::new);
        let app = Router::new().route(
            "/metrics",
            get(move |headers: HeaderMap| {
                let allowed = token.as_ref().is_none_or(|t| t.in_bearer(&headers));
                let body = allowed.then(|| {
                    scraped
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .render(&name, &label)
                });
                async move {
                    match body {
                        Some(body) => (
                            StatusCode::OK,
                            [(
                                header::CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8",
                            )],
                            body,
                        ),
                        None => (
                            StatusCode::UNAUTHORIZED,
                            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                            "missing or wrong bearer token\n".to_string(),
                        ),
                    }
                }
            }),
        );
        let tls = self.tls.as_ref().map(ServerTls::load).transpose()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let serving = crate::serve::spawn(
            listener,
            app,
            format!("metrics server on {}", self.listen),
            tls,
        )
        .map_err(|source| crate::serve::ListenError::Bind {
            address: self.listen.clone(),
            source,
        })?;
        tracing::info!("{}: metrics at {scheme}://{}/metrics", cx.path, self.listen);
        Ok(Stage::Sink(Box::new(PrometheusSink {
            serving,
            exported,
            fields: Fields {
                key: self.key_field.clone(),
                value: self.value_field.clone(),
            },
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
        })))
    }
}

struct PrometheusSink {
    /// The server; it stops when the sink finishes (or is dropped).
    serving: crate::serve::Serving,
    exported: Arc<Mutex<Exported>>,
    fields: Fields,
    /// Where records it cannot show go (`<id>.errors`).
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
}

#[async_trait]
impl Sink for PrometheusSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        let (points, skipped) = window_points::points(&batch, &self.fields);
        if !skipped.is_empty() {
            self.metrics
                .add_dropped(DropReason::Invalid, skipped.len() as u64);
            self.rejects.reject_rows(&batch, &skipped);
        }
        let mut exported = self.exported.lock().unwrap_or_else(|e| e.into_inner());
        for point in points {
            for (key, value) in point.values {
                *exported.totals.entry(key.clone()).or_insert(0.0) += value;
                exported.last.insert(key, (value, point.t));
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        self.serving.stop().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_gauges_with_window_times_and_counters() {
        let mut e = Exported::default();
        e.last.insert("0".into(), (4.0, 1_700_000_001_000));
        e.last.insert("a\"b".into(), (1.5, 1_700_000_001_000));
        e.totals.insert("0".into(), 40.0);
        let text = e.render("shop", "gender");
        assert!(text.contains("# TYPE shop_value gauge\n"), "{text}");
        assert!(
            text.contains("shop_value{gender=\"0\"} 4 1700000001000\n"),
            "{text}"
        );
        assert!(
            text.contains("shop_value{gender=\"a\\\"b\"} 1.5 1700000001000\n"),
            "{text}"
        );
        assert!(text.contains("shop_total{gender=\"0\"} 40\n"), "{text}");
    }

    #[test]
    fn metric_and_label_names_are_checked() {
        assert!(is_metric_name("weir_window"));
        assert!(!is_metric_name("9lives"));
        assert!(!is_metric_name("with-dash"));
    }
}
