//! The `postgres` sink against a real PostgreSQL server: the counting job upserting into a table,
//! killed with SIGKILL at random moments while the log is loaded and restarted, must leave the
//! table equal to a recount of the CSV file (every window once, with its true count: a window
//! open across a restart point is written again whole, not from the half of its input that is
//! read twice); rows the server refuses go to `<sink>.errors` and the rest are written.

mod common;

use common::Background;
use common::kafka::{broker, expected_windows, scratch, seeded, start_loader};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SAMPLE: &str = "data/user_log_sample.csv";

/// Topic `sex` → 1 s windows by gender → table `gender_per_second`.
fn counting_job(dir: &Path, bootstrap: &str, url: &str) -> std::path::PathBuf {
    let path = dir.join("to_postgres.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[kafka]
brokers = "{bootstrap}"

[sources.sex]
type = "kafka"
topic = "sex"
fields = ["gender"]
group_id = "to-postgres"

[transforms.per_second]
type = "window"
inputs = ["sex"]
size = "1s"
group_by = ["gender"]

[sinks.table]
type = "postgres"
inputs = ["per_second"]
url = "{url}"
table = "gender_per_second"
"#
        ),
    )
    .unwrap();
    path
}

/// (window_start, gender) → count, as the table holds them.
fn table_counts(db: &common::postgres::Postgres) -> BTreeMap<(i64, String), u64> {
    db.query("SELECT window_start, gender, count FROM gender_per_second")
        .iter()
        .map(|r| {
            let count: i64 = r.get(2);
            ((r.get(0), r.get(1)), count as u64)
        })
        .collect()
}

#[test]
fn killed_at_random_moments_the_table_holds_every_window_once_with_its_true_count() {
    const KILLS: usize = 8;
    let db = common::postgres::start();
    let scratch = scratch();
    let dir = scratch.path.as_path();
    let (_broker, bootstrap) = broker(dir, "memory://");
    let (seed, mut random) = seeded();
    let csv = repo().join(SAMPLE);
    let loader = start_loader(dir, &bootstrap, &csv, "500", "load", &[]);
    let job = counting_job(dir, &bootstrap, &db.url());
    for n in 0..KILLS {
        let run = common::kafka::member(dir, &job, &format!("run{n}"));
        std::thread::sleep(Duration::from_millis(500 + random(2000)));
        run.signal("KILL");
    }
    let (status, log) = loader.wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");

    let expected_all = expected_windows(&csv);
    // The last window stays open: no later record closes it.
    let last = expected_all.keys().map(|(w, _)| *w).max().unwrap();
    let expected: BTreeMap<_, _> = expected_all
        .into_iter()
        .filter(|((w, _), _)| *w < last)
        .collect();
    let last_run = common::kafka::member(dir, &job, "last");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut written = table_counts(&db);
    while !expected.keys().all(|k| written.contains_key(k)) {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the last run did not write every window; log in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(500));
        written = table_counts(&db);
    }
    let (status, log) = last_run.signal("TERM");
    assert!(status.success(), "{log}");
    let written = table_counts(&db);
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !written.contains_key(*k))
        .collect();
    let wrong: Vec<_> = expected
        .iter()
        .filter(|(k, count)| written.get(*k).is_some_and(|c| c != *count))
        .map(|(k, count)| (k, *count, written[k]))
        .collect();
    let extra: Vec<_> = written
        .keys()
        .filter(|k| !expected.contains_key(*k) && k.0 < last)
        .collect();
    eprintln!(
        "postgres chaos (KILL x {KILLS}, seed {seed}): expected {} windows; missing {}, wrong {}, \
         not in the input {}",
        expected.len(),
        missing.len(),
        wrong.len(),
        extra.len()
    );
    assert!(
        missing.is_empty() && wrong.is_empty() && extra.is_empty(),
        "seed {seed}: missing {:?}, wrong (window, true, written) {:?}, extra {:?}",
        &missing[..missing.len().min(5)],
        &wrong[..wrong.len().min(5)],
        &extra[..extra.len().min(5)]
    );
    let marks = db.query("SELECT job, stage, through FROM weir_progress");
    assert_eq!(marks.len(), 1, "one mark: the window's");
    let stage: String = marks[0].get(1);
    assert_eq!(stage, "transforms.per_second");
}

