//! Edits applied to a running pipeline (`weir run --watch`), judged by an independent recount of
//! the input: every 1-second window of the sample log must reach the sinks exactly once with its
//! true count, across 100 edits of a sink while a Kafka pipeline counts, and across an edit in
//! the middle of a window of a csv pipeline; an edit with a mistake is reported and the
//! pipeline keeps running as it was; a window's lateness edited while it counts keeps its open
//! windows; a sink added while running gets every window from then on; an edit of a window's
//! size is refused with the reason.

mod common;

use common::kafka::{broker, expected_windows};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Window records in JSON lines files: per (window start, gender), every count written.
fn written(files: &[&Path]) -> BTreeMap<(i64, String), Vec<u64>> {
    let mut windows: BTreeMap<(i64, String), Vec<u64>> = BTreeMap::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            windows
                .entry((
                    r["window_start"].as_i64().unwrap(),
                    r["gender"].as_str().unwrap().to_string(),
                ))
                .or_default()
                .push(r["count"].as_u64().unwrap());
        }
    }
    windows
}

/// Every window before the last (which no later record closes) written once with its true count.
fn assert_exact(
    expected_all: &BTreeMap<(i64, String), u64>,
    written: &BTreeMap<(i64, String), Vec<u64>>,
    what: &str,
) {
    let last = expected_all.keys().map(|(w, _)| *w).max().unwrap();
    let expected: BTreeMap<_, _> = expected_all
        .iter()
        .filter(|((w, _), _)| *w < last)
        .collect();
    let missing = expected
        .keys()
        .filter(|k| !written.contains_key(**k))
        .count();
    let duplicates: usize = written.values().map(|c| c.len() - 1).sum();
    let conflicting = written
        .iter()
        .filter(|(key, counts)| counts.iter().any(|c| expected.get(key) != Some(&c)))
        .filter(|((w, _), _)| *w < last)
        .count();
    eprintln!(
        "{what}: expected {} windows, missing {missing}, conflicting {conflicting}, duplicates {duplicates}",
        expected.len()
    );
    assert_eq!((missing, conflicting, duplicates), (0, 0, 0), "{what}");
}

/// How many edits the run's log says it applied.
fn applied(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("INFO reloaded in")
        .count()
}

