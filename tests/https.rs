//! The dashboard and `/metrics` over HTTPS (`tls = { cert, key }`): with a CA and a server
//! certificate the test makes, a Socket.IO client (python-socketio, HTTPS long-polling) gets the
//! windows and an HTTPS client trusting only that CA gets the page and the metrics; a client
//! trusting another CA, or speaking plain HTTP, gets nothing; a key that does not belong to the
//! certificate is a clear error before the run starts.

mod common;

use common::tls::{https_get, make_ca, make_server_cert};
use common::{Background, free_port, python, weir};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the shipped `pipeline` at 40 rows/s with its `sink` on a free port over TLS (and any
/// `extra` settings); returns the process and the port once it serves.
fn start_https(dir: &Path, pipeline: &str, sink: &str, extra: &[&str]) -> (Background, u16) {
    let port = free_port();
    let mut cmd = weir();
    cmd.args(["run", pipeline])
        .args(["--set", "sources.user_log.rate=40"])
        .args(["--set", &format!("sinks.{sink}.listen=127.0.0.1:{port}")])
        .args([
            "--set",
            &format!(
                "sinks.{sink}.tls={{ cert = \"{}\", key = \"{}\" }}",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ),
        ])
        .current_dir(common::repo());
    for e in extra {
        cmd.args(["--set", e]);
    }
    let log = dir.join(format!("{sink}.log"));
    let run = Background::start(cmd, &dir.join(format!("{sink}.out")), &log);
    let serving = format!(" at https://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&serving)
    {
        assert!(
            Instant::now() < deadline,
            "no HTTPS server on {port}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (run, port)
}

fn certificates() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path(), "ca");
    make_ca(dir.path(), "other-ca");
    make_server_cert(dir.path(), "ca");
    dir
}

/// What a plain-HTTP request to `port` gets back (nothing HTTP-like from a TLS port).
fn plain_http(port: u16) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn the_dashboard_serves_its_page_and_socket_io_over_https() {
    let certs = certificates();
    let dir = certs.path();
    let (_run, port) = start_https(
        dir,
        "pipelines/shopping_gender_dashboard.toml",
        "dashboard",
        &[],
    );
    let (status, body) = https_get(port, "/", &dir.join("ca.pem"), "").unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("<html"), "{body}");

    // python-socketio trusting the test's CA, over HTTPS long-polling. (Over wss:// its
    // websocket-client lost the connection right after `history` in about one run in eight, and
    // never over plain ws://; the cause is not found: docs/security.md.)
    let ca = dir.join("ca.pem");
    let out = Command::new(python("WEIR_TEST_PYTHON", "venv-sio5"))
        .arg(common::repo().join("tests/python/sio_client.py"))
        .arg(format!("https://127.0.0.1:{port}"))
        .arg("2")
        .arg("--plain")
        .arg("--polling")
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("SSL_CERT_FILE", &ca)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        got["windows"].as_array().unwrap().len() >= 2,
        "windows over HTTPS: {got}"
    );

    let refused = https_get(port, "/", &dir.join("other-ca.pem"), "");
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "a client trusting another CA must not get the page: {refused:?}"
    );
    assert!(
        !plain_http(port).starts_with("HTTP/1.1 200"),
        "plain HTTP on the TLS port must get no page"
    );
}

#[test]
fn metrics_over_https_still_want_the_bearer_token() {
    let certs = certificates();
    let dir = certs.path();
    let (_run, port) = start_https(
        dir,
        "pipelines/shopping_gender_prometheus.toml",
        "metrics",
        &["sinks.metrics.token=s3cret"],
    );
    let ca = dir.join("ca.pem");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) =
            https_get(port, "/metrics", &ca, "Authorization: Bearer s3cret\r\n").unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        if body.contains("weir_window_total{gender=") {
            break;
        }
        assert!(Instant::now() < deadline, "no windows exported: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, body) = https_get(port, "/metrics", &ca, "").unwrap();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(!body.contains("weir_window"), "{body}");
}

#[test]
fn a_key_that_does_not_match_the_certificate_stops_the_run_with_both_files_named() {
    let certs = certificates();
    let dir = certs.path();
    let tls = format!(
        "sinks.metrics.tls={{ cert = \"{}\", key = \"{}\" }}",
        dir.join("server.pem").display(),
        dir.join("ca.key").display()
    );
    let out = weir()
        .args(["run", "pipelines/shopping_gender_prometheus.toml"])
        .args([
            "--set",
            &format!("sinks.metrics.listen=127.0.0.1:{}", free_port()),
        ])
        .args(["--set", &tls])
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error:") && l.contains("server.pem") && l.contains("ca.key")),
        "{stderr}"
    );

    let missing = weir()
        .args(["validate", "pipelines/shopping_gender_prometheus.toml"])
        .args([
            "--set",
            "sinks.metrics.tls={ cert = \"/nonexistent/cert.pem\", key = \"/nonexistent/key.pem\" }",
        ])
        .current_dir(common::repo())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        stderr.contains("tls.cert") && stderr.contains("/nonexistent/cert.pem"),
        "{stderr}"
    );
}

/// The control API over HTTPS (`--api-tls-cert` / `--api-tls-key`), still behind its token.
#[test]
fn the_control_api_over_https_wants_its_token() {
    let certs = certificates();
    let dir = certs.path();
    let port = free_port();
    let mut cmd = weir();
    cmd.args(["run", "pipelines/shopping_gender_local.toml"])
        .arg(format!("--api=127.0.0.1:{port}"))
        .arg("--api-tls-cert")
        .arg(dir.join("server.pem"))
        .arg("--api-tls-key")
        .arg(dir.join("server.key"))
        .args(["--set", "sources.user_log.rate=40"])
        .env("WEIR_API_TOKEN", "s3cret")
        .current_dir(common::repo());
    let log = dir.join("api.log");
    let _run = Background::start(cmd, &dir.join("api.out"), &log);
    let serving = format!("control API at https://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&serving)
    {
        assert!(
            Instant::now() < deadline,
            "no HTTPS API on {port}:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ca = dir.join("ca.pem");
    let (status, body) =
        https_get(port, "/graph", &ca, "Authorization: Bearer s3cret\r\n").unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("\"transforms.per_second\""), "{body}");
    let (status, _) = https_get(port, "/graph", &ca, "").unwrap();
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(
        https_get(port, "/health", &dir.join("other-ca.pem"), "").is_err(),
        "a client that trusts another CA is refused"
    );
    assert!(!plain_http(port).starts_with("HTTP/1.1 200"));
}
