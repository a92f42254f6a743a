//! The `websocket` sink with real clients and no Socket.IO: a plain WebSocket client and a
//! Server-Sent Events client connect to a run sending a numbered file at a steady rate; each
//! must get a gap-free, in-order, repeat-free run of the records ending with the file's last one,
//! and its stream must end when the run does. Clients without the token, from a foreign origin,
//! or past the connection cap are refused with 401, 403 and 503.

mod common;

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const ROWS: u64 = 6_000;

fn pipeline(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let csv = dir.join("numbered.csv");
    let mut text = String::from("id,word\n");
    for id in 0..ROWS {
        text.push_str(&format!("{id},w{id}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let path = dir.join("live.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[sources.rows]
type = "csv"
path = "{}"
rate = 1000

[sinks.live]
type = "websocket"
inputs = ["rows"]
listen = "127.0.0.1:{port}"
token = "letmein"
max_connections = 2
"#,
            csv.display()
        ),
    )
    .unwrap();
    path
}

/// The ids of `records` (JSON objects) must run without a gap or a repeat to the last row.
fn assert_gap_free_to_the_end(what: &str, ids: &[u64]) {
    assert!(!ids.is_empty(), "{what}: nothing received");
    let first = ids[0];
    let expected: Vec<u64> = (first..ROWS).collect();
    assert_eq!(
        ids, expected,
        "{what}: from {first}, every record once, in order, to the last"
    );
    assert!(
        first < ROWS / 2,
        "{what}: connected late (first id {first}): the test proved little"
    );
}

fn id_of(json: &str) -> u64 {
    let record: serde_json::Value = serde_json::from_str(json).unwrap();
    record["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_event_stream_clients_get_every_record_once_in_order_and_strangers_are_refused()
 {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let file = pipeline(dir.path(), port);
    let run = common::Background::start(
        {
            let mut cmd = common::weir();
            cmd.args(["run", file.to_str().unwrap()]);
            cmd
        },
        &dir.path().join("run.out"),
        &dir.path().join("run.log"),
    );
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let tcp = loop {
        match tokio::net::TcpStream::connect(&address).await {
            Ok(tcp) => break tcp,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("the sink never listened: {e}"),
        }
    };

    // A WebSocket client with the token.
    let request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{address}/"),
    )
    .map(|mut r| {
        r.headers_mut()
            .insert("authorization", "Bearer letmein".parse().unwrap());
        r
    })
    .unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    let websocket = tokio::spawn(async move {
        let mut ids = Vec::new();
        let mut closed = false;
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Text(text) => ids.push(id_of(&text)),
                Message::Close(_) => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        (ids, closed)
    });

    // An event-stream client with the token.
    let client = reqwest::Client::new();
    let mut events = client
        .get(format!("http://{address}/"))
        .bearer_auth("letmein")
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let event_stream = tokio::spawn(async move {
        let mut text = String::new();
        while let Some(chunk) = events.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text.split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .map(id_of)
            .collect::<Vec<u64>>()
    });

    // Strangers.
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    let url = format!("http://{address}/");
    assert_eq!(status(client.get(&url)).await, 401, "no token");
    assert_eq!(
        status(client.get(&url).bearer_auth("wrong")).await,
        401,
        "a wrong token"
    );
    assert_eq!(
        status(
            client
                .get(&url)
                .bearer_auth("letmein")
                .header("origin", "http://evil.example")
        )
        .await,
        403,
        "a page from another origin"
    );
    assert_eq!(
        status(client.get(&url).bearer_auth("letmein")).await,
        503,
        "a third client past max_connections = 2"
    );

    let (status, log) = run.wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    let (ids, closed) = websocket.await.unwrap();
    assert_gap_free_to_the_end("WebSocket", &ids);
    assert!(closed, "the WebSocket client got a close frame at the end");
    let ids = event_stream.await.unwrap();
    assert_gap_free_to_the_end("event stream", &ids);
    assert!(
        log.contains("2 clients served") && log.contains("4 connections refused"),
        "{log}"
    );
}
