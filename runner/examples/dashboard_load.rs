//! Load benchmark client for the `socketio` dashboard sink: opens N Socket.IO connections
//! (Engine.IO 4 over WebSocket, spoken directly so thousands fit in one process), optionally makes
//! some of them "slow" (they never read again), and measures for every `window` event a fast
//! client receives the latency from the server's send stamp (`sent_at`) to receipt.
//!
//! `dashboard_load URL CLIENTS SLOW SECONDS` (URL like ws://127.0.0.1:5000) prints one JSON line.
//! Run it through `bench/dashboard.sh`, which starts weir, raises the fd limit and reads RSS.

use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One client; returns the latencies it measured (ms), or why it failed.
async fn client(url: String, slow: bool, until: Instant) -> Result<Vec<f64>, String> {
    let endpoint = format!("{url}/socket.io/?EIO=4&transport=websocket");
    let (ws, _) = tokio_tungstenite::connect_async(&endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = ws.split();
    // Engine.IO open packet, then the Socket.IO CONNECT to the default namespace.
    match rx.next().await {
        Some(Ok(Message::Text(t))) if t.starts_with('0') => {}
        other => return Err(format!("no open packet: {other:?}")),
    }
    tx.send(Message::Text("40".into()))
        .await
        .map_err(|e| e.to_string())?;
    if slow {
        tokio::time::sleep_until(until).await; // never reads: its buffers fill up
        return Ok(Vec::new());
    }
    let mut latencies = Vec::new();
    // One timer for the whole run (a new one per message would cost more than the message).
    let deadline = tokio::time::sleep_until(until);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            message = rx.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == "2" {
                        let _ = tx.send(Message::Text("3".into())).await;
                    } else if text.as_str().starts_with("42[\"window\",") {
                        // Only the send stamp matters here; a full JSON parse per message would make
                        // the load client compete with the server for the same two cores.
                        let received = now_ms();
                        let sent = text.as_str().split("\"sent_at\":").nth(1).and_then(|rest| {
                            rest.split(|c: char| c != '.' && !c.is_ascii_digit()).next()?.parse::<f64>().ok()
                        });
                        if let Some(sent) = sent {
                            latencies.push(received - sent);
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            _ = &mut deadline => break,
        }
    }
    Ok(latencies)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
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
    let ramp = Duration::from_millis(5 * clients as u64 / 100 + 500);
    let until = Instant::now() + ramp + Duration::from_secs(seconds);
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let url = url.clone();
        let failures = Arc::clone(&failures);
        tasks.push(tokio::spawn(async move {
            match client(url, i < slow, until).await {
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
    // Leave out the ramp-up: only deliveries after every client connected count.
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