/// A table made beforehand with a rule some rows break: those rows go to `table.errors` with the
/// server's reason, and every other row is written; the run succeeds.
#[test]
fn rows_the_table_refuses_go_to_the_errors_stream_and_the_rest_are_written() {
    let db = common::postgres::start();
    db.execute(
        "CREATE TABLE picky (window_start bigint, gender text, count bigint, \
         PRIMARY KEY (window_start, gender), CONSTRAINT no_unknown CHECK (gender <> '2'))",
    );
    let dir = tempfile::tempdir().unwrap();
    let csv = repo().join(SAMPLE);
    let errors = dir.path().join("refused.jsonl");
    let pipeline = dir.path().join("picky.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.log]
type = "csv"
path = "{}"
event_rate = 10
start_time = "2015-11-11T00:00:00Z"

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[transforms.fields]
type = "select"
inputs = ["per_second"]
keep = ["window_start", "gender", "count"]

[sinks.table]
type = "postgres"
inputs = ["fields"]
url = "{}"
table = "picky"

[sinks.refused]
type = "file"
inputs = ["table.errors"]
path = "{}"
"#,
            csv.display(),
            db.url(),
            errors.display()
        ),
    )
    .unwrap();
    let out = weir()
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let expected = expected_windows(&csv);
    let written: BTreeMap<(i64, String), u64> = db
        .query("SELECT window_start, gender, count FROM picky")
        .iter()
        .map(|r| {
            let count: i64 = r.get(2);
            ((r.get(0), r.get(1)), count as u64)
        })
        .collect();
    let kept: BTreeMap<_, _> = expected
        .iter()
        .filter(|((_, g), _)| g != "2")
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(
        written, kept,
        "every row but gender 2's, with its true count"
    );
    let refused: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let unknown = expected.keys().filter(|(_, g)| g == "2").count();
    assert_eq!(
        refused.len(),
        unknown,
        "each refused row once in table.errors"
    );
    assert!(
        refused
            .iter()
            .all(|e| e["reason"].as_str().unwrap().contains("no_unknown")),
        "the reason names the rule: {:?}",
        refused.first()
    );
}

/// A table whose columns do not match the records fails the run at its first batch with an
/// error naming the field and the columns.
#[test]
fn a_table_without_a_column_for_a_field_fails_the_run_naming_both() {
    let db = common::postgres::start();
    db.execute("CREATE TABLE narrow (window_start bigint PRIMARY KEY, count bigint)");
    let dir = tempfile::tempdir().unwrap();
    let csv = repo().join(SAMPLE);
    let pipeline = dir.path().join("narrow.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.log]
type = "csv"
path = "{}"
event_rate = 10
start_time = "2015-11-11T00:00:00Z"

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.table]
type = "postgres"
inputs = ["per_second"]
url = "{}"
table = "narrow"
key = ["window_start"]
"#,
            csv.display(),
            db.url()
        ),
    )
    .unwrap();
    let out = weir()
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("has no column `window_end`") && stderr.contains("count, window_start"),
        "{stderr}"
    );
}

/// A csv replay stamped from the clock (no `start_time`), killed twice and run again to its end:
/// the first event time travels with the batches as a mark, the table keeps it, and the runs
/// after a kill stamp rows as the first one did — so the table equals a recount of the file from
/// that time (read back from the progress table), not a mix of two clocks.
#[test]
fn a_clock_stamped_replay_killed_and_rerun_keeps_its_first_stamps() {
    let db = common::postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let csv = repo().join(SAMPLE);
    let pipeline = dir.path().join("clock.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[sources.log]
type = "csv"
path = "{}"
rate = 4000
event_rate = 10

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.table]
type = "postgres"
inputs = ["per_second"]
url = "{}"
table = "clocked"
"#,
            csv.display(),
            db.url()
        ),
    )
    .unwrap();
    let (seed, mut random) = seeded();
    for n in 0..2 {
        let mut cmd = weir();
        cmd.args(["run", pipeline.to_str().unwrap()]);
        let run = Background::start(
            cmd,
            &dir.path().join(format!("run{n}.out")),
            &dir.path().join(format!("run{n}.log")),
        );
        std::thread::sleep(Duration::from_millis(700 + random(1000)));
        run.signal("KILL");
    }
    let out = weir()
        .args(["run", pipeline.to_str().unwrap()])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let marks =
        db.query("SELECT through FROM weir_progress WHERE stage = 'sources.log@start_time'");
    assert_eq!(marks.len(), 1, "the first event time is kept with the rows");
    let start: i64 = marks[0].get(0);
    let text_of_file = std::fs::read_to_string(&csv).unwrap();
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for (n, line) in text_of_file.lines().skip(1).enumerate() {
        let gender = line.split(',').nth(9).unwrap().to_string();
        let window = (start + n as i64 * 100).div_euclid(1000) * 1000;
        *expected.entry((window, gender)).or_default() += 1;
    }
    let written: BTreeMap<(i64, String), u64> = db
        .query("SELECT window_start, gender, count FROM clocked")
        .iter()
        .map(|r| {
            let count: i64 = r.get(2);
            ((r.get(0), r.get(1)), count as u64)
        })
        .collect();
    let wrong = expected
        .iter()
        .filter(|(k, v)| written.get(*k) != Some(*v))
        .count();
    let extra = written
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .count();
    eprintln!(
        "clock-stamped replay killed twice (seed {seed}): {} windows expected, {} written; \
         wrong or missing {wrong}, not in the recount {extra}",
        expected.len(),
        written.len()
    );
    assert_eq!((wrong, extra), (0, 0), "seed {seed}");
}
