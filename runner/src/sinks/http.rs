//! Sink `http`: POSTs records to a web service as JSON, a request per at most `batch_size`
//! records, and lets the input's tickets go (so the source commits) only once the service has
//! answered every request of a batch with 2xx, or refused it for good (4xx: those records go to
//! `<sink>.errors`).
//!
//! A request that fails in a way that may pass (no connection, no answer within `timeout`, 5xx,
//! 408, 429) is sent again with growing pauses (`Retry-After` is honoured) until `retry_for` has
//! passed since its first attempt; then the sink fails the run, and the batch stays uncommitted
//! for the next one. Every attempt of a request carries the same `Idempotency-Key`: a digest of
//! the sink's id and the body, so a service that remembers keys can recognise a batch sent again
//! (after a lost answer, or by the next run after a crash) — and, by the same rule, treats two
//! byte-identical bodies as one. Delivery is at least once; exactly once is the service's half.

use crate::record::Batch;
use crate::record::json::JsonWriter;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, OptionDoc, OptionIssue, Rejects, Sink, Stage,
    StageConfig, StageError, StageKind, StageMetrics, StageResult,
};
use crate::time::DurationSpec;
use async_trait::async_trait;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

crate::stage_options! {
    /// Options of the `http` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct HttpConfig, documented in OPTIONS {
        url: String => OptionDoc::of("string", "required", "where to send: an http:// or https:// URL"),
        #[serde(default)]
        method: Method => OptionDoc::of("\"post\" | \"put\"", "\"post\"", "the request method"),
        #[serde(default)]
        encoding: Encoding => OptionDoc::of("\"json_array\" | \"json_lines\"", "\"json_array\"", "the body: one JSON array of record objects, or one object per line (Content-Type application/x-ndjson)"),
        #[serde(default)]
        headers: BTreeMap<String, String> => OptionDoc::of("table of strings", "{}", "extra request headers, e.g. { Authorization = \"Bearer ${WEBHOOK_TOKEN}\" } (a token from the environment)"),
        #[serde(default = "default_batch_size")]
        batch_size: usize => OptionDoc::of("integer", "1000", "at most this many records per request"),
        #[serde(default = "default_timeout")]
        timeout: DurationSpec => OptionDoc::of("duration", "\"30s\"", "how long one attempt may take, connecting included"),
        #[serde(default = "default_retry_for")]
        retry_for: DurationSpec => OptionDoc::of("duration", "\"10m\"", "how long a request that fails in a way that may pass (no connection, no answer, 5xx, 408, 429) is tried again before the run fails"),
        #[serde(default = "default_idempotency_header")]
        idempotency_header: String => OptionDoc::of("string", "\"Idempotency-Key\"", "the header carrying each request's key (the same on every attempt); \"\" sends none"),
    }
}

fn default_batch_size() -> usize {
    1000
}
fn default_timeout() -> DurationSpec {
    DurationSpec(Duration::from_secs(30))
}
fn default_retry_for() -> DurationSpec {
    DurationSpec(Duration::from_secs(600))
}
fn default_idempotency_header() -> String {
    "Idempotency-Key".into()
}

/// The request method.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// POST (the default).
    #[default]
    Post,
    /// PUT.
    Put,
}

/// How a request's records are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `[{...},{...}]`: any JSON web framework reads it.
    #[default]
    JsonArray,
    /// `{...}\n{...}\n`: what log and event ingestion APIs read.
    JsonLines,
}

/// The first pause before an attempt is repeated; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two attempts (a `Retry-After` may ask for more, up to
/// [`MAX_RETRY_AFTER`]).
const MAX_PAUSE: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of a refusing answer's body goes into the error record.
const REASON_BYTES: usize = 300;

/// The `http` sink type.
pub fn factory() -> Builtin<HttpConfig> {
    Builtin::new(
        StageKind::Sink,
        "http",
        "POSTs records as JSON to a web service, with retries and an idempotency key per request",
        OPTIONS,
    )
}

