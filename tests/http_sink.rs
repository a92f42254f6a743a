//! The `http` sink against a web service that misbehaves: a raw HTTP/1.1 server (no framework
//! to smooth over what the sink does) that hangs up without answering, answers after the
//! sink's timeout, answers 500 and 429, takes a request and loses its answer, and refuses
//! (400) requests carrying a marked record. Judged against the input file: every record
//! delivered or sent to `<sink>.errors`, none lost; a record delivered twice only under the same
//! idempotency key (a request sent again); the keys of distinct requests distinct.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Take,
    HangUp,
    Stall,
    ServerError,
    TooMany,
    /// Takes the records, then hangs up before answering: the sink must send them again, under
    /// the same key.
    TakeAndLoseAnswer,
}

/// One request the server read.
struct Request {
    key: String,
    content_type: String,
    authorization: String,
    body: Vec<u8>,
}

/// What the server saw and took.
#[derive(Default)]
struct Seen {
    /// Requests answered 2xx or taken (with the answer lost), in order.
    taken: Vec<Request>,
    /// Requests answered 400.
    refused: usize,
    /// Requests by behaviour.
    behaviours: BTreeMap<String, usize>,
}

/// A raw HTTP/1.1 server whose behaviour per request comes from `choose` (given the request's
/// sequence number); refuses any request whose body contains `REFUSE`.
fn serve(choose: impl Fn(u64) -> Behaviour + Send + Sync + 'static) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let choose = Arc::new(choose);
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let shared = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (seen, choose, counter) = (
                Arc::clone(&shared),
                Arc::clone(&choose),
                Arc::clone(&counter),
            );
            std::thread::spawn(move || {
                let _ = connection(stream, &seen, &*choose, &counter);
            });
        }
    });
    (port, seen)
}

/// Serves one connection until the client or a behaviour closes it.
fn connection(
    stream: TcpStream,
    seen: &Mutex<Seen>,
    choose: &(dyn Fn(u64) -> Behaviour + Send + Sync),
    counter: &std::sync::atomic::AtomicU64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let request = Request {
            key: headers.get("idempotency-key").cloned().unwrap_or_default(),
            content_type: headers.get("content-type").cloned().unwrap_or_default(),
            authorization: headers.get("authorization").cloned().unwrap_or_default(),
            body,
        };
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refuse = request.body.windows(6).any(|w| w == b"REFUSE");
        let behaviour = if refuse { Behaviour::Take } else { choose(n) };
        *seen
            .lock()
            .unwrap()
            .behaviours
            .entry(if refuse {
                "Refuse".into()
            } else {
                format!("{behaviour:?}")
            })
            .or_default() += 1;
        let answer = |writer: &mut TcpStream, status: &str, extra: &str| {
            write!(
                writer,
                "HTTP/1.1 {status}\r\ncontent-length: 4\r\n{extra}\r\nnope"
            )
        };
        match behaviour {
            _ if refuse => {
                seen.lock().unwrap().refused += 1;
                answer(&mut writer, "400 Bad Request", "")?;
            }
            Behaviour::Take => {
                seen.lock().unwrap().taken.push(request);
                write!(writer, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
            }
            Behaviour::HangUp => return Ok(()),
            Behaviour::Stall => {
                std::thread::sleep(Duration::from_millis(1500));
                return Ok(());
            }
            Behaviour::ServerError => answer(&mut writer, "500 Internal Server Error", "")?,
            Behaviour::TooMany => {
                answer(&mut writer, "429 Too Many Requests", "retry-after: 0\r\n")?
            }
            Behaviour::TakeAndLoseAnswer => {
                seen.lock().unwrap().taken.push(request);
                return Ok(());
            }
        }
        writer.flush()?;
    }
}

