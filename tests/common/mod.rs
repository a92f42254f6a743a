//! Helpers shared by the integration tests: run the real `weir` binary, write pipeline files,
//! and count genders independently of weir.

#![allow(dead_code)] // each test binary uses a different subset

pub mod dashboard;
pub mod kafka;
pub mod kafka_wire;
pub mod plugins;
pub mod postgres;
pub mod tls;

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

/// The user log's columns, in order: the header line of a file that has one.
pub const USER_LOG_HEADER: &str =
    "user_id,item_id,cat_id,merchant_id,brand_id,month,day,action,age_range,gender,province";

/// The `columns` option that names the user log's columns, for a csv source of a headerless
/// log (the csv source names no file's columns by itself).
pub fn user_log_columns_option() -> String {
    let names: Vec<String> = USER_LOG_HEADER
        .split(',')
        .map(|c| format!("\"{c}\""))
        .collect();
    format!("columns = [{}]", names.join(", "))
}

/// The gender column (the tenth) of every row of a CSV file with a header, in file order.
pub fn genders_in_order(csv: &Path) -> Vec<String> {
    std::fs::read_to_string(csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| line.split(',').nth(9).unwrap().to_string())
        .collect()
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

/// The Python of a test venv made by `tests/setup.sh` (`$HOME/.cache/weir/VENV`), or the
/// interpreter named by environment variable `env`.
pub fn python(env: &str, venv: &str) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        Path::new(&home)
            .join(".cache/weir")
            .join(venv)
            .join("bin/python")
    });
    assert!(
        path.exists(),
        "{} is missing: run `bash tests/setup.sh` first",
        path.display()
    );
    path
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A process started for a test; killed when dropped.
pub struct Background {
    /// The process.
    pub child: std::process::Child,
    /// Where its stderr goes.
    pub log: PathBuf,
}

impl Background {
    /// Starts `cmd` with stdout to `out` and stderr to `log`.
    pub fn start(mut cmd: Command, out: &Path, log: &Path) -> Background {
        let child = cmd
            .stdout(std::fs::File::create(out).expect("stdout file"))
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("process starts");
        Background {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") and waits for the exit; returns the exit status and
    /// the log.
    pub fn signal(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        let status = self.child.wait().expect("process exits");
        (
            status,
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }

    /// Waits for the process to end by itself, at most `limit`; returns the exit status and
    /// the log.
    pub fn wait(mut self, limit: std::time::Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("status readable") {
                return (
                    status,
                    std::fs::read_to_string(&self.log).unwrap_or_default(),
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "process did not end within {limit:?}; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `weir ARGS` in the repository with `env` set; asserts it succeeded and returns its
/// standard output.
pub fn succeeding_in_repo(args: &[&str], env: &[(&str, &Path)]) -> String {
    let mut cmd = weir();
    cmd.args(args).current_dir(repo());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("weir starts");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "weir {args:?}: {stdout}{stderr}");
    stdout
}

/// Each line of `stdout` as JSON.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}