impl BuiltinConfig for HttpConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if let Err(why) = parse_url(&self.url) {
            issues.push(OptionIssue::new("url", why));
        }
        if self.batch_size == 0 {
            issues.push(OptionIssue::new("batch_size", "must be at least 1"));
        }
        if self.timeout.0.is_zero() {
            issues.push(OptionIssue::new("timeout", "must be longer than 0"));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push(OptionIssue::new(
                    "headers",
                    format!("`{name}` is not a valid header name"),
                ));
            } else if reqwest::header::HeaderValue::from_str(value).is_err() {
                issues.push(OptionIssue::new(
                    "headers",
                    format!("the value of `{name}` has characters a header cannot carry"),
                ));
            }
        }
        if !self.idempotency_header.is_empty()
            && reqwest::header::HeaderName::from_bytes(self.idempotency_header.as_bytes()).is_err()
        {
            issues.push(OptionIssue::new(
                "idempotency_header",
                format!("`{}` is not a valid header name", self.idempotency_header),
            ));
        }
        issues
    }
}

/// `url` if weir can send to it.
fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(format!(
            "`{url}` uses `{other}:`; the http sink sends to http:// or https:// URLs"
        )),
    }
}

/// Why the `http` sink failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpSinkError {
    /// The HTTP client could not be set up.
    #[error("{sink}: cannot set up the HTTP client: {source}")]
    Client {
        /// The sink's path.
        sink: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A request kept failing for `retry_for`.
    #[error(
        "{sink}: {url} did not take a request of {records} records in {attempts} attempts over \
         {tried:?} (last: {last}); the batch stays uncommitted for the next run (raise \
         `retry_for` to wait longer)"
    )]
    GaveUp {
        /// The sink's path.
        sink: String,
        /// Where it sent.
        url: String,
        /// Records in the request.
        records: usize,
        /// Attempts made.
        attempts: u32,
        /// How long it tried.
        tried: Duration,
        /// The last attempt's failure.
        last: String,
    },
}

impl From<HttpSinkError> for StageError {
    fn from(e: HttpSinkError) -> Self {
        StageError::External(Box::new(e))
    }
}

impl StageConfig for HttpConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let url = parse_url(&self.url).map_err(StageError::Input)?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &self.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| StageError::Input(format!("{}: header `{name}`: {e}", cx.path)))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| StageError::Input(format!("{}: header `{name}`: {e}", cx.path)))?;
            headers.insert(name, value);
        }
        let content_type = match self.encoding {
            Encoding::JsonArray => "application/json",
            Encoding::JsonLines => "application/x-ndjson",
        };
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static(content_type),
        );
        let client = reqwest::Client::builder()
            .timeout(self.timeout.0)
            .connect_timeout(self.timeout.0)
            .default_headers(headers)
            .build()
            .map_err(|source| HttpSinkError::Client {
                sink: cx.path.clone(),
                source,
            })?;
        let idempotency_header = (!self.idempotency_header.is_empty()).then(|| {
            reqwest::header::HeaderName::from_bytes(self.idempotency_header.as_bytes())
                .expect("checked by `check`")
        });
        Ok(Stage::Sink(Box::new(HttpSink {
            client,
            url,
            method: match self.method {
                Method::Post => reqwest::Method::POST,
                Method::Put => reqwest::Method::PUT,
            },
            encoding: self.encoding,
            batch_size: self.batch_size,
            retry_for: self.retry_for.0,
            idempotency_header,
            json: JsonWriter::default(),
            label: cx.path.clone(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
            retried: 0,
            refused: 0,
        })))
    }
}

struct HttpSink {
    client: reqwest::Client,
    url: reqwest::Url,
    method: reqwest::Method,
    encoding: Encoding,
    batch_size: usize,
    retry_for: Duration,
    idempotency_header: Option<reqwest::header::HeaderName>,
    json: JsonWriter,
    label: String,
    metrics: Arc<StageMetrics>,
    rejects: Rejects,
    /// Attempts repeated over the run.
    retried: u64,
    /// Records refused (4xx) over the run.
    refused: u64,
}

/// How one attempt ended.
enum Attempt {
    /// 2xx.
    Taken,
    /// A 4xx other than 408 and 429: sending it again would not help.
    Refused(String),
    /// Worth another attempt, after at least this pause (a `Retry-After`).
    Failed {
        why: String,
        after: Option<Duration>,
    },
}

