//! The dashboard (`socketio` sink) through the real binary: a real browser (headless Chromium via
//! chromedriver) and real Socket.IO clients (python-socketio 5, and 4 for the Socket.IO 2.x
//! protocol the tutorial's page spoke) must see exactly the windows the pipeline computed, which
//! a `file` sink on the same window writes alongside. Set up the browser and clients with
//! `bash tests/setup.sh` (the README's test command does it).

mod common;

use common::dashboard::*;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Opens the dashboard of `weir` in headless Chromium once it shows `points` points, checks the
/// page and that every plotted point equals a window the file sink wrote; saves a screenshot.
fn assert_the_browser_plots_the_windows(weir: &Weir, points: usize, screenshot: &Path) {
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let (out, page) = run_script(
        &py,
        "browser.py",
        &[
            &format!("{}/", weir.url()),
            &points.to_string(),
            screenshot.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(page["state"], "connected");
    assert_eq!(
        page["errors"].as_array().unwrap().len(),
        0,
        "console errors: {}",
        page["errors"]
    );
    assert_eq!(page["title"], "男女生购物人数实时分析");
    assert_eq!(page["series"], 2, "female and male; unknown (2) hidden");
    let windows = weir.windows();
    let plotted = page["points"].as_array().unwrap();
    assert!(plotted.len() >= points, "{page}");
    for point in plotted {
        let t = point["t"].as_i64().unwrap();
        assert_eq!(Some(&values(point)), windows.get(&t), "window ending {t}");
    }
    assert!(screenshot.exists());
}

#[test]
fn a_real_browser_plots_exactly_the_computed_windows() {
    let weir = start(&[]);
    std::thread::sleep(Duration::from_millis(1500)); // connect late: history must fill the chart
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    assert_the_browser_plots_the_windows(&weir, 8, &shot);
}

#[test]
fn the_shipped_kafka_pipeline_serves_the_moving_chart() {
    // pipelines/shopping_gender.toml: csv → Kafka `sex` → window → `result`, console, dashboard.
    let broker = format!("kafka.embedded.listen=127.0.0.1:{}", free_port());
    let weir = start_pipeline(
        "pipelines/shopping_gender.toml",
        "sinks.dashboard.listen",
        &[&broker],
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-kafka.png");
    assert_the_browser_plots_the_windows(&weir, 4, &shot);
}

#[test]
fn python_socketio_client_gets_history_windows_and_tutorial_events() {
    let weir = start(&[]);
    std::thread::sleep(Duration::from_millis(800));
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let (out, got) = run_script(&py, "sio_client.py", &[&weir.url(), "4"]);
    assert!(
        out.status.success(),
        "{got}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got["connected"]["data"], "Connected");
    assert_eq!(got["config"]["points"], 20);
    let windows = weir.windows();
    let history = got["history"]["points"].as_array().unwrap();
    assert!(
        !history.is_empty(),
        "a late client gets the last points at once"
    );
    for update in got["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["point"])
        .chain(history)
    {
        let t = update["t"].as_i64().unwrap();
        assert_eq!(Some(&values(update)), windows.get(&t), "window ending {t}");
    }
    // test_message carries "<girl>,<boy>" of a window, as the tutorial's Flask app sent it (the
    // client gets them from its `test_connect` on, so compare with the windows it saw).
    let pairs: Vec<String> = got["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            format!(
                "{},{}",
                w["point"]["values"]["0"].as_f64().unwrap_or(0.0),
                w["point"]["values"]["1"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let tutorial = got["tutorial"].as_array().unwrap();
    assert!(tutorial.len() >= 4);
    for m in tutorial {
        assert!(
            pairs.contains(&m["data"].as_str().unwrap().to_string()),
            "{m} is not one of {pairs:?}"
        );
    }
}

#[test]
fn only_clients_that_announce_themselves_get_the_tutorial_event() {
    let weir = start(&[]);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let (out, got) = run_script(&py, "sio_client.py", &[&weir.url(), "3", "--plain"]);
    assert!(
        out.status.success(),
        "{got}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(got["windows"].as_array().unwrap().len() >= 3);
    assert_eq!(
        got["tutorial"].as_array().unwrap().len(),
        0,
        "the dashboard page's own clients are not sent every window twice"
    );
}

#[test]
fn a_client_that_stops_reading_loses_updates_but_slows_nothing() {
    use std::io::{BufRead, BufReader};
    // 50,000 rows at 10,000 rows/s: 1,000 windows a second for 5 s, ~1 MB of updates per
    // client, far more than a stalled client's kernel buffers and queue hold.
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("user_log.csv");
    let generated = weir()
        .args(["gen", "user-log", "--rows", "50000", "--out"])
        .arg(&log_file)
        .status()
        .unwrap();
    assert!(generated.success());
    let path = format!("sources.user_log.path={}", log_file.display());
    let mut weir = start(&["sources.user_log.rate=10000", &path]);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let mut slow = Command::new(&py)
        .arg(repo().join("tests/python/slow_client.py"))
        .args(["127.0.0.1", &weir.port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(slow.stdout.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert_eq!(said.trim(), "connected");
    let (out, got) = run_script(&py, "sio_client.py", &[&weir.url(), "300", "--plain"]);
    assert!(
        out.status.success(),
        "{got}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run ends by itself at the end of the file, the slow client still connected.
    let deadline = Instant::now() + Duration::from_secs(30);
    while weir.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the run did not finish: a slow client held it up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(slow.stdin.take());
    let _ = slow.wait();
    let log = std::fs::read_to_string(&weir.log).unwrap();
    let dropped: u64 = log
        .split(" updates dropped")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop count in the summary: {log}"));
    assert!(dropped > 0, "the slow client's updates were dropped: {log}");
    // Nothing was lost for the pipeline (every row is in a window the file sink wrote) ...
    let windows = weir.windows();
    let rows: f64 = windows.values().flat_map(|w| w.values()).sum();
    assert_eq!(rows, 50000.0, "every row of the log counted");
    // ... nor for the client that kept reading: its windows are consecutive ones.
    let ends: Vec<i64> = windows.keys().copied().collect();
    let seen: Vec<i64> = got["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["point"]["t"].as_i64().unwrap())
        .collect();
    let first = ends.iter().position(|&t| t == seen[0]).unwrap();
    assert_eq!(
        seen,
        ends[first..first + seen.len()],
        "no gaps for the fast client"
    );
}

#[test]
fn a_socketio_2_client_speaks_the_tutorial_protocol() {
    let weir = start(&[]);
    let py = python("WEIR_TEST_PYTHON2", "venv-sio2");
    let (out, got) = run_script(&py, "sio2_client.py", &[&weir.url(), "3"]);
    assert!(
        out.status.success(),
        "{got}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(got["connected"]["data"], "Connected");
    let messages = got["messages"].as_array().unwrap();
    assert!(messages.len() >= 3);
    for m in messages {
        let data = m["data"].as_str().unwrap();
        let (girl, boy) = data.split_once(',').unwrap_or_else(|| panic!("{data}"));
        assert!(
            girl.parse::<f64>().is_ok() && boy.parse::<f64>().is_ok(),
            "{data}"
        );
    }
}

/// GET `path` from 127.0.0.1:`port` with a bare HTTP/1.1 request; returns the body.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

#[test]
fn the_prometheus_swap_exports_the_same_windows() {
    let weir = start_pipeline(
        "pipelines/shopping_gender_prometheus.toml",
        "sinks.metrics.listen",
        &[],
    );
    std::thread::sleep(Duration::from_millis(2000));
    let body = http_get(weir.port, "/metrics");
    let mut last: BTreeMap<String, (f64, i64)> = BTreeMap::new();
    let mut totals: BTreeMap<String, f64> = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, rest) = line.split_once("} ").unwrap();
        let key = series.split('"').nth(1).unwrap().to_string();
        let mut parts = rest.split(' ');
        let value: f64 = parts.next().unwrap().parse().unwrap();
        if series.starts_with("weir_window_value{gender=") {
            last.insert(key, (value, parts.next().unwrap().parse().unwrap()));
        } else if series.starts_with("weir_window_total{gender=") {
            totals.insert(key, value);
        }
    }
    assert!(!last.is_empty(), "{body}");
    let newest = last.values().map(|(_, t)| *t).max().unwrap();
    // The file sink gets the same batches; wait until it has caught up with the scrape.
    let deadline = Instant::now() + Duration::from_secs(5);
    let windows = loop {
        let windows = weir.windows();
        if windows.contains_key(&newest) || Instant::now() > deadline {
            break windows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for (key, (value, end)) in &last {
        assert_eq!(
            windows.get(end).and_then(|w| w.get(key)),
            Some(value),
            "{key} at {end}"
        );
    }
    for (key, total) in &totals {
        let expected: f64 = windows
            .range(..=newest)
            .filter_map(|(_, w)| w.get(key))
            .sum();
        assert_eq!(*total, expected, "total for {key}");
    }
}

#[test]
fn the_page_reconnects_by_itself_when_the_server_restarts() {
    use std::io::{BufRead, BufReader};
    let first = start(&[]);
    let port = first.port;
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let mut browser = Command::new(&py)
        .arg(repo().join("tests/python/browser_reconnect.py"))
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "up");
    drop(first); // the server goes away
    assert_eq!(lines.next().unwrap().unwrap(), "down");
    let listen = format!("sinks.dashboard.listen=127.0.0.1:{port}");
    let out = tempfile::tempdir().unwrap();
    let _second = weir()
        .args([
            "run",
            "pipelines/shopping_gender_dashboard.toml",
            "--set",
            "sources.user_log.rate=40",
            "--set",
            &listen,
        ])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(|child| Weir {
            child,
            port,
            out: out.path().join("none"),
            log: out.path().join("none.log"),
            dir: out,
        })
        .unwrap();
    let result: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(result["reconnected"], true, "{result}");
    assert!(browser.wait().unwrap().success());
}

/// Window records of a file sink: window_end -> (the `key` field -> count).
fn windows_in(path: &Path, key: &str) -> BTreeMap<i64, BTreeMap<String, f64>> {
    let mut windows: BTreeMap<i64, BTreeMap<String, f64>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        windows
            .entry(r["window_end"].as_i64().unwrap())
            .or_default()
            .insert(
                r[key].as_str().unwrap().to_string(),
                r["count"].as_f64().unwrap(),
            );
    }
    windows
}

/// A pipeline that is not the gender count (pipelines/purchases_by_province.toml: purchases per
/// province, actions per 10 s) gets its panels from the file: a real browser must show a bar per
/// province and a table row per province with the latest window's counts and the totals so far,
/// the latest window's total as a number, and a line per labelled action — each equal to what a
/// file sink on the same windows wrote.
#[test]
fn a_page_of_panels_from_the_pipeline_file_shows_exactly_the_computed_windows() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let provinces = dir.path().join("provinces.jsonl");
    let actions = dir.path().join("actions.jsonl");
    let log = dir.path().join("weir.log");
    let listen = format!("sinks.dashboard.listen=127.0.0.1:{port}");
    let copy = |id: &str, input: &str, path: &Path| {
        format!(
            "sinks.{id}={{ type = \"file\", inputs = [\"{input}\"], path = \"{}\" }}",
            path.display()
        )
    };
    let child = weir()
        .args([
            "run",
            "pipelines/purchases_by_province.toml",
            "--set",
            "sources.user_log.rate=400",
            "--set",
            &listen,
            "--set",
            &copy("provinces", "per_province", &provinces),
            "--set",
            &copy("actions", "per_action", &actions),
        ])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let weir = Weir {
        child,
        port,
        out: provinces.clone(),
        log: log.clone(),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(&format!(" at http://127.0.0.1:{port}/"))
    {
        assert!(Instant::now() < deadline, "the dashboard did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-panels.png");
    let (out, page) = run_script(
        &py,
        "panels.py",
        &[&format!("{}/", weir.url()), "3", shot.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        page["errors"].as_array().unwrap().len(),
        0,
        "{}",
        page["errors"]
    );
    assert_eq!(page["title"], "Purchases by province");
    let panels = page["panels"].as_array().unwrap();
    let dom = page["dom"].as_array().unwrap();
    let types: Vec<&str> = panels.iter().map(|p| p["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["bar", "table", "number", "line"]);
    assert_eq!(dom[0]["heading"], "Purchases per province, last 10 s");
    let by_province = windows_in(&provinces, "province");
    let by_action = windows_in(&actions, "action");
    let format = |v: f64| format!("{v}");

    // Bar, table and number: the latest window each holds is one the pipeline computed.
    for (i, panel) in panels.iter().enumerate().take(3) {
        let points = panel["points"].as_array().unwrap();
        for point in points {
            let t = point["t"].as_i64().unwrap();
            assert_eq!(
                Some(&values(point)),
                by_province.get(&t),
                "panel {i}, window ending {t}"
            );
        }
        let latest = values(points.last().unwrap());
        match i {
            0 => {
                let shown: BTreeMap<String, f64> = dom[0]["bars"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| {
                        (
                            b[0].as_str().unwrap().to_string(),
                            b[1].as_str().unwrap().parse().unwrap(),
                        )
                    })
                    .filter(|(_, v)| *v != 0.0)
                    .collect();
                assert_eq!(shown, latest, "a bar per province of the latest window");
            }
            1 => {
                let end = points.last().unwrap()["t"].as_i64().unwrap();
                let first = points.first().unwrap()["t"].as_i64().unwrap();
                // Totals count every window the page was sent: those before its history too.
                let mut totals: BTreeMap<String, f64> = BTreeMap::new();
                for (_, window) in by_province.range(..=end) {
                    for (k, v) in window {
                        *totals.entry(k.clone()).or_default() += v;
                    }
                }
                assert!(by_province.range(..first).count() + points.len() >= points.len());
                for row in dom[1]["rows"].as_array().unwrap() {
                    let key = row[0].as_str().unwrap();
                    assert_eq!(
                        row[1].as_str().unwrap(),
                        format(latest.get(key).copied().unwrap_or(0.0)),
                        "{key}"
                    );
                    assert_eq!(
                        row[2].as_str().unwrap(),
                        format(totals[key]),
                        "{key}: total so far"
                    );
                }
                assert!(!dom[1]["rows"].as_array().unwrap().is_empty());
            }
            _ => {
                let sum: f64 = latest.values().sum();
                assert_eq!(dom[2]["number"].as_str().unwrap(), format(sum));
            }
        }
    }
    // Line: four labelled actions, every point a computed window.
    assert_eq!(
        dom[3]["series"], 4,
        "click, add to cart, purchase, favourite"
    );
    for point in panels[3]["points"].as_array().unwrap() {
        let t = point["t"].as_i64().unwrap();
        assert_eq!(
            Some(&values(point)),
            by_action.get(&t),
            "actions, window ending {t}"
        );
    }
    assert!(shot.exists());
    weir.stop();
}

/// `static_dir` serves a page of one's own instead of the embedded one: a tutorial-style page
/// (tests/fixtures/own_page) with its chart library in a file beside it gets `connected` and a
/// `test_message` per window, each equal to a window the pipeline computed; nothing outside the
/// directory is served.
#[test]
fn a_page_of_ones_own_is_served_from_static_dir_and_gets_the_tutorials_events() {
    let site = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("tests/fixtures/own_page/index.html"),
        site.path().join("index.html"),
    )
    .unwrap();
    std::fs::create_dir(site.path().join("js")).unwrap();
    for library in ["socket.io.min.js", "uPlot.iife.min.js", "uPlot.min.css"] {
        std::fs::copy(
            repo().join("web/vendor").join(library),
            site.path().join("js").join(library),
        )
        .unwrap();
    }
    let dir = format!("sinks.dashboard.static_dir={}", site.path().display());
    let weir = start(&[&dir]);
    let (status, _) = http_request(weir.port, "/../Cargo.toml", "");
    assert!(status.contains("404"), "{status}");
    let (status, _) = http_request(weir.port, "/app.js", "");
    assert!(
        status.contains("404"),
        "the embedded page is not served: {status}"
    );
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-own-page.png");
    let (out, page) = run_script(
        &py,
        "own_page.py",
        &[&format!("{}/", weir.url()), "4", shot.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        page["errors"].as_array().unwrap().len(),
        0,
        "{}",
        page["errors"]
    );
    assert_eq!(page["connected"], "yes");
    assert_eq!(
        page["chart"], true,
        "the chart library loaded from the page's directory"
    );
    let windows = weir.windows();
    let pairs: Vec<String> = windows
        .values()
        .map(|w| {
            let value = |k: &str| w.get(k).copied().unwrap_or(0.0);
            format!("{},{}", value("0"), value("1"))
        })
        .collect();
    for message in page["received"].as_array().unwrap() {
        let message = message.as_str().unwrap();
        assert!(
            pairs.iter().any(|p| p == message),
            "{message} is not a computed window"
        );
    }
    weir.stop();
}