/// Rewrites `file` with `text` and waits until the run's log shows edit number `n` applied.
fn edit(file: &Path, text: &str, log: &Path, n: usize) {
    std::fs::write(file, text).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while applied(log) < n {
        assert!(
            Instant::now() < deadline,
            "edit {n} was not applied:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Counting genders per 1-second window into a `file` sink at OUT, from INPUT.
const WINDOW_TO_FILE: &str = r#"
[transforms.per_second]
type = "window"
inputs = ["INPUT"]
size = "1s"
group_by = ["gender"]

[sinks.out]
type = "file"
inputs = ["per_second"]
append = true
path = "OUT"
"#;

const KAFKA_SOURCE: &str = r#"
[kafka]
brokers = "BOOTSTRAP"

[sources.sex]
type = "kafka"
topic = "sex"
fields = ["gender"]
start = "earliest"
"#;

/// `weir run --watch` of `text` written to `dir`/p.toml; returns the run, the file and its log.
fn watching(dir: &Path, text: &str) -> (Background, std::path::PathBuf, std::path::PathBuf) {
    let pipeline = dir.join("p.toml");
    std::fs::write(&pipeline, text).unwrap();
    let mut cmd = weir();
    cmd.arg("run").arg("--watch").arg(&pipeline);
    let log = dir.join("p.log");
    let run = Background::start(cmd, &dir.join("p.out"), &log);
    (run, pipeline, log)
}

#[test]
fn a_sink_edited_100_times_while_a_kafka_pipeline_counts_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (_broker, bootstrap) = broker(dir, "memory://");
    let csv = repo().join("data/user_log_sample.csv");
    let mut load = weir();
    load.args(["run", "tests/fixtures/load_sex.toml"])
        .env("BROKERS", &bootstrap)
        .env("CSV", &csv)
        .env("RATE", "1000");
    let loader = Background::start(load, &dir.join("load.out"), &dir.join("load.log"));

    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let version = |out: &Path| {
        format!("{KAFKA_SOURCE}{WINDOW_TO_FILE}")
            .replace("BOOTSTRAP", &bootstrap)
            .replace("INPUT", "sex")
            .replace("OUT", &out.display().to_string())
    };
    let (counter, pipeline, log) = watching(dir, &version(&a));
    std::thread::sleep(Duration::from_millis(500));
    for n in 1..=100 {
        let out = if n % 2 == 1 { &b } else { &a };
        edit(&pipeline, &version(out), &log, n);
        std::thread::sleep(Duration::from_millis(40));
    }
    let (status, load_log) = loader.wait(Duration::from_secs(60));
    assert!(status.success(), "{load_log}");
    let expected = expected_windows(&csv);
    let last_closed = expected.keys().map(|(w, _)| *w).max().unwrap() - 1000;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !written(&[&a, &b]).keys().any(|(w, _)| *w == last_closed) {
        assert!(Instant::now() < deadline, "the counter did not catch up");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, log_text) = counter.signal("TERM");
    assert!(status.success(), "{log_text}");
    assert_eq!(applied(&log), 100, "{log_text}");
    let windows = written(&[&a, &b]);
    assert!(
        !written(&[&a]).is_empty() && !written(&[&b]).is_empty(),
        "both sink versions wrote windows"
    );
    assert_exact(&expected, &windows, "100 sink edits");
}

const CSV_SOURCE: &str = r#"
[sources.user_log]
type = "csv"
path = "CSV"
rate = 2000
event_rate = 10
start_time = "2015-11-11T00:00:00Z"
"#;

#[test]
fn an_edit_mid_window_keeps_the_window_and_a_bad_edit_keeps_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let csv = repo().join("data/user_log_sample.csv");
    let (a, b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let version = |out: &Path| {
        format!("{CSV_SOURCE}{WINDOW_TO_FILE}")
            .replace("CSV", &csv.display().to_string())
            .replace("INPUT", "user_log")
            .replace("OUT", &out.display().to_string())
    };
    let (run, pipeline, log) = watching(dir, &version(&a));
    // 2,000 rows a second, 10 rows per event second: a window closes every 5 ms, so an edit
    // lands inside one; the whole file takes about 5 s.
    std::thread::sleep(Duration::from_millis(1200));
    edit(&pipeline, &version(&b), &log, 1);

    // A mistake: reported with its place, nothing applied, the run goes on.
    std::fs::write(
        &pipeline,
        version(&b).replace("append = true", "apend = true"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("the edit has errors")
    {
        assert!(Instant::now() < deadline, "the bad edit was not reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("error: sinks.out.apend: unknown key `apend`"),
        "{text}"
    );

    // A transform edit its state cannot survive: refused, with the reason; the window goes on
    // as it was.
    std::fs::write(
        &pipeline,
        version(&b).replace("size = \"1s\"", "size = \"2s\""),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("edit not applied")
    {
        assert!(
            Instant::now() < deadline,
            "the transform edit was not answered"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(
            "edit not applied: transforms.per_second cannot take the edit: its size or slide \
             changed: the open windows cannot carry over; restart to apply"
        ),
        "{text}"
    );

    let (status, text) = run.wait(Duration::from_secs(60));
    assert!(status.success(), "{text}");
    assert_eq!(applied(&log), 1, "{text}");
    assert!(!written(&[&a]).is_empty() && !written(&[&b]).is_empty());
    assert_exact(
        &expected_windows(&csv),
        &written(&[&a, &b]),
        "edit mid-window",
    );
}

/// Every window between the first and the last one in `written` is there once with its true
/// count (a sink that ran for a while in the middle of the run).
fn assert_contiguous(
    expected: &BTreeMap<(i64, String), u64>,
    written: &BTreeMap<(i64, String), Vec<u64>>,
    what: &str,
) {
    let first = written
        .keys()
        .map(|(w, _)| *w)
        .min()
        .expect("windows written");
    let last = written
        .keys()
        .map(|(w, _)| *w)
        .max()
        .expect("windows written");
    let span: BTreeMap<_, _> = expected
        .iter()
        .filter(|((w, _), _)| (first..=last).contains(w))
        .collect();
    let missing = span.keys().filter(|k| !written.contains_key(**k)).count();
    let duplicates: usize = written.values().map(|c| c.len() - 1).sum();
    let conflicting = written
        .iter()
        .filter(|(key, counts)| counts.iter().any(|c| expected.get(key) != Some(c)))
        .count();
    eprintln!(
        "{what}: windows {first}..={last}: expected {}, missing {missing}, conflicting \
         {conflicting}, duplicates {duplicates}",
        span.len()
    );
    assert_eq!((missing, conflicting, duplicates), (0, 0, 0), "{what}");
}

/// While a csv pipeline counts: the window's `allowed_lateness` edited (it keeps its open
/// windows, so each is emitted once, complete), then a sink added (it gets every window from
/// then on), then a new branch added (a filter and a window of their own, into a sink), then the
/// sink and the branch removed again. Judged by a recount of the file.
#[test]
fn an_edited_window_keeps_its_windows_and_added_stages_get_every_later_record() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let csv = repo().join("data/user_log_sample.csv");
    let (a, c, d) = (
        dir.join("a.jsonl"),
        dir.join("c.jsonl"),
        dir.join("d.jsonl"),
    );
    let version = |lateness: &str, sink: bool, branch: bool| {
        let mut text = format!("{CSV_SOURCE}{WINDOW_TO_FILE}")
            .replace("CSV", &csv.display().to_string())
            .replace("INPUT", "user_log")
            .replace("OUT", &a.display().to_string())
            .replace(
                "size = \"1s\"",
                &format!("size = \"1s\"\nallowed_lateness = \"{lateness}\""),
            );
        if sink {
            text += &format!(
                "\n[sinks.more]\ntype = \"file\"\ninputs = [\"per_second\"]\npath = \"{}\"\n",
                c.display()
            );
        }
        if branch {
            text += &format!(
                r#"
[transforms.girls]
type = "filter"
inputs = ["user_log"]
field = "gender"
equals = "0"

[transforms.girls_per_second]
type = "window"
inputs = ["girls"]
size = "1s"
group_by = ["gender"]

[sinks.girls_out]
type = "file"
inputs = ["girls_per_second"]
path = "{}"
"#,
                d.display()
            );
        }
        text
    };
    let (run, pipeline, log) = watching(dir, &version("0s", false, false));
    std::thread::sleep(Duration::from_millis(1200));
    edit(&pipeline, &version("3s", false, false), &log, 1);
    std::thread::sleep(Duration::from_millis(400));
    edit(&pipeline, &version("3s", true, false), &log, 2);
    std::thread::sleep(Duration::from_millis(400));
    edit(&pipeline, &version("3s", true, true), &log, 3);
    std::thread::sleep(Duration::from_millis(800));
    edit(&pipeline, &version("3s", false, false), &log, 4);

    let (status, text) = run.wait(Duration::from_secs(60));
    assert!(status.success(), "{text}");
    let log_text = std::fs::read_to_string(&log).unwrap();
    for applied in [
        "transforms.per_second changed (its state kept)",
        "sinks.more added",
        "transforms.girls added",
        "transforms.girls_per_second added",
        "sinks.girls_out added",
        "sinks.more removed",
        "sinks.girls_out removed",
        "transforms.girls removed",
    ] {
        assert!(log_text.contains(applied), "{applied}:\n{log_text}");
    }
    let expected = expected_windows(&csv);
    assert_exact(&expected, &written(&[&a]), "window edited while counting");
    let in_c = written(&[&c]);
    assert_contiguous(&expected, &in_c, "sink added, then removed");
    let last = expected.keys().map(|(w, _)| *w).max().unwrap();
    assert!(
        in_c.keys().all(|(w, _)| *w < last) && in_c.len() < expected.len(),
        "the added sink ran for a part of the run only"
    );
    // The added branch started and ended inside windows: its first and last windows hold a
    // part of their records; every window between them is complete.
    let girls: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, g), _)| g == "0")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut in_d = written(&[&d]);
    let first = in_d
        .keys()
        .next()
        .expect("the branch wrote windows")
        .clone();
    let final_ = in_d.keys().next_back().unwrap().clone();
    in_d.retain(|k, _| *k != first && *k != final_);
    assert!(
        in_d.len() > 10,
        "the branch ran for a while: {}",
        in_d.len()
    );
    assert_contiguous(&girls, &in_d, "branch added, then removed");
}

const DASHBOARD: &str = r#"
[sources.user_log]
type = "csv"
path = "CSV"
rate = 200
event_rate = 100
loop = true

[transforms.per_second]
type = "window"
inputs = ["user_log"]
size = "1s"
group_by = ["gender"]

[sinks.dashboard]
type = "socketio"
inputs = ["per_second"]
listen = "LISTEN"
title = "TITLE"
"#;

#[test]
fn an_edited_dashboard_is_served_again_on_its_port() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let port = free_port();
    let version = |title: &str| {
        DASHBOARD
            .replace(
                "CSV",
                &repo()
                    .join("data/user_log_sample.csv")
                    .display()
                    .to_string(),
            )
            .replace("LISTEN", &format!("127.0.0.1:{port}"))
            .replace("TITLE", title)
    };
    let (run, pipeline, log) = watching(dir, &version("before"));
    let serving = format!("dashboard at http://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&log).unwrap().contains(&serving) {
        assert!(Instant::now() < deadline, "the dashboard did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in 1..=3 {
        edit(&pipeline, &version(&format!("title {n}")), &log, n);
    }
    let page = http_get(port);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let (status, text) = run.signal("TERM");
    assert!(status.success(), "{text}");
    assert_eq!(text.matches(&serving).count(), 4, "{text}");
    assert!(!text.contains("error"), "{text}");
}

/// The answer to `GET /` on 127.0.0.1:`port`.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// A filter's `where` edited while records flow: records before the edit are judged by the old
/// expression and records after it by the new one, each exactly once — the output is the
/// input's gender-0 rows up to some row and its gender-1 rows from that row on, nothing else.
#[test]
fn an_edited_where_judges_the_records_after_the_edit() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let csv = repo().join("data/user_log_sample.csv");
    let out = dir.join("out.jsonl");
    let version = |wanted: &str| {
        format!(
            "{CSV_SOURCE}
[transforms.chosen]
type = \"filter\"
inputs = [\"user_log\"]
where = \"gender == '{wanted}'\"

[sinks.out]
type = \"file\"
inputs = [\"chosen\"]
path = \"{}\"
",
            out.display()
        )
        .replace("CSV", &csv.display().to_string())
    };
    let (run, pipeline, log) = watching(dir, &version("0"));
    std::thread::sleep(Duration::from_millis(1500));
    edit(&pipeline, &version("1"), &log, 1);
    let (status, text) = run.wait(Duration::from_secs(60));
    assert!(status.success(), "{text}");

    let rows: Vec<(String, String)> = {
        let mut reader = csv::Reader::from_path(&csv).unwrap();
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (format!("{}/{}/{}", &r[0], &r[1], &r[4]), r[9].to_string())
            })
            .collect()
    };
    let written: Vec<(String, String)> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let field = |k: &str| r[k].as_str().unwrap().to_string();
            (
                format!(
                    "{}/{}/{}",
                    field("user_id"),
                    field("item_id"),
                    field("brand_id")
                ),
                field("gender"),
            )
        })
        .collect();
    let zeros = written.iter().take_while(|(_, g)| g == "0").count();
    assert!(
        zeros > 0 && zeros < written.len(),
        "both expressions judged records: {zeros} of {}",
        written.len()
    );
    // The cut lies after the last gender-0 row written and before the next gender-0 row.
    let zero_rows: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1 == "0").collect();
    let after = zero_rows[zeros - 1] + 1;
    let before = zero_rows.get(zeros).copied().unwrap_or(rows.len());
    let fits = (after..=before).any(|cut| {
        let expected: Vec<&(String, String)> = rows[..cut]
            .iter()
            .filter(|(_, g)| g == "0")
            .chain(rows[cut..].iter().filter(|(_, g)| g == "1"))
            .collect();
        expected.len() == written.len() && expected.iter().zip(&written).all(|(a, b)| *a == b)
    });
    assert!(
        fits,
        "the output is not the old filter's rows up to a cut and the new one's after it"
    );
}
