//! Who may connect to the dashboard and `/metrics`, through the real binary: the token (never
//! taken from a URL), the origin allow-list (not the Host header), the connection cap, a busy
//! port, client messages that are ignored or cut off, and the metrics bearer token.

mod common;

use common::dashboard::*;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_token_is_required_when_configured_and_never_taken_from_a_url() {
    let weir = start(&["sinks.dashboard.token=s3cret"]);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let (out, got) = run_script(&py, "sio_client.py", &[&weir.url(), "1"]);
    assert!(
        !out.status.success(),
        "without the token nothing arrives: {got}"
    );
    assert!(got["config"].is_null(), "{got}");
    // In the connection's URL it would end up in logs: not accepted there.
    let in_url = format!("{}/?token=s3cret", weir.url());
    let (out, got) = run_script(&py, "sio_client.py", &[&in_url, "1"]);
    assert!(
        !out.status.success(),
        "a token in the URL must not count: {got}"
    );
    for (how, args) in [
        (
            "auth payload",
            vec![weir.url(), "1".into(), "s3cret".into()],
        ),
        (
            "bearer header",
            vec![
                weir.url(),
                "1".into(),
                "--header".into(),
                "Authorization:Bearer s3cret".into(),
            ],
        ),
        (
            "cookie",
            vec![
                weir.url(),
                "1".into(),
                "--header".into(),
                "Cookie:weir_token=s3cret".into(),
            ],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, got) = run_script(&py, "sio_client.py", &args);
        assert!(
            out.status.success(),
            "token by {how}: {got}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The page takes the token from its address once, connects, and drops it from the address.
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-token.png");
    let (out, page) = run_script(
        &py,
        "browser.py",
        &[
            &format!("{}/?token=s3cret", weir.url()),
            "1",
            shot.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(page["state"], "connected", "{page}");
    let location = page["location"].as_str().unwrap();
    assert!(
        !location.contains("s3cret") && !location.contains("token"),
        "the token stayed in the address bar: {location}"
    );
}

#[test]
fn a_page_from_another_origin_is_refused_whatever_host_it_claims() {
    let weir = start(&[]);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let port = weir.port;
    let cases = [
        (format!("Origin:http://127.0.0.1:{port}"), true),
        (format!("Origin:http://localhost:{port}"), true),
        ("Origin:http://127.0.0.1:1".to_string(), false),
        // DNS rebinding: the page's name resolves here, so its Host header would match.
        (format!("Origin:http://rebound.example:{port}"), false),
    ];
    for (origin, admitted) in cases {
        let (out, got) = run_script(
            &py,
            "sio_client.py",
            &[
                &weir.url(),
                "1",
                "--plain",
                "--header",
                &origin,
                "--header",
                &format!("Host:rebound.example:{port}"),
            ],
        );
        assert_eq!(out.status.success(), admitted, "{origin}: {got}");
    }
}

#[test]
fn connections_beyond_the_cap_are_refused_and_counted() {
    let weir = start(&["sinks.dashboard.max_connections=1"]);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    // Two clients at once, each staying for 8 windows (2 s): one gets in, one is refused.
    let spawn = || {
        Command::new(&py)
            .arg(repo().join("tests/python/sio_client.py"))
            .args([&weir.url(), "8", "--plain"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outcomes: Vec<bool> = [first, second]
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.success())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|ok| **ok).count(),
        1,
        "exactly one of two clients fits under max_connections = 1: {outcomes:?}"
    );
    let log = weir.stop();
    assert!(log.contains("1 connections refused"), "{log}");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let weir = start(&[]);
    let listen = format!("sinks.dashboard.listen=127.0.0.1:{}", weir.port);
    let out = run(&[
        "run",
        "pipelines/shopping_gender_dashboard.toml",
        "--set",
        &listen,
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&format!("stage sinks.dashboard (socketio) failed: cannot listen on 127.0.0.1:{}: the address is already in use (set another `listen`", weir.port)), "{stderr}");
}

#[test]
fn bad_client_messages_are_ignored_and_counted() {
    let weir = start(&[]);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let (out, got) = run_script(&py, "bad_client.py", &[&weir.url(), "4"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        got["closed"], true,
        "a message over the size limit closes its connection"
    );
    // The dashboard still serves everyone.
    let (out, _) = run_script(&py, "sio_client.py", &[&weir.url(), "1"]);
    assert!(out.status.success());
    let log = weir.stop();
    assert!(log.contains("4 client messages ignored"), "{log}");
    assert!(
        log.contains("1 connections closed on an oversized or broken message"),
        "{log}"
    );
}

#[test]
fn a_prometheus_token_is_required_as_a_bearer_header() {
    let weir = start_pipeline(
        "pipelines/shopping_gender_prometheus.toml",
        "sinks.metrics.listen",
        &["sinks.metrics.token=s3cret"],
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (status, body) = http_request(weir.port, "/metrics", "");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    assert!(!body.contains("weir_window"), "{body}");
    let (status, _) = http_request(weir.port, "/metrics", "Authorization: Bearer wrong\r\n");
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    let (status, body) = http_request(weir.port, "/metrics", "Authorization: Bearer s3cret\r\n");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(body.contains("weir_window_total{gender="), "{body}");
}
