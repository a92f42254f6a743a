//! Running pipelines through the real `weir` binary: totals over all windows equal an independent
//! count of the input; fan-in and fan-out; overrides; Ctrl-C / SIGTERM drains; failures exit 1.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn shipped_local_pipeline_flat_out_matches_the_file() {
    let out = run(&[
        "run",
        "pipelines/shopping_gender_local.toml",
        "--set",
        "sources.user_log.rate=\"max\"",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let expected = count_genders(&repo().join("data/user_log_sample.csv"));
    assert_eq!(expected, totals(&[("0", 3306), ("1", 3319), ("2", 3374)]));
    assert_eq!(sum_seed(&stdout), expected);
    // 10 rows per event-second: every window holds exactly 10 rows (the last holds the rest).
    let windows: Vec<u64> = stdout.lines().map(|l| sum_seed(l).values().sum()).collect();
    assert_eq!(windows.len(), 1000);
    assert!(windows[..999].iter().all(|&n| n == 10), "{windows:?}");
    assert_eq!(windows[999], 9);
}

#[test]
fn headerless_log_through_an_env_variable() {
    let out = weir()
        .args([
            "run",
            "pipelines/shopping_gender_local.toml",
            "--set",
            "sources.user_log.rate=\"max\"",
        ])
        .env("WEIR_USER_LOG", "tests/fixtures/small_user_log.csv")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        sum_seed(&stdout),
        totals(&[("0", 3361), ("1", 3299), ("2", 3340)])
    );
}

/// Writes `rows` user_log rows with a header, genders drawn from a fixed-seed generator, and
/// returns the per-gender totals it wrote.
fn generate(path: &Path, rows: u64) -> BTreeMap<String, u64> {
    let mut file = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(file, "{USER_LOG_HEADER}").unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let provinces = ["北京市", "上海市", "四川", "广东", "内蒙古"];
    let mut totals = BTreeMap::new();
    for i in 0..rows {
        let r = next();
        let gender = r % 3;
        *totals.entry(gender.to_string()).or_insert(0) += 1;
        let province = provinces[(r >> 8) as usize % provinces.len()];
        writeln!(
            file,
            "{},{},{},{},{},11,11,{},{},{gender},{province}",
            328862 + i / 40,
            r % 1_000_000,
            r % 1700,
            r % 5000,
            r % 8500,
            (r >> 4) % 4,
            (r >> 6) % 8
        )
        .unwrap();
    }
    file.flush().unwrap();
    totals
}

