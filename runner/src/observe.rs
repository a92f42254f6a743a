//! Watching a running pipeline through its control API (`weir run --api`): serving the API
//! (over HTTPS with `--api-tls-cert` / `--api-tls-key`), and its two clients, `weir top` (a
//! refreshed table of every stage) and `weir tap` (records leaving stages). The clients speak
//! plain HTTP/1.1 to a loopback (or otherwise trusted) address; with `$WEIR_API_TOKEN` set they
//! send it as `Authorization: Bearer`.

use crate::cli::TapFormat;
use crate::tap_table::TapTable;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use weir::serve::Serving;
use weir::serve::token::Token;
use weir::topology::{GraphSnapshot, RunView, StageSnapshot};

/// The environment variable holding the API token (never a command-line argument, which other
/// local users can read).
const TOKEN_ENV: &str = "WEIR_API_TOKEN";

/// How `weir run --api` serves the control API.
pub struct ApiSettings {
    /// Where.
    pub listen: String,
    /// Over HTTPS with this certificate and key.
    pub tls: Option<weir::serve::tls::ServerTls>,
}

/// Starts the control API for `view`.
pub fn serve_api(settings: &ApiSettings, view: &Arc<RunView>) -> Result<Serving, String> {
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty());
    for warning in weir::serve::token::open_listener_warning(
        "--api",
        &settings.listen,
        token.is_some(),
        settings.tls.is_some(),
    ) {
        tracing::warn!("{}", warning.message);
    }
    let tls = match &settings.tls {
        Some(tls) => Some(tls.load().map_err(|e| e.to_string())?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let (addr, serving) = weir::api::start(
        &settings.listen,
        Arc::clone(view),
        token.as_deref().map(Token::new),
        tls,
    )
    .map_err(|e| e.to_string())?;
    tracing::info!(
        "control API at {scheme}://{addr}/ (the graph page; /graph, /metrics, /health, /tap/STAGE)"
    );
    Ok(serving)
}

/// An HTTP GET to the API at `api`; the response's status and body (streamed).
async fn get(api: &str, path: &str) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(api).await.map_err(|e| {
        format!("cannot reach the control API at {api}: {e} (is the pipeline running with --api?)")
    })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("control API at {api}: {e}"))?;
    tokio::spawn(connection);
    let mut request = hyper::Request::get(path).header(hyper::header::HOST, api);
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("control API at {api}: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_string())
            .unwrap_or_default();
        return Err(format!("control API at {api}: {status}: {body}"));
    }
    Ok(response)
}

/// The pipeline's stages now.
async fn snapshot(api: &str) -> Result<GraphSnapshot, String> {
    let body = get(api, "/graph")
        .await?
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("control API at {api}: {e}"))
}