/// The records (as `id`) of a request body in `encoding`.
fn ids(body: &[u8], encoding: &str) -> Vec<u64> {
    let records: Vec<serde_json::Value> = if encoding == "json_array" {
        serde_json::from_slice(body).expect("a JSON array")
    } else {
        std::str::from_utf8(body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
            .collect()
    };
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// A CSV of `rows` records `id,name`; every id divisible by `refuse_every` is named `REFUSE`.
fn input(dir: &std::path::Path, rows: u64, refuse_every: u64) -> std::path::PathBuf {
    let path = dir.join("rows.csv");
    let mut text = String::from("id,name\n");
    for id in 0..rows {
        let name = if id % refuse_every == refuse_every - 1 {
            "REFUSE"
        } else {
            "ok"
        };
        text.push_str(&format!("{id},{name}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn pipeline(csv: &std::path::Path, port: u16, encoding: &str, errors: &std::path::Path) -> String {
    format!(
        r#"
[sources.rows]
type = "csv"
path = "{}"
batch_size = 500

[sinks.hook]
type = "http"
inputs = ["rows"]
url = "http://127.0.0.1:{port}/ingest"
encoding = "{encoding}"
batch_size = 100
timeout = "400ms"
retry_for = "60s"
headers = {{ Authorization = "Bearer ${{HOOK_TOKEN}}" }}

[sinks.refused]
type = "file"
inputs = ["hook.errors"]
path = "{}"
"#,
        csv.display(),
        errors.display()
    )
}

/// Every input record is delivered or refused, and a repeat carries its first key.
fn judge(seen: &Seen, encoding: &str, rows: u64, errors: &std::path::Path) {
    let mut first_key: BTreeMap<u64, String> = BTreeMap::new();
    let mut repeats = 0;
    let mut keys: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for request in &seen.taken {
        assert_eq!(
            request.authorization, "Bearer s3cret",
            "the token from the environment"
        );
        let expected_type = if encoding == "json_array" {
            "application/json"
        } else {
            "application/x-ndjson"
        };
        assert_eq!(request.content_type, expected_type);
        assert_eq!(request.key.len(), 32, "every request carries a key");
        let request_ids = ids(&request.body, encoding);
        match keys.get(request.key.as_str()) {
            Some(before) => assert_eq!(
                before, &request_ids,
                "a key is used again only for the same records"
            ),
            None => {
                keys.insert(&request.key, request_ids.clone());
            }
        }
        for id in request_ids {
            match first_key.get(&id) {
                None => {
                    first_key.insert(id, request.key.clone());
                }
                Some(key) => {
                    assert_eq!(
                        key, &request.key,
                        "record {id} was delivered twice under different keys"
                    );
                    repeats += 1;
                }
            }
        }
    }
    let refused: BTreeSet<u64> = std::fs::read_to_string(errors)
        .unwrap()
        .lines()
        .map(|l| {
            let error: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(
                error["reason"].as_str().unwrap().contains("HTTP 400"),
                "{error}"
            );
            let record: serde_json::Value =
                serde_json::from_str(error["record"].as_str().unwrap()).unwrap();
            record["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    let delivered: BTreeSet<u64> = first_key.keys().copied().collect();
    assert!(
        delivered.is_disjoint(&refused),
        "a record both delivered and refused"
    );
    let lost: Vec<u64> = (0..rows)
        .filter(|id| !delivered.contains(id) && !refused.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} records lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(
        refused.len(),
        seen.refused * 100,
        "each refused request's 100 records are in hook.errors"
    );
    println!(
        "{encoding}: {} records delivered ({repeats} again under their key), {} refused; \
         requests by behaviour: {:?}",
        delivered.len(),
        refused.len(),
        seen.behaviours
    );
}

fn delivers_every_record_once_per_key_through_a_misbehaving_service(encoding: &str) {
    const ROWS: u64 = 20_000;
    let (seed, mut random) = common::kafka::seeded();
    let script: Vec<Behaviour> = (0..2_000)
        .map(|_| match random(20) {
            0..=1 => Behaviour::HangUp,
            2 => Behaviour::Stall,
            3..=4 => Behaviour::ServerError,
            5 => Behaviour::TooMany,
            6..=7 => Behaviour::TakeAndLoseAnswer,
            _ => Behaviour::Take,
        })
        .collect();
    println!("seed {seed}");
    let (port, seen) = serve(move |n| script.get(n as usize).copied().unwrap_or(Behaviour::Take));
    let dir = tempfile::tempdir().unwrap();
    let csv = input(dir.path(), ROWS, 3_001);
    let errors = dir.path().join("refused.jsonl");
    let file = dir.path().join("hook.toml");
    std::fs::write(&file, pipeline(&csv, port, encoding, &errors)).unwrap();
    let out = common::weir()
        .args(["run", file.to_str().unwrap()])
        .env("HOOK_TOKEN", "s3cret")
        .output()
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    assert!(out.status.success(), "seed {seed}\n{stdout}\n{stderr}");
    let seen = seen.lock().unwrap();
    judge(&seen, encoding, ROWS, &errors);
    for behaviour in [
        "HangUp",
        "Stall",
        "ServerError",
        "TakeAndLoseAnswer",
        "Refuse",
    ] {
        assert!(
            seen.behaviours.get(behaviour).copied().unwrap_or(0) > 0,
            "seed {seed}: the server never chose {behaviour}: the test proved nothing about it"
        );
    }
}

#[test]
fn json_arrays_reach_a_misbehaving_service_once_per_key_and_refusals_reach_the_errors_stream() {
    delivers_every_record_once_per_key_through_a_misbehaving_service("json_array");
}

#[test]
fn json_lines_reach_a_misbehaving_service_once_per_key_and_refusals_reach_the_errors_stream() {
    delivers_every_record_once_per_key_through_a_misbehaving_service("json_lines");
}

/// A service that never takes anything: the run fails after `retry_for` with an error that
/// names the URL and the last answer, and says the batch stays uncommitted.
#[test]
fn a_service_that_keeps_failing_fails_the_run_after_retry_for_with_the_last_answer() {
    let (port, _seen) = serve(|_| Behaviour::ServerError);
    let dir = tempfile::tempdir().unwrap();
    let csv = input(dir.path(), 10, 1_000);
    let file = dir.path().join("hook.toml");
    let text = pipeline(&csv, port, "json_array", &dir.path().join("e.jsonl"))
        .replace("retry_for = \"60s\"", "retry_for = \"1s\"");
    std::fs::write(&file, text).unwrap();
    let out = common::weir()
        .args(["run", file.to_str().unwrap()])
        .env("HOOK_TOKEN", "s3cret")
        .output()
        .unwrap();
    let (stdout, stderr) = common::text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    let url = format!("http://127.0.0.1:{port}/ingest");
    assert!(
        stderr.contains(&url)
            && stderr.contains("HTTP 500 Internal Server Error: nope")
            && stderr.contains("stays uncommitted"),
        "{stderr}"
    );
}