#[test]
fn a_million_generated_rows_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("big.csv");
    let written = generate(&csv, 1_000_000);
    assert_eq!(
        count_genders(&csv),
        written,
        "the independent counter agrees with the generator"
    );
    let pipeline = dir.path().join("count.toml");
    let out_path = dir.path().join("counts.jsonl");
    std::fs::write(&pipeline, count_pipeline(&csv, &out_path)).unwrap();
    let out = run(&["run", pipeline.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let output = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(sum_json_counts(&output, "gender"), written);
    let windows: std::collections::BTreeSet<u64> = output
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["window_start"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(windows.len(), 100_000, "10 rows per event-second");
    assert_eq!(*windows.first().unwrap(), 1_700_000_000_000);
}

#[test]
fn fan_in_and_fan_out() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.sample]
type = "csv"
path = "data/user_log_sample.csv"
[sources.small]
type = "csv"
path = "tests/fixtures/small_user_log.csv"
{columns}
[transforms.known]
type = "filter"
inputs = ["sample", "small"]
field = "gender"
in = [0, 1]
[transforms.w]
type = "window"
inputs = ["known"]
size = "1s"
group_by = ["gender"]
[sinks.a]
type = "file"
inputs = ["w"]
path = "{}"
[sinks.b]
type = "file"
inputs = ["w"]
path = "{}"
"#,
            a.display(),
            b.display(),
            columns = user_log_columns_option(),
        ),
    )
    .unwrap();
    let out = run(&["run", pipeline.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let want = totals(&[("0", 3306 + 3361), ("1", 3319 + 3299)]);
    assert_eq!(
        sum_json_counts(&std::fs::read_to_string(&a).unwrap(), "gender"),
        want
    );
    assert_eq!(
        sum_json_counts(&std::fs::read_to_string(&b).unwrap(), "gender"),
        want
    );
}

#[test]
fn set_adds_a_whole_sink_and_select_renames() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.jsonl");
    let path_arg = format!("sinks.f.path={}", extra.display());
    let out = run(&[
        "run",
        "pipelines/shopping_gender_local.toml",
        "--set",
        "sources.user_log.rate=\"max\"",
        "--set",
        "transforms.renamed.type=select",
        "--set",
        "transforms.renamed.inputs=[\"per_second\"]",
        "--set",
        "transforms.renamed.rename={ gender = \"sex\" }",
        "--set",
        "sinks.f.type=file",
        "--set",
        "sinks.f.inputs=[\"renamed\"]",
        "--set",
        &path_arg,
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let expected = totals(&[("0", 3306), ("1", 3319), ("2", 3374)]);
    assert_eq!(sum_seed(&stdout), expected);
    assert_eq!(
        sum_json_counts(&std::fs::read_to_string(&extra).unwrap(), "sex"),
        expected
    );
}

#[test]
fn sigterm_stops_the_source_and_drains_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let path_arg = format!("sinks.out.path={}", out_path.display());
    let child = weir()
        .args([
            "run",
            "pipelines/shopping_gender_local.toml",
            "--set",
            "sources.user_log.rate=20",
            "--set",
            "sinks.out.type=file",
            "--set",
            &path_arg,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drained promptly"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    // Everything read was counted and flushed, including the window that was still open.
    let read: u64 = stderr
        .lines()
        .find_map(|l| l.split("sources.user_log: read ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no read count in {stderr}"));
    assert!(
        (20..=60).contains(&read),
        "read {read} rows in ~1.5 s at 20 rows/s"
    );
    let counted: u64 = sum_seed(&std::fs::read_to_string(&out_path).unwrap())
        .values()
        .sum();
    assert_eq!(counted, read);
}

#[test]
fn a_stage_that_cannot_start_fails_the_run_by_name() {
    let out = run(&[
        "run",
        "pipelines/shopping_gender_local.toml",
        "--set",
        "sinks.out.type=file",
        "--set",
        "sinks.out.path=no/such/dir/out.txt",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(
            "error: stage sinks.out (file) failed: cannot open no/such/dir/out.txt for writing"
        ),
        "{stderr}"
    );
}

#[test]
fn a_stage_failing_mid_run_stops_an_endless_source() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let started = Instant::now();
    let out = run(&[
        "run",
        "pipelines/shopping_gender_local.toml",
        "--set",
        "sources.user_log.rate=\"max\"",
        "--set",
        "sources.user_log.loop=true",
        "--set",
        "sinks.out.type=file",
        "--set",
        "sinks.out.path=/dev/full",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: stage sinks.out (file) failed: cannot write /dev/full"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A CSV source parsing on several threads gives exactly what one thread gives: the same windows
/// (out-of-order event times, late rows dropped the same way), the same bad rows at the same
/// lines, across a file of many pieces with a quoted field (from which on it reads on one thread).
#[test]
fn parsing_on_several_threads_gives_the_output_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut state = seed;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut file = BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(file, "ts,gender,note").unwrap();
    let rows = 60_000u64;
    for i in 0..rows {
        // Up to 3 s out of order around 10 rows per second.
        let ts = 1_700_000_000_000 + i * 100 + next(6_000) - 3_000;
        let gender = next(3).to_string();
        match next(1000) {
            0 => writeln!(file, "{ts},{gender}").unwrap(), // one field short
            1 if i > rows * 7 / 10 => {
                writeln!(file, "{ts},{gender},\"a, \"\"quoted\"\"\nnote\"").unwrap()
            }
            _ => writeln!(file, "{ts},{gender},row {i} of the log").unwrap(),
        }
    }
    drop(file);

    let run_with = |parallelism: usize| {
        let out = dir.path().join(format!("out-{parallelism}.jsonl"));
        let pipeline = dir.path().join(format!("p{parallelism}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                r#"
[sources.log]
type = "csv"
path = "{}"
timestamp_field = "ts"
parallelism = {parallelism}
progress = false

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
allowed_lateness = "2s"
group_by = ["gender"]

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "{}"
"#,
                csv.display(),
                out.display()
            ),
        )
        .unwrap();
        let output = run(&["run", pipeline.to_str().unwrap()]);
        let (_, stderr) = text(&output);
        assert!(output.status.success(), "seed {seed}: {stderr}");
        let bad_lines: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains("bad row skipped"))
            .map(|l| l.split("events.csv:").nth(1).unwrap_or(l).to_string())
            .collect();
        (std::fs::read_to_string(&out).unwrap(), bad_lines, stderr)
    };
    let (one, one_bad, one_log) = run_with(1);
    let (four, four_bad, _) = run_with(4);
    assert!(
        one_log.contains("dropping late rows"),
        "the input should have late rows: {one_log}"
    );
    assert!(!one_bad.is_empty(), "the input should have bad rows");
    assert_eq!(four_bad, one_bad, "seed {seed}");
    assert!(one.lines().count() > 1000, "{}", one.lines().count());
    assert!(four == one, "seed {seed}: the outputs differ");
}

/// A keyed window run as several instances gives the windows one instance gives (groups within a
/// window aside): sliding windows over out-of-order events, late rows dropped alike, many keys.
#[test]
fn a_window_split_into_instances_gives_the_windows_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("events.csv");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut state = seed;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut file = BufWriter::new(std::fs::File::create(&csv).unwrap());
    writeln!(file, "ts,gender,merchant,amount").unwrap();
    for i in 0..30_000u64 {
        // Up to 4 s out of order around 20 rows per second; some rows without an amount.
        let ts = 1_700_000_000_000 + i * 50 + next(8_000) - 4_000;
        let amount = if next(20) == 0 {
            String::new()
        } else {
            next(1000).to_string()
        };
        writeln!(file, "{ts},{},{},{amount}", next(3), next(50)).unwrap();
    }
    drop(file);

    let run_with = |instances: usize| {
        let out = dir.path().join(format!("out-{instances}.jsonl"));
        let pipeline = dir.path().join(format!("w{instances}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                r#"
[sources.log]
type = "csv"
path = "{}"
timestamp_field = "ts"
batch_size = {}

[transforms.sliding]
type = "window"
inputs = ["log"]
size = "2s"
slide = "500ms"
allowed_lateness = "1s"
group_by = ["gender", "merchant"]
aggregates = [{{ op = "count" }}, {{ op = "sum", field = "amount" }}, {{ op = "max", field = "amount" }}]
parallelism = {instances}

[sinks.out]
type = "file"
inputs = ["sliding"]
path = "{}"
"#,
                csv.display(),
                1 + seed % 3000,
                out.display()
            ),
        )
        .unwrap();
        let output = run(&["-v", "run", pipeline.to_str().unwrap()]);
        let (_, stderr) = text(&output);
        assert!(output.status.success(), "seed {seed}: {stderr}");
        let dropped: Vec<String> = stderr
            .lines()
            .filter(|l| l.contains("transforms.sliding:") && l.contains("dropped"))
            .map(|l| {
                l.split("transforms.sliding")
                    .nth(1)
                    .unwrap_or(l)
                    .to_string()
            })
            .collect();
        // Windows in order, each window's rows sorted (their order may differ).
        let text = std::fs::read_to_string(&out).unwrap();
        let mut windows: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let window = format!("{}-{}", record["window_start"], record["window_end"]);
            match windows.last_mut() {
                Some((w, rows)) if *w == window => rows.push(line.to_string()),
                _ => windows.push((window, vec![line.to_string()])),
            }
        }
        for (_, rows) in &mut windows {
            rows.sort();
        }
        (windows, dropped, stderr)
    };
    let (one, one_dropped, one_log) = run_with(1);
    assert!(one.len() > 1000, "{} windows", one.len());
    assert_eq!(
        one_dropped.len(),
        1,
        "the run summary counts late rows: {one_log}"
    );
    assert!(
        one_log.contains("dropping late rows"),
        "the input should have late rows"
    );
    for instances in [3, 4] {
        let (split, dropped, _) = run_with(instances);
        assert_eq!(dropped, one_dropped, "seed {seed}, {instances} instances");
        assert_eq!(split.len(), one.len(), "seed {seed}, {instances} instances");
        assert!(
            split == one,
            "seed {seed}, {instances} instances: the windows differ"
        );
    }
}

/// `--log-format json`: every line the run logs is one JSON object with its level and message,
/// for a log collector.
#[test]
fn the_log_as_json_is_one_object_per_line() {
    let out = common::run(&[
        "--log-format",
        "json",
        "run",
        "pipelines/shopping_gender_local.toml",
        "--set",
        r#"sources.user_log.rate="max""#,
    ]);
    let (_, stderr) = common::text(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines.len() >= 3, "{stderr}");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(entry["level"].is_string(), "{line}");
        assert!(entry["fields"]["message"].is_string(), "{line}");
    }
    assert!(
        stderr.contains("\"message\":\"transforms.per_second: 9999 in, 2957 out\""),
        "{stderr}"
    );
}