/// `weir top`.
pub async fn top(api: &str, count: Option<u64>) -> ExitCode {
    let tty = std::io::stdout().is_terminal();
    let mut previous: Option<GraphSnapshot> = None;
    let mut shown = 0;
    loop {
        let now = match snapshot(api).await {
            Ok(now) => now,
            Err(e) if previous.is_some() => {
                println!("the pipeline has ended ({e})");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let table = render(&now, previous.as_ref());
        let mut out = std::io::stdout().lock();
        if tty {
            // Clear the screen and draw from the top.
            let _ = write!(out, "\x1b[2J\x1b[H");
        } else if shown > 0 {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{table}");
        let _ = out.flush();
        drop(out);
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return ExitCode::SUCCESS;
        }
        previous = Some(now);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}

/// A queue this full (or fuller) holds its sender back.
const BACKPRESSURE: f64 = 0.75;

/// How full the fullest input queue of `s` is (0 to 1).
fn fill(s: &StageSnapshot) -> f64 {
    s.queues
        .iter()
        .filter(|q| q.capacity > 0)
        .map(|q| q.queued as f64 / q.capacity as f64)
        .fold(0.0, f64::max)
}

/// The stage that holds the pipeline back: the furthest downstream whose input queues are full
/// while its readers' are not (it cannot keep up with what it is sent).
fn bottleneck(now: &GraphSnapshot) -> Option<&str> {
    let live = || now.stages.iter().filter(|s| !s.removed);
    live()
        .filter(|s| fill(s) >= BACKPRESSURE)
        .find(|s| {
            live()
                .filter(|r| r.inputs.contains(&s.id))
                .all(|r| fill(r) < BACKPRESSURE)
        })
        .map(|s| s.id.as_str())
}

/// The table `weir top` prints: one line per stage.
fn render(now: &GraphSnapshot, previous: Option<&GraphSnapshot>) -> String {
    let before: HashMap<&str, &StageSnapshot> = previous
        .map(|p| p.stages.iter().map(|s| (s.path.as_str(), s)).collect())
        .unwrap_or_default();
    let seconds = previous.map_or(0.0, |p| (now.at - p.at) as f64 / 1000.0);
    let rate = |now: u64, then: Option<u64>| match then {
        Some(then) if seconds > 0.0 => format!("{:.0}", now.saturating_sub(then) as f64 / seconds),
        _ => "-".into(),
    };
    let slowest = bottleneck(now);
    let mut text = format!(
        "{:<28} {:<10} {:>10} {:>10} {:>12} {:>12} {:>9} {:>8} {:>6} {:>6} {:>10} {:>9}\n",
        "STAGE",
        "TYPE",
        "IN/s",
        "OUT/s",
        "IN",
        "OUT",
        "DROPPED",
        "BYTES/s",
        "QUEUE",
        "BUSY",
        "WM LAG",
        "BACKLOG"
    );
    for s in now.stages.iter().filter(|s| !s.removed) {
        let then = before.get(s.path.as_str());
        let busy = match then {
            // A source's time is not measured (it waits on its input as much as it works).
            _ if s.kind == "source" => "-".into(),
            Some(then) if seconds > 0.0 => {
                format!("{:.0}%", (s.busy_ms - then.busy_ms) / (seconds * 10.0))
            }
            _ => "-".into(),
        };
        let lag = s
            .watermark_lag_ms
            .map_or_else(|| "-".into(), humantime_short);
        let (records_in, rate_in) = match s.kind.as_str() {
            "source" => ("-".to_string(), "-".to_string()),
            _ => (
                s.records_in.to_string(),
                rate(s.records_in, then.map(|t| t.records_in)),
            ),
        };
        let (records_out, rate_out) = match s.kind.as_str() {
            "sink" => ("-".to_string(), "-".to_string()),
            _ => (
                s.records_out.to_string(),
                rate(s.records_out, then.map(|t| t.records_out)),
            ),
        };
        // What a source reads or a sink writes, per second.
        let bytes_rate = match (s.kind.as_str(), then) {
            ("source", Some(then)) if seconds > 0.0 => {
                bytes_short(s.bytes_read.saturating_sub(then.bytes_read) as f64 / seconds)
            }
            ("sink", Some(then)) if seconds > 0.0 => {
                bytes_short(s.bytes_written.saturating_sub(then.bytes_written) as f64 / seconds)
            }
            _ => "-".into(),
        };
        // A Kafka source's records still to read, over its partitions.
        let backlog = if s.partitions.is_empty() {
            "-".to_string()
        } else {
            s.partitions
                .iter()
                .map(|p| p.lag.max(0))
                .sum::<i64>()
                .to_string()
        };
        let queue = if s.queues.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}%", fill(s) * 100.0)
        };
        let mark = if slowest == Some(s.id.as_str()) {
            "  <- bottleneck"
        } else {
            ""
        };
        text += &format!(
            "{:<28} {:<10} {:>10} {:>10} {:>12} {:>12} {:>9} {:>8} {:>6} {:>6} {:>10} {:>9}{mark}\n",
            s.path,
            s.r#type,
            rate_in,
            rate_out,
            records_in,
            records_out,
            s.dropped,
            bytes_rate,
            queue,
            busy,
            lag,
            backlog
        );
    }
    text
}

/// A byte rate, short: `850B`, `12.5kB`, `3.1MB`, `1.2GB` (decimal units, per second).
fn bytes_short(per_second: f64) -> String {
    let per_second = per_second.max(0.0);
    if per_second < 1e3 {
        format!("{per_second:.0}B")
    } else if per_second < 1e6 {
        format!("{:.1}kB", per_second / 1e3)
    } else if per_second < 1e9 {
        format!("{:.1}MB", per_second / 1e6)
    } else {
        format!("{:.1}GB", per_second / 1e9)
    }
}

/// `ms` as a short duration: `850ms`, `12.5s`, `3m`, `5h`, `400d`.
fn humantime_short(ms: i64) -> String {
    let ms = ms.max(0) as f64;
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.0}m", ms / 60_000.0)
    } else if ms < 86_400_000.0 {
        format!("{:.0}h", ms / 3_600_000.0)
    } else {
        format!("{:.0}d", ms / 86_400_000.0)
    }
}