impl HttpSink {
    /// The body for rows `rows` of `batch`.
    fn body(&mut self, batch: &Batch, rows: std::ops::Range<usize>) -> Vec<u8> {
        let mut body = Vec::with_capacity(rows.len() * 64 + 2);
        match self.encoding {
            Encoding::JsonLines => self.json.write_rows(batch, rows, b"\n", &mut body),
            Encoding::JsonArray => {
                body.push(b'[');
                self.json.write_rows(batch, rows, b",", &mut body);
                // `write_rows` ends every row with the separator: the last one goes.
                if body.last() == Some(&b',') {
                    body.pop();
                }
                body.push(b']');
            }
        }
        body
    }

    /// The key every attempt of `body` carries.
    fn key(&self, body: &[u8]) -> String {
        let mut digest = Sha256::new();
        digest.update(self.label.as_bytes());
        digest.update([0]);
        digest.update(body);
        digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    async fn attempt(&self, body: &[u8], key: &str) -> Attempt {
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .body(body.to_vec());
        if let Some(header) = &self.idempotency_header {
            request = request.header(header, key);
        }
        let answer = match request.send().await {
            Ok(answer) => answer,
            Err(e) => {
                let why = if e.is_timeout() {
                    "no answer in time".to_string()
                } else if e.is_connect() {
                    format!("cannot connect ({})", root_cause(&e))
                } else {
                    root_cause(&e)
                };
                return Attempt::Failed { why, after: None };
            }
        };
        let status = answer.status();
        if status.is_success() {
            // Read the answer to its end so the connection can carry the next request.
            return match answer.bytes().await {
                Ok(_) => Attempt::Taken,
                Err(e) => Attempt::Failed {
                    why: format!("the answer broke off ({})", root_cause(&e)),
                    after: None,
                },
            };
        }
        let after = retry_after(answer.headers());
        let retryable = status.is_server_error()
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || !status.is_client_error();
        let text = answer.bytes().await.unwrap_or_default();
        let shown = String::from_utf8_lossy(&text[..text.len().min(REASON_BYTES)])
            .trim()
            .to_string();
        let why = if shown.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {shown}")
        };
        if retryable {
            Attempt::Failed { why, after }
        } else {
            Attempt::Refused(why)
        }
    }

