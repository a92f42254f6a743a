//! The dashboard tests' shared parts: a `weir run` of a dashboard pipeline on a free port with a
//! file sink on the same window (the windows the pipeline computed, to compare with what clients
//! see), the Python client scripts, and bare HTTP requests.

use super::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `weir` that is killed when dropped.
pub struct Weir {
    pub child: Child,
    pub port: u16,
    pub out: PathBuf,
    pub log: PathBuf,
    /// Where its output and log are; removed when it is dropped.
    pub dir: tempfile::TempDir,
}

impl Drop for Weir {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Weir {
    /// Stops the run with SIGTERM and returns its log once it has exited.
    pub fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "weir exits 0 after SIGTERM");
        std::fs::read_to_string(&self.log).unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Window records the file sink wrote: window_end -> (gender -> count).
    pub fn windows(&self) -> BTreeMap<i64, BTreeMap<String, f64>> {
        let mut windows: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
        for line in std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
        {
            let r: Value = serde_json::from_str(line).unwrap();
            let end = r["window_end"].as_i64().unwrap();
            windows.entry(end).or_default().insert(
                r["gender"].as_str().unwrap().to_string(),
                r["count"].as_f64().unwrap(),
            );
        }
        windows
    }
}

/// Starts the shipped dashboard pipeline at 40 rows/s (4 windows a second) on a free port, with
/// a file sink on the same window.
pub fn start(extra: &[&str]) -> Weir {
    start_pipeline(
        "pipelines/shopping_gender_dashboard.toml",
        "sinks.dashboard.listen",
        extra,
    )
}

pub fn start_pipeline(pipeline: &str, listen_key: &str, extra: &[&str]) -> Weir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("windows.jsonl");
    let port = free_port();
    let listen = format!("{listen_key}=127.0.0.1:{port}");
    let path = format!("sinks.copy.path={}", out.display());
    let mut args = vec![
        "run",
        pipeline,
        "--set",
        "sources.user_log.rate=40",
        "--set",
        &listen,
        "--set",
        "sinks.copy.type=file",
        "--set",
        "sinks.copy.inputs=[\"per_second\"]",
        "--set",
        &path,
    ];
    for e in extra {
        args.extend(["--set", e]);
    }
    let log = dir.path().join("weir.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let child = weir()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // Wait for this process's own "dashboard at" (or "metrics at") line, not just for something to answer on the
    // port: tests run in parallel, and a port that was free a moment ago can be another test's
    // dashboard by now (then this one fails to bind, and a client would talk to the other).
    let deadline = Instant::now() + Duration::from_secs(15);
    let serving = format!(" at http://127.0.0.1:{port}/");
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&serving)
        || TcpStream::connect(("127.0.0.1", port)).is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the dashboard did not start listening on {port}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Weir {
        child,
        port,
        out,
        log,
        dir,
    }
}

pub fn run_script(python: &Path, script: &str, args: &[&str]) -> (Output, Value) {
    let out = Command::new(python)
        .arg(repo().join("tests/python").join(script))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (out, json)
}

pub fn values(point: &Value) -> BTreeMap<String, f64> {
    point["values"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// GET `path` from 127.0.0.1:`port` with `extra` header lines; returns the status line and body.
pub fn http_request(port: u16, path: &str, extra: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}
