//! Watching a running pipeline through its control API (`weir run --api`): `/health`,
//! `/metrics` (which must equal the run summary's counts and an independent recount, with the
//! Kafka source's partitions read to their end), `weir top` and `weir tap` against a Kafka
//! pipeline while it counts, the token, and the graph page in a real browser.

mod common;

use common::kafka::{broker, expected_windows};
use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const TOKEN: &str = "s3cret-api-token";

/// A GET on the API at `port`, with the token if given: status and body.
fn http(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let (status_line, body) = common::dashboard::http_request(port, path, &auth);
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body)
}

/// `name{stage="..."}` values in Prometheus text, per stage.
fn metric(text: &str, name: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| {
            let stage = l
                .split("stage=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            let value: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
            (stage.to_string(), value as u64)
        })
        .collect()
}

/// The run summary's `PATH: N in, M out` lines: (in, out) per stage path.
fn summary(log: &str) -> BTreeMap<String, (Option<u64>, Option<u64>)> {
    let mut stages = BTreeMap::new();
    for line in log.lines() {
        let Some((path, flow)) = line
            .split("INFO ")
            .nth(1)
            .and_then(|rest| rest.split_once(": "))
        else {
            continue;
        };
        if !(path.starts_with("sources.")
            || path.starts_with("transforms.")
            || path.starts_with("sinks."))
        {
            continue;
        }
        let number = |what: &str| {
            flow.split(", ")
                .find_map(|part| part.strip_suffix(what))
                .and_then(|n| n.trim().parse().ok())
        };
        stages.insert(path.to_string(), (number(" in"), number(" out")));
    }
    stages
}