    /// Sends rows `rows` of `batch` until the service takes or refuses them.
    async fn deliver(&mut self, batch: &Batch, rows: std::ops::Range<usize>) -> StageResult {
        let body = self.body(batch, rows.clone());
        let key = self.key(&body);
        let started = Instant::now();
        let mut pause = FIRST_PAUSE;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.attempt(&body, &key).await {
                Attempt::Taken => {
                    self.metrics.add_bytes_written(body.len() as u64);
                    if attempts > 1 {
                        tracing::info!(
                            "{}: {} took the request (key {key}) at attempt {attempts}",
                            self.label,
                            self.url
                        );
                    }
                    return Ok(());
                }
                Attempt::Refused(why) => {
                    let refused: Vec<(usize, &str)> = rows.clone().map(|i| (i, &*why)).collect();
                    self.refused += refused.len() as u64;
                    self.metrics
                        .add_dropped(DropReason::Invalid, refused.len() as u64);
                    self.rejects.reject_rows(batch, &refused);
                    tracing::warn!(
                        "{}: {} refused {} records ({why}); they go to {}.errors",
                        self.label,
                        self.url,
                        refused.len(),
                        self.label.rsplit('.').next().unwrap_or(&self.label)
                    );
                    return Ok(());
                }
                Attempt::Failed { why, after } => {
                    let tried = started.elapsed();
                    if tried >= self.retry_for {
                        return Err(HttpSinkError::GaveUp {
                            sink: self.label.clone(),
                            url: self.url.to_string(),
                            records: rows.len(),
                            attempts,
                            tried,
                            last: why,
                        }
                        .into());
                    }
                    if attempts == 1 {
                        tracing::warn!(
                            "{}: {} did not take a request ({why}); trying again for up to {:?}",
                            self.label,
                            self.url,
                            self.retry_for
                        );
                    }
                    self.retried += 1;
                    let wait = after.map_or(pause, |a| a.min(MAX_RETRY_AFTER));
                    let wait = wait.min(self.retry_for.saturating_sub(tried));
                    tokio::time::sleep(jittered(wait, attempts)).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}

/// `pause` less up to a quarter, varied by `attempt`, so that sinks failing together do not
/// come back together.
fn jittered(pause: Duration, attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let spread = (nanos ^ attempt.wrapping_mul(0x9e37_79b9)) % 250;
    pause.mul_f64(1.0 - f64::from(spread) / 1000.0)
}

/// A `Retry-After` in seconds (the date form is not honoured: the usual backoff applies).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The innermost cause of a client error, which says what happened (refused, reset, a TLS
/// failure) where the outer ones only say that a request failed.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[async_trait]
impl Sink for HttpSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        let mut start = 0;
        while start < batch.len() {
            let end = (start + self.batch_size).min(batch.len());
            if let Err(e) = self.deliver(&batch, start..end).await {
                batch.acks().fail();
                return Err(e);
            }
            start = end;
        }
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        if self.retried > 0 || self.refused > 0 {
            tracing::info!(
                "{}: {} attempts repeated, {} records refused by {}",
                self.label,
                self.retried,
                self.refused,
                self.url
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, FieldRef, Schema};

    fn sink(encoding: Encoding) -> HttpSink {
        HttpSink {
            client: reqwest::Client::new(),
            url: parse_url("http://127.0.0.1:1/").unwrap(),
            method: reqwest::Method::POST,
            encoding,
            batch_size: 2,
            retry_for: Duration::from_secs(1),
            idempotency_header: None,
            json: JsonWriter::default(),
            label: "sinks.hook".into(),
            metrics: Arc::default(),
            rejects: Rejects::default(),
            retried: 0,
            refused: 0,
        }
    }

    fn batch() -> Batch {
        let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["k", "n"])), 3);
        for (k, n) in [("a", 1), ("b\"", 2), ("c", 3)] {
            b.push(FieldRef::Str(k));
            b.push(FieldRef::Int(n));
            b.end_row(0);
        }
        b.build()
    }

    #[test]
    fn bodies_are_a_json_array_or_json_lines_of_the_rows_asked_for() {
        let batch = batch();
        let array = sink(Encoding::JsonArray).body(&batch, 1..3);
        let parsed: serde_json::Value = serde_json::from_slice(&array).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([{"k": "b\"", "n": 2}, {"k": "c", "n": 3}])
        );
        let empty = sink(Encoding::JsonArray).body(&batch, 0..0);
        assert_eq!(empty, b"[]");
        let lines = sink(Encoding::JsonLines).body(&batch, 0..2);
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "{\"k\":\"a\",\"n\":1}\n{\"k\":\"b\\\"\",\"n\":2}\n"
        );
    }

    #[test]
    fn a_key_depends_on_the_body_and_the_sink_and_on_nothing_else() {
        let one = sink(Encoding::JsonArray);
        let mut other = sink(Encoding::JsonArray);
        assert_eq!(one.key(b"[1]"), one.key(b"[1]"));
        assert_ne!(one.key(b"[1]"), one.key(b"[2]"));
        other.label = "sinks.other".into();
        assert_ne!(one.key(b"[1]"), other.key(b"[1]"));
        assert_eq!(one.key(b"[1]").len(), 32);
    }

    #[test]
    fn urls_other_than_http_are_refused_with_the_scheme_named() {
        assert!(parse_url("https://example.invalid/x").is_ok());
        let why = parse_url("ftp://host/x").unwrap_err();
        assert!(why.contains("`ftp:`"), "{why}");
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn retry_after_in_seconds_is_read_and_dates_are_not() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn jitter_shortens_a_pause_by_at_most_a_quarter() {
        for attempt in 0..50 {
            let pause = jittered(Duration::from_millis(1000), attempt);
            assert!(pause <= Duration::from_millis(1000) && pause > Duration::from_millis(750));
        }
    }
}
