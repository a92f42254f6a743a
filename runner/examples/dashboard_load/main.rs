//! Load benchmark client for the `socketio` dashboard sink: opens N Socket.IO connections
//! (Engine.IO 4 over WebSocket), optionally makes some of them "slow" (they never read again), and
//! measures for every `window` event a fast client receives the latency from the server's send
//! stamp (`sent_at`) to receipt.
//!
//! The client shares this machine's two cores with the server it measures, so every microsecond
//! it spends per message is taken from the server and shows up as latency. It therefore speaks
//! the few WebSocket frames it needs itself over a plain socket, with one reused buffer per
//! connection, on one thread: with tungstenite it cost about half as much CPU per message as the
//! server, and that CPU came out of the server's share.
//!
//! `dashboard_load URL CLIENTS SLOW SECONDS` (URL like ws://127.0.0.1:5000) prints one JSON line.
//! Run it through `bench/dashboard.sh`, which starts weir, raises the fd limit and reads RSS.

mod frames;

use frames::{Connection, Frame};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One client; returns the latencies it measured (ms) for windows sent from `measure_from`
/// (epoch ms) on, or why it failed.
async fn client(
    address: String,
    slow: bool,
    until: Instant,
    measure_from: f64,
) -> Result<Vec<f64>, String> {
    // A connection the server never answers (a SYN lost to a full accept queue is retried after
    // 1, 3, 7… s) must not hold the whole run past its end. A second of grace: the measuring
    // loop below ends at `until` itself and keeps its figures.
    let deadline = until + Duration::from_secs(1);
    tokio::time::timeout_at(
        deadline,
        connect_and_measure(address, slow, until, measure_from),
    )
    .await
    .map_err(|_| "not connected by the end of the run".to_string())?
}

async fn connect_and_measure(
    address: String,
    slow: bool,
    until: Instant,
    measure_from: f64,
) -> Result<Vec<f64>, String> {
    let mut connection = Connection::open(&address, "/socket.io/?EIO=4&transport=websocket")
        .await
        .map_err(|e| format!("connect: {e}"))?;
    // Engine.IO open packet, then the Socket.IO CONNECT to the default namespace.
    match connection.next().await {
        Ok(Frame::Text(t)) if t.starts_with(b"0") => {}
        other => return Err(format!("no open packet: {other:?}")),
    }
    connection
        .send_text(b"40")
        .await
        .map_err(|e| e.to_string())?;
    if slow {
        tokio::time::sleep_until(until).await; // never reads: its buffers fill up
        return Ok(Vec::new());
    }
    let mut latencies = Vec::new();
    // One deadline around the whole loop (a timer per message would cost more than the message).
    let _ = tokio::time::timeout_at(until, async {
        loop {
            let ping = match connection.next().await {
                Ok(Frame::Text(text)) if text == b"2" => true,
                Ok(Frame::Text(text)) => {
                    if let Some(sent) = send_stamp(text).filter(|&sent| sent >= measure_from) {
                        latencies.push(now_ms() - sent);
                    }
                    false
                }
                Ok(Frame::Other) => false,
                Ok(Frame::Closed) | Err(_) => break,
            };
            // Engine.IO ping, answered with a pong.
            if ping && connection.send_text(b"3").await.is_err() {
                break;
            }
        }
    })
    .await;
    Ok(latencies)
}

/// The `sent_at` stamp of a `window` event. Only the stamp matters here; a full JSON parse per
/// message would make the load client compete with the server for the same two cores.
fn send_stamp(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    if !text.starts_with("42[\"window\",") {
        return None;
    }
    let rest = text.split("\"sent_at\":").nth(1)?;
    rest.split(|c: char| c != '.' && !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, clients, slow, seconds] = args.as_slice() else {
        eprintln!("usage: dashboard_load URL CLIENTS SLOW SECONDS");
        std::process::exit(2);
    };
    let (clients, slow, seconds): (usize, usize, u64) = (
        clients.parse().unwrap(),
        slow.parse().unwrap(),
        seconds.parse().unwrap(),
    );
    let Some(address) = url.strip_prefix("ws://").map(str::to_string) else {
        eprintln!("the URL must look like ws://HOST:PORT");
        std::process::exit(2);
    };
    let ramp = Duration::from_millis(5 * clients as u64 / 100 + 500);
    let until = Instant::now() + ramp + Duration::from_secs(seconds);
    // Only windows sent after every client connected count: fewer clients answer faster.
    let measure_from = now_ms() + ramp.as_secs_f64() * 1000.0;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let address = address.clone();
        let failures = Arc::clone(&failures);
        tasks.push(tokio::spawn(async move {
            match client(address, i < slow, until, measure_from).await {
                Ok(latencies) => latencies,
                Err(e) => {
                    failures.lock().unwrap().push(e);
                    Vec::new()
                }
            }
        }));
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(5)).await; // ramp up: 100 connections per 5 ms
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all.sort_by(f64::total_cmp);
    let failures = failures.lock().unwrap();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "slow": slow,
            "connect_failures": failures.len(),
            "first_failure": failures.first(),
            "deliveries": all.len(),
            "p50_ms": percentile(&all, 0.50),
            "p99_ms": percentile(&all, 0.99),
            "max_ms": all.last(),
        })
    );
}
