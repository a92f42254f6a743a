//! Helpers shared by the integration tests: run the real `weir` binary, write pipeline files,
//! and count genders independently of weir.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (tests run with the runner package as working directory).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runner/ has a parent")
        .to_path_buf()
}

/// A `weir` command running in the repository root.
pub fn weir() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.current_dir(repo()).env_remove("RUST_LOG");
    cmd
}

/// Runs `weir` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    weir().args(args).output().expect("weir starts")
}

/// Stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Per-gender totals of a CSV file, counted by splitting lines (the gender is field 10 of 11);
/// a header line and lines with another number of fields are skipped.
pub fn count_genders(path: &Path) -> BTreeMap<String, u64> {
    let bytes = std::fs::read(path).expect("csv readable");
    let mut totals = BTreeMap::new();
    for line in bytes.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let fields: Vec<&[u8]> = line.split(|&b| b == b',').collect();
        if fields.len() != 11 || fields[9] == b"gender" || std::str::from_utf8(line).is_err() {
            continue;
        }
        *totals
            .entry(String::from_utf8_lossy(fields[9]).into_owned())
            .or_insert(0) += 1;
    }
    totals
}

/// Sums `[{"key":n},...]` arrays, one per line.
pub fn sum_seed(output: &str) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let items: Vec<BTreeMap<String, u64>> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        for item in items {
            for (k, v) in item {
                *totals.entry(k).or_insert(0) += v;
            }
        }
    }
    totals
}

/// Sums the `count` of JSON window records per value of `key`.
pub fn sum_json_counts(output: &str, key: &str) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in output.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let k = record[key].as_str().unwrap_or("null").to_string();
        *totals.entry(k).or_insert(0) += record["count"].as_u64().expect("count");
    }
    totals
}

/// Totals as `BTreeMap` from pairs.
pub fn totals(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// A counting pipeline: csv (flat out, 10 rows per event-second) → 1 s window by gender → file.
pub fn count_pipeline(csv: &Path, out: &Path) -> String {
    format!(
        r#"
[sources.log]
type = "csv"
path = "{}"
event_rate = 10
start_time = 1700000000000

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
    )
}
