//! The floor under any dashboard fan-out on this machine: how long the kernel takes to hand one
//! small message to each of N loopback TCP connections, with nothing else in the way (no
//! WebSocket, no Socket.IO, no per-connection task or queue, no allocation per send).
//!
//! N connections are made on loopback from a reader process (this program again, so that 10,000
//! connections fit the per-process file limit on both ends): one tokio task per connection reads
//! into a reused buffer, as the load client does, and when every connection has had the round's
//! message the reader says so on a control connection. Each round, the writer threads put the same
//! pre-framed 96-byte message on every connection with one `write` each (TCP_NODELAY, as the
//! dashboard sets). Printed, as medians over the rounds: the writers' pass (µs of wall time per
//! connection) and the time until the last connection had the message — the p100 latency a
//! dashboard would have with nothing at all above the kernel.
//!
//! `fanout_floor CONNECTIONS [ROUNDS] [WRITER_THREADS]` prints one JSON line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGE_BYTES: usize = 96;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The reader process: a control connection, then `connections` data connections; one byte on
/// the control connection each time every data connection has had one more message.
fn read(address: SocketAddr, connections: usize) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut control = tokio::net::TcpStream::connect(address).await?;
        let round_bytes = (connections * MESSAGE_BYTES) as u64;
        let total = Arc::new(AtomicU64::new(0));
        let (round_done, mut rounds_done) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut stream = tokio::net::TcpStream::connect(address).await?;
            let total = Arc::clone(&total);
            let round_done = round_done.clone();
            tasks.push(tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    // Nothing of round r + 1 is sent before round r is acknowledged, so the read
                    // that completes a round lands the total exactly on a multiple.
                    let now = total.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                    if now.is_multiple_of(round_bytes) {
                        let _ = round_done.send(());
                    }
                }
            }));
        }
        drop(round_done);
        while rounds_done.recv().await.is_some() {
            control.write_all(b".").await?;
        }
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--read") {
        let address: SocketAddr = args.get(1).ok_or("--read ADDRESS N")?.parse()?;
        let connections: usize = args.get(2).ok_or("--read ADDRESS N")?.parse()?;
        return Ok(read(address, connections)?);
    }
    let connections: usize = args.first().map_or(Ok(1000), |a| a.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(20), |a| a.parse())?;
    let writer_threads: usize = args.get(2).map_or(Ok(2), |a| a.parse())?;

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let mut reader = Command::new(std::env::current_exe()?)
        .args(["--read", &address.to_string(), &connections.to_string()])
        .stdin(Stdio::null())
        .spawn()?;
    let (mut control, _) = listener.accept()?;
    let mut streams: Vec<TcpStream> = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let message = [b'x'; MESSAGE_BYTES];
    let chunk = connections.div_ceil(writer_threads.max(1));
    let mut pass_us_per_connection = Vec::with_capacity(rounds);
    let mut last_arrival_ms = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for part in streams.chunks_mut(chunk) {
                scope.spawn(move || {
                    for stream in part {
                        let _ = stream.write_all(&message);
                    }
                });
            }
        });
        let pass = started.elapsed();
        let mut ack = [0u8; 1];
        control.read_exact(&mut ack)?;
        let all = started.elapsed();
        pass_us_per_connection.push(pass.as_secs_f64() * 1e6 / connections as f64);
        last_arrival_ms.push(all.as_secs_f64() * 1e3);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(streams);
    reader.wait()?;
    println!(
        "{{\"floor\":true,\"connections\":{connections},\"rounds\":{rounds},\
         \"writer_threads\":{writer_threads},\"write_us_per_connection_median\":{:.2},\
         \"last_arrival_ms_median\":{:.1}}}",
        median(&mut pass_us_per_connection),
        median(&mut last_arrival_ms)
    );
    Ok(())
}