#[test]
fn top_tap_and_metrics_of_a_running_kafka_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_broker, bootstrap) = broker(dir, "memory://");
    let csv = repo().join("data/user_log_sample.csv");
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count() as u64 - 1;
    let mut load = weir();
    load.args(["run", "tests/fixtures/load_sex.toml"])
        .env("BROKERS", &bootstrap)
        .env("CSV", &csv)
        .env("RATE", "1500");
    let loader = Background::start(load, &dir.join("load.out"), &dir.join("load.log"));

    let out = dir.join("windows.jsonl");
    let pipeline = dir.join("count.toml");
    std::fs::write(&pipeline, common::kafka::count_pipeline(&bootstrap, &out)).unwrap();
    let port = free_port();
    let api = format!("127.0.0.1:{port}");
    let mut cmd = weir();
    cmd.args(["run", &format!("--api={api}")])
        .arg(&pipeline)
        .env("WEIR_API_TOKEN", TOKEN);
    let counter = Background::start(cmd, &dir.join("count.out"), &dir.join("count.log"));
    common::kafka::wait_for_port(port);

    // The token is required.
    assert_eq!(http(port, "/health", None).0, 401);
    let (status, health) = http(port, "/health", Some(TOKEN));
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    // While records flow: a tap on the source and one on the window.
    let tapped = weir()
        .args(["tap", "sex", "--limit", "5", "--api", &api])
        .env("WEIR_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&tapped);
    assert!(tapped.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for line in &lines {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            ["0", "1", "2"].contains(&record["gender"].as_str().unwrap()),
            "{line}"
        );
    }
    let tapped = weir()
        .args([
            "tap",
            "per_second",
            "--limit",
            "3",
            "--sample",
            "2",
            "--api",
            &api,
        ])
        .env("WEIR_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&tapped);
    assert!(tapped.status.success(), "{stderr}");
    let expected = expected_windows(&csv);
    for line in stdout.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            r["window_start"].as_i64().unwrap(),
            r["gender"].as_str().unwrap().to_string(),
        );
        assert_eq!(r["count"].as_u64(), expected.get(&key).copied(), "{line}");
    }
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    // As a table: a header of the window's fields, then rows whose counts equal the recount.
    let tapped = weir()
        .args([
            "tap",
            "per_second",
            "--limit",
            "3",
            "--format",
            "table",
            "--api",
            &api,
        ])
        .env("WEIR_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&tapped);
    assert!(tapped.status.success(), "{stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["WINDOW_START", "WINDOW_END", "GENDER", "COUNT"],
        "{stdout}"
    );
    let table: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(table.len(), 3, "{stdout}");
    for row in table {
        let key: (i64, String) = (row[0].parse().unwrap(), row[2].to_string());
        let count: u64 = row[3].parse().unwrap();
        assert_eq!(Some(count), expected.get(&key).copied(), "{stdout}");
    }
    // A sink sends nothing on; an unknown stage is named.
    let refused = weir()
        .args(["tap", "out", "nope", "--api", &api])
        .env("WEIR_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let (_, stderr) = text(&refused);
    assert!(!refused.status.success());
    assert!(stderr.contains("`out` is a sink"), "{stderr}");
    assert!(stderr.contains("no stage `nope`"), "{stderr}");

    // `weir top`, not on a terminal: plain tables, one per refresh.
    let top = weir()
        .args(["top", "--count", "2", "--api", &api])
        .env("WEIR_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&top);
    assert!(top.status.success(), "{stderr}");
    assert_eq!(stdout.matches("STAGE").count(), 2, "{stdout}");
    for path in ["sources.sex", "transforms.per_second", "sinks.out"] {
        assert_eq!(stdout.matches(path).count(), 2, "{stdout}");
    }
    // The second table has rates: the window receives records.
    let second = stdout.split("STAGE").nth(2).unwrap();
    let window_line = second
        .lines()
        .find(|l| l.starts_with("transforms.per_second"))
        .unwrap();
    let rate_in: u64 = window_line
        .split_whitespace()
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate_in > 0, "{stdout}");

    // Once everything is counted, the metrics hold still; they must equal the run summary.
    let (status, load_log) = loader.wait(Duration::from_secs(60));
    assert!(status.success(), "{load_log}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let scraped = loop {
        let (_, first) = http(port, "/metrics", Some(TOKEN));
        // The source's client reports its partitions every second: nothing left to read.
        let lags: Vec<&str> = first
            .lines()
            .filter(|l| {
                l.starts_with(
                    "weir_kafka_partition_lag_records{stage=\"sources.sex\",topic=\"sex\"",
                )
            })
            .collect();
        let read_all = !lags.is_empty() && lags.iter().all(|l| l.ends_with(" 0"));
        if read_all
            && metric(&first, "weir_stage_records_out_total").get("sources.sex") == Some(&rows)
        {
            std::thread::sleep(Duration::from_millis(500));
            let (_, again) = http(port, "/metrics", Some(TOKEN));
            if metric(&again, "weir_stage_records_in_total")
                == metric(&first, "weir_stage_records_in_total")
            {
                break again;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the counter did not catch up:\n{first}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (status, log) = counter.signal("TERM");
    assert!(status.success(), "{log}");
    let report = summary(&log);
    let records_in = metric(&scraped, "weir_stage_records_in_total");
    let records_out = metric(&scraped, "weir_stage_records_out_total");
    for (path, (reported_in, reported_out)) in &report {
        assert_eq!(
            reported_in.as_ref(),
            records_in.get(path),
            "{path} in:\n{scraped}\n{log}"
        );
        assert_eq!(
            reported_out.as_ref(),
            records_out.get(path),
            "{path} out:\n{scraped}\n{log}"
        );
    }
    assert_eq!(report.len(), 3, "{log}");
    // And an independent recount: every row came out of the source; every window line written
    // went into the sink.
    assert_eq!(records_out["sources.sex"], rows);
    assert_eq!(records_in["transforms.per_second"], rows);
    let written = std::fs::read_to_string(&out).unwrap().lines().count() as u64;
    assert_eq!(records_in["sinks.out"], written);
    // Bytes: the source read every message's value (the topic has no keys), recounted by a
    // consumer of our own; the sink wrote the file's length.
    let topic_bytes: u64 = common::kafka::read_topic(&bootstrap, "sex")
        .iter()
        .map(|(_, value)| value.len() as u64)
        .sum();
    assert_eq!(
        metric(&scraped, "weir_stage_bytes_read_total").get("sources.sex"),
        Some(&topic_bytes),
        "{scraped}"
    );
    assert_eq!(
        metric(&scraped, "weir_stage_bytes_written_total").get("sinks.out"),
        Some(&std::fs::metadata(&out).unwrap().len()),
        "{scraped}"
    );
    assert!(
        scraped.contains("weir_queue_messages{from=\"per_second\",to=\"out\"}"),
        "{scraped}"
    );
    assert!(
        scraped.contains("weir_stage_watermark_seconds{stage=\"transforms.per_second\""),
        "{scraped}"
    );
}

/// The control API's graph page in headless Chromium, behind the token: it asks for the token,
/// then draws every stage and edge with non-zero rates. Saves a screenshot (docs/graph.png is
/// one).
#[test]
fn the_graph_page_shows_live_rates_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let csv = repo().join("data/user_log_sample.csv");
    let port = free_port();
    let api = format!("127.0.0.1:{port}");
    let mut cmd = weir();
    cmd.args([
        "run",
        &format!("--api={api}"),
        "pipelines/shopping_gender_local.toml",
    ])
    .args([
        "--set",
        "sources.user_log.rate=1500",
        "--set",
        "sources.user_log.loop=true",
    ])
    .args([
        "--set",
        "sinks.out.type=\"blackhole\"",
        "--unset",
        "sinks.out.format",
    ])
    .env("WEIR_USER_LOG", &csv)
    .env("WEIR_API_TOKEN", TOKEN)
    .current_dir(repo());
    let run = Background::start(cmd, &dir.join("run.out"), &dir.join("run.log"));
    common::kafka::wait_for_port(port);
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("graph.png");
    let (out, page) = common::dashboard::run_script(
        &py,
        "graph_page.py",
        &[&format!("http://{api}/"), TOKEN, shot.to_str().unwrap()],
    );
    let (status, log) = run.signal("TERM");
    assert!(status.success(), "{log}");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(page["state"], "live", "{page}");
    assert_eq!(page["svg_stages"], 3, "{page}");
    assert_eq!(page["edges"], 2, "{page}");
    let stages = page["stages"].as_array().unwrap();
    let rate = |path: &str, key: &str| {
        stages
            .iter()
            .find(|s| s["path"] == path)
            .and_then(|s| s[key].as_f64())
            .unwrap_or(0.0)
    };
    assert!(rate("sources.user_log", "rateOut") > 0.0, "{page}");
    assert!(rate("transforms.per_second", "rateIn") > 0.0, "{page}");
    assert!(rate("transforms.per_second", "rateOut") > 0.0, "{page}");
    assert!(rate("sinks.out", "rateIn") > 0.0, "{page}");
    // The only console errors allowed: the first request, refused for want of the token.
    for error in page["errors"].as_array().unwrap() {
        assert!(error["message"].as_str().unwrap().contains("401"), "{page}");
    }
    assert!(
        !page["location"].as_str().unwrap().contains(TOKEN),
        "the token stays out of the address"
    );
    assert!(shot.exists());
}
