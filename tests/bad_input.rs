//! Bad input through the real binary: every quirk is reported with file and line, counted, and
//! loses nothing else; nothing panics.

mod common;

use common::*;
use std::path::{Path, PathBuf};

const HEADER: &str =
    "user_id,item_id,cat_id,merchant_id,brand_id,month,day,action,age_range,gender,province";

fn row(gender: &str) -> String {
    format!("328862,323294,833,2882,2661,08,29,0,0,{gender},内蒙古")
}

/// Runs the counting pipeline on `csv`; returns (exit code, stderr, output file text).
fn count(dir: &Path, csv: &Path) -> (Option<i32>, String, String) {
    let out_path = dir.join("out.jsonl");
    let pipeline = dir.join("p.toml");
    std::fs::write(&pipeline, count_pipeline(csv, &out_path)).unwrap();
    let out = run(&["run", pipeline.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    let written = std::fs::read_to_string(&out_path).unwrap_or_default();
    (out.status.code(), stderr, written)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn every_quirk_of_the_real_log_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"\xEF\xBB\xBF");
    bytes.extend_from_slice(format!("{HEADER}\r\n").as_bytes()); // line 1: BOM + header, CRLF
    bytes.extend_from_slice(format!("{}\r\n", row("0")).as_bytes()); // 2
    bytes.extend_from_slice(format!("{}\r\n", row("1")).as_bytes()); // 3
    bytes.extend_from_slice(b"328862,323294,833,2882,2661,08,29,0,0,1\r\n"); // 4: 10 fields
    bytes.extend_from_slice(b"328862,323294,833,2882,2661,08,29,0,0,2,\xCB\xC4\xB4\xA8\r\n"); // 5: GBK
    bytes.extend_from_slice(format!("{HEADER}\r\n").as_bytes()); // 6: header again (concatenated file)
    bytes.extend_from_slice(b"\r\n"); // 7: blank
    bytes.extend_from_slice(format!("{},{}\n", row("1"), "x".repeat(10 << 20)).as_bytes()); // 8: 10 MB line
    bytes.extend_from_slice(format!("{}\n", row("2")).as_bytes()); // 9
    bytes.extend_from_slice(row("1").as_bytes()); // 10: no final newline
    let csv = write(dir.path(), "quirks.csv", &bytes);
    let (code, stderr, output) = count(dir.path(), &csv);
    assert_eq!(code, Some(0), "{stderr}");
    let shown = csv.display().to_string();
    for (line, reason) in [
        (4, "expected 11 fields, found 10"),
        (5, "invalid UTF-8"),
        (8, "line longer than max_line_bytes (1048576 bytes)"),
    ] {
        let expected = format!("{shown}:{line}: bad row skipped: {reason}");
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("iconv -f GBK -t UTF-8"), "{stderr}");
    assert!(stderr.contains("sources.log: 4 out, 3 dropped"), "{stderr}");
    assert!(
        stderr.contains("skipped 1 repeated header lines"),
        "{stderr}"
    );
    assert_eq!(
        sum_json_counts(&output, "gender"),
        totals(&[("0", 1), ("1", 2), ("2", 1)])
    );
}

#[test]
fn missing_file_and_directory_fail_with_the_stage_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr, _) = count(dir.path(), &dir.path().join("absent.csv"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("error: stage sources.log (csv) failed: cannot open"),
        "{stderr}"
    );
    assert!(stderr.contains("absent.csv"), "{stderr}");
    let (code, stderr, _) = count(dir.path(), dir.path());
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("is a directory, not a CSV file"),
        "{stderr}"
    );
}

#[test]
fn empty_file_is_an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(dir.path(), "empty.csv", b"");
    let (code, stderr, output) = count(dir.path(), &csv);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(output.is_empty());
    assert!(stderr.contains("read 0 rows"), "{stderr}");
}

#[test]
fn binary_file_is_all_bad_rows_and_no_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut state: u32 = 12345;
    let bytes: Vec<u8> = (0..(1 << 20))
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    let csv = write(dir.path(), "random.bin", &bytes);
    let (code, stderr, _) = count(dir.path(), &csv);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("bad rows in"), "{stderr}");
    assert!(stderr.contains("only their count is reported"), "{stderr}");
}

#[test]
fn unparsable_timestamps_are_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "ts.csv",
        b"ts,gender\n1700000000000,0\nsoon,1\n1700000000500,1\n",
    );
    let out_path = dir.path().join("out.jsonl");
    let pipeline = write(
        dir.path(),
        "p.toml",
        format!(
            "[sources.s]\ntype = \"csv\"\npath = \"{}\"\ntimestamp_field = \"ts\"\n[transforms.w]\ntype = \"window\"\ninputs = [\"s\"]\nsize = \"1s\"\ngroup_by = [\"gender\"]\n[sinks.f]\ntype = \"file\"\ninputs = [\"w\"]\npath = \"{}\"\n",
            csv.display(),
            out_path.display()
        )
        .as_bytes(),
    );
    let out = run(&["run", pipeline.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(":3: bad row skipped: timestamp_field `ts` is not an integer: \"soon\""),
        "{stderr}"
    );
    let output = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(
        output.lines().next().unwrap(),
        r#"{"window_start":1700000000000,"window_end":1700000001000,"gender":"0","count":1}"#
    );
    assert_eq!(
        sum_json_counts(&output, "gender"),
        totals(&[("0", 1), ("1", 1)])
    );
}

#[test]
fn a_time_far_in_the_future_is_a_bad_row_not_the_end_of_every_window() {
    let dir = tempfile::tempdir().unwrap();
    // Twenty rows, one per 100 ms from 2023-11-14T22:13:20Z, and on line 12 a clock 85 years
    // ahead. Believed, it would close every window and make the nine rows after it late.
    let mut csv = String::from("t,gender\n");
    for n in 0..20i64 {
        let t = if n == 10 {
            4_102_444_800_000 // 2100-01-01
        } else {
            1_700_000_000_000 + n * 100
        };
        csv.push_str(&format!("{t},{}\n", n % 2));
    }
    let csv = write(dir.path(), "times.csv", csv.as_bytes());
    let out = dir.path().join("out.jsonl");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.log]
type = "csv"
path = "{}"
timestamp_field = "t"

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
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
    let run = run(&["run", pipeline.to_str().unwrap()]);
    let (_, stderr) = text(&run);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("times.csv:12: bad row skipped: timestamp_field `t` is 3600s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sources.log: 19 out, 1 dropped"),
        "{stderr}"
    );
    // The recount: 19 rows in two windows, none late.
    let mut counts = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        *counts
            .entry(r["window_start"].as_i64().unwrap())
            .or_insert(0) += r["count"].as_u64().unwrap();
    }
    assert_eq!(
        counts,
        std::collections::BTreeMap::from([(1_700_000_000_000, 10), (1_700_000_001_000, 9)]),
        "{stderr}"
    );
    assert!(!stderr.contains("late"), "{stderr}");
}