/// `weir tap`.
pub async fn tap(
    api: &str,
    stages: &[String],
    limit: Option<u64>,
    sample: Option<u64>,
    format: TapFormat,
) -> ExitCode {
    let mut query = Vec::new();
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    if let Some(sample) = sample {
        query.push(format!("sample={sample}"));
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let several = stages.len() > 1;
    // One table for every tap, so a header is printed again only when the stage changes.
    let table = (format == TapFormat::Table)
        .then(|| Arc::new(std::sync::Mutex::new(TapTable::new(several))));
    let mut taps = tokio::task::JoinSet::new();
    for stage in stages {
        let (api, stage, path) = (
            api.to_string(),
            stage.clone(),
            format!("/tap/{stage}{query}"),
        );
        let table = table.clone();
        taps.spawn(async move {
            let mut body = get(&api, &path).await?.into_body();
            let mut pending = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    // The run ended (its API stops with it) or the connection broke.
                    eprintln!(
                        "weir tap: {stage}: the pipeline closed the connection (it has ended?)"
                    );
                    return Ok(());
                };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                let complete = pending
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                let mut table = table
                    .as_ref()
                    .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()));
                let mut out = std::io::stdout().lock();
                for line in pending[..complete].split_inclusive(|&b| b == b'\n') {
                    let written = if let Some(table) = table.as_mut() {
                        let record = String::from_utf8_lossy(line);
                        out.write_all(table.lines(&stage, &record).as_bytes())
                    } else if several {
                        let record = std::str::from_utf8(line).unwrap_or("null").trim_end();
                        writeln!(
                            out,
                            "{{\"stage\":{},\"record\":{record}}}",
                            serde_json::Value::from(stage.as_str())
                        )
                    } else {
                        out.write_all(line)
                    };
                    if written.is_err() {
                        // Stdout closed (e.g. `| head`): stop quietly.
                        return Ok(());
                    }
                }
                let _ = out.flush();
                drop(table);
                pending.drain(..complete);
            }
            Ok::<(), String>(())
        });
    }
    let mut failed = false;
    while let Some(done) = taps.join_next().await {
        if let Ok(Err(e)) = done {
            eprintln!("error: {e}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::topology::view::{PartitionSnapshot, QueueSnapshot};

    fn stage(id: &str, kind: &str, input: Option<(&str, usize)>) -> StageSnapshot {
        StageSnapshot {
            id: id.into(),
            path: format!("{kind}s.{id}"),
            kind: kind.into(),
            r#type: "t".into(),
            inputs: input.iter().map(|(from, _)| from.to_string()).collect(),
            records_in: 0,
            records_out: 0,
            bytes_read: 0,
            bytes_written: 0,
            dropped: 0,
            dropped_by: Default::default(),
            batches: 0,
            busy_ms: 0.0,
            watermark: None,
            watermark_lag_ms: None,
            queues: input
                .iter()
                .map(|&(from, queued)| QueueSnapshot {
                    from: from.into(),
                    queued,
                    capacity: 16,
                })
                .collect(),
            partitions: Vec::new(),
            removed: false,
        }
    }

    /// The bottleneck is the furthest stage downstream with a full input queue: behind it,
    /// everything upstream waits; after it, nothing does.
    #[test]
    fn the_bottleneck_is_the_last_stage_with_a_full_input() {
        let graph = |window_queue, sink_queue| GraphSnapshot {
            at: 0,
            stages: vec![
                stage("src", "source", None),
                stage("w", "transform", Some(("src", window_queue))),
                stage("out", "sink", Some(("w", sink_queue))),
            ],
        };
        assert_eq!(bottleneck(&graph(16, 1)), Some("w"));
        assert_eq!(bottleneck(&graph(16, 15)), Some("out"));
        assert_eq!(bottleneck(&graph(3, 2)), None);
        let table = render(&graph(16, 1), None);
        let marked: Vec<&str> = table
            .lines()
            .filter(|l| l.ends_with("<- bottleneck"))
            .collect();
        assert_eq!(marked.len(), 1, "{table}");
        assert!(marked[0].starts_with("transforms.w "), "{table}");
    }

    /// A source shows what it read per second and, from Kafka, its backlog; a sink what it
    /// wrote; a transform neither.
    #[test]
    fn bytes_per_second_and_the_kafka_backlog() {
        let snapshot = |at, read, written| {
            let mut source = stage("src", "source", None);
            source.bytes_read = read;
            source.partitions = [(0, 7), (1, 5)]
                .map(|(partition, lag)| PartitionSnapshot {
                    topic: "sex".into(),
                    partition,
                    position: 0,
                    end: lag,
                    lag,
                    committed: -1,
                })
                .to_vec();
            let mut sink = stage("out", "sink", Some(("w", 0)));
            sink.bytes_written = written;
            GraphSnapshot {
                at,
                stages: vec![source, stage("w", "transform", Some(("src", 0))), sink],
            }
        };
        let table = render(
            &snapshot(2_000, 2_600_000, 1_500),
            Some(&snapshot(0, 100_000, 300)),
        );
        let columns = |prefix: &str| -> Vec<String> {
            let line = table.lines().find(|l| l.starts_with(prefix)).unwrap();
            line.split_whitespace().map(String::from).collect()
        };
        // STAGE TYPE IN/s OUT/s IN OUT DROPPED BYTES/s QUEUE BUSY WM-LAG BACKLOG
        let source = columns("sources.src ");
        assert_eq!(source[7], "1.2MB", "{table}");
        assert_eq!(source[11], "12", "{table}");
        let sink = columns("sinks.out ");
        assert_eq!(sink[7], "600B", "{table}");
        assert_eq!(sink[11], "-", "{table}");
        assert_eq!(columns("transforms.w ")[7], "-", "{table}");
    }
}
