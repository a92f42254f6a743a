//! The stateful transforms exactly once under kill -9: a loader replays the sample log into a
//! topic (10 rows per event second), a job — a `dedupe` dropping each (user, item) seen in the
//! 30 s before, or `session` windows per category closed after 2 s without a record — writes to
//! another topic, and is SIGKILLed at random moments and restarted. The output, read with
//! read_committed, must hold every record (or session) an independent recount of the CSV file
//! gives — once — and nothing else. Topics are made by an admin client (`create_topic = false`).

mod common;

use common::kafka::{broker, create_topic, read_topic, scratch, seeded};
use common::{Background, repo, weir};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SAMPLE: &str = "data/user_log_sample.csv";
const START: i64 = 1_447_200_000_000; // 2015-11-11T00:00:00Z
const WITHIN_MS: i64 = 30_000;
const SESSION_GAP_MS: i64 = 2_000;

const DEDUPE: &str = r#"
[transforms.first]
type = "dedupe"
inputs = ["events"]
keys = ["user_id", "item_id"]
within = "30s"

[sinks.kept]
type = "kafka"
inputs = ["first"]
topic = "kept"
create_topic = false
codec = "json"
fields = ["user_id", "item_id", "action"]
"#;

const SESSIONS: &str = r#"
[transforms.visits]
type = "session"
inputs = ["events"]
gap = "2s"
group_by = ["cat_id"]
aggregates = [{ op = "count" }, { op = "count_distinct", field = "item_id", as = "items" }]

[sinks.kept]
type = "kafka"
inputs = ["visits"]
topic = "kept"
create_topic = false
codec = "json"
"#;

const JOIN: &str = r#"
[transforms.clicks]
type = "filter"
inputs = ["events"]
where = "action == '0'"

[transforms.stamped_clicks]
type = "select"
inputs = ["clicks"]
compute = { clicked_at = "event_time()" }

[transforms.purchases]
type = "filter"
inputs = ["events"]
where = "action == '2'"

[transforms.stamped_purchases]
type = "select"
inputs = ["purchases"]
keep = ["cat_id"]
compute = { bought_at = "event_time()" }

[transforms.pairs]
type = "join"
inputs = ["stamped_clicks", "stamped_purchases"]
on = ["cat_id"]
within = "30s"
before = "10s"

[sinks.kept]
type = "kafka"
inputs = ["pairs"]
topic = "kept"
create_topic = false
codec = "json"
fields = ["cat_id", "clicked_at", "bought_at"]
"#;
const JOIN_WITHIN_MS: i64 = 30_000;
const JOIN_BEFORE_MS: i64 = 10_000;

fn pipelines(dir: &Path, bootstrap: &str, stage: &str) -> (String, String) {
    let load = dir.join("load.toml");
    std::fs::write(
        &load,
        format!(
            r#"
[kafka]
brokers = "{bootstrap}"

[sources.log]
type = "csv"
path = "{}"
rate = 1000
event_rate = 10
start_time = "2015-11-11T00:00:00Z"

[sinks.events]
type = "kafka"
inputs = ["log"]
topic = "events"
create_topic = false
codec = "json"
fields = ["user_id", "item_id", "cat_id", "action"]
"#,
            repo().join(SAMPLE).display()
        ),
    )
    .unwrap();
    let job = dir.join("dedupe.toml");
    std::fs::write(
        &job,
        format!(
            r#"
[kafka]
brokers = "{bootstrap}"

[sources.events]
type = "kafka"
topic = "events"
create_topic = false
codec = "json"
fields = ["user_id", "item_id", "cat_id", "action"]
group_id = "stateful-chaos"

{stage}
"#
        ),
    )
    .unwrap();
    (load.display().to_string(), job.display().to_string())
}

/// The records the rule keeps, recounted from the CSV file: (event time, user, item, action),
/// a record kept when no record of its (user, item) came in the 30 s before it.
fn recount() -> Vec<(i64, String, String, String)> {
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let mut last_seen: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut kept = Vec::new();
    for (n, line) in text.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let t = START + n as i64 * 100;
        let key = (fields[0].to_string(), fields[1].to_string());
        let duplicate = last_seen
            .get(&key)
            .is_some_and(|&seen| seen >= t - WITHIN_MS);
        last_seen.insert(key.clone(), t);
        if !duplicate {
            kept.push((t, key.0, key.1, fields[7].to_string()));
        }
    }
    kept
}

fn written(bootstrap: &str) -> BTreeMap<(i64, String, String, String), usize> {
    let mut seen = BTreeMap::new();
    for (t, value) in read_topic(bootstrap, "kept") {
        let r: serde_json::Value = serde_json::from_str(&value).unwrap();
        let text = |f: &str| r[f].as_str().unwrap_or_default().to_string();
        *seen
            .entry((t, text("user_id"), text("item_id"), text("action")))
            .or_insert(0) += 1;
    }
    seen
}

/// A broker (`memory://`), the loader replaying the sample into `events` while the job with
/// `stage` is SIGKILLed at 6 random moments and restarted, then one more run of the job until
/// `caught_up(bootstrap)` and a SIGTERM. Returns the broker (kept running), its address and the
/// seed.
fn kill_six_times(
    dir: &Path,
    stage: &str,
    caught_up: impl Fn(&str) -> bool,
) -> (Background, String, u64) {
    kill_six_times_on(dir, "memory://", stage, caught_up)
}

/// [`kill_six_times`] on a broker with `storage`.
fn kill_six_times_on(
    dir: &Path,
    storage: &str,
    stage: &str,
    caught_up: impl Fn(&str) -> bool,
) -> (Background, String, u64) {
    let (broker, bootstrap) = broker(dir, storage);
    for topic in ["events", "kept"] {
        create_topic(&bootstrap, topic);
    }
    let (seed, mut random) = seeded();
    let (load, job) = pipelines(dir, &bootstrap, stage);
    let start = |name: &str, file: &str| {
        let mut cmd = weir();
        cmd.args(["run", file]);
        Background::start(
            cmd,
            &dir.join(format!("{name}.out")),
            &dir.join(format!("{name}.log")),
        )
    };
    let loader = start("load", &load);
    for n in 0..6 {
        let run = start(&format!("run{n}"), &job);
        std::thread::sleep(Duration::from_millis(700 + random(1500)));
        run.signal("KILL");
    }
    let (status, log) = loader.wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    let final_run = start("last", &job);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !caught_up(&bootstrap) {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: the last run did not catch up"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (status, log) = final_run.signal("TERM");
    assert!(status.success(), "seed {seed}: {log}");
    (broker, bootstrap, seed)
}

#[test]
fn dedupe_killed_6_times_keeps_each_first_record_once() {
    let dir = scratch();
    let expected = recount();
    // Records after the last event time are never decided (no later record moves the
    // watermark past them); judge those before it.
    let last = expected.iter().map(|r| r.0).max().unwrap();
    let required: Vec<_> = expected.iter().filter(|r| r.0 < last).cloned().collect();
    let probe = required.last().unwrap().clone();
    let (_broker, bootstrap, seed) = kill_six_times(&dir.path, DEDUPE, |bootstrap| {
        written(bootstrap).contains_key(&probe)
    });
    let got = written(&bootstrap);
    let missing = required.iter().filter(|r| !got.contains_key(*r)).count();
    let doubled: usize = got.values().map(|n| n - 1).sum();
    let unexpected = got.keys().filter(|r| !expected.contains(r)).count();
    let rows = std::fs::read_to_string(repo().join(SAMPLE))
        .unwrap()
        .lines()
        .count()
        - 1;
    eprintln!(
        "dedupe killed 6 times (seed {seed}): {rows} rows, {} kept by the recount, {} written; \
         missing {missing}, duplicates {doubled}, not expected {unexpected}",
        required.len(),
        got.len()
    );
    assert_eq!((missing, doubled, unexpected), (0, 0, 0), "seed {seed}");
}

/// Sessions per category recounted from the CSV file: (start, end, category, records, distinct
/// items), a new session where a category's next record is 2 s or more after the one before.
fn recount_sessions() -> Vec<(i64, i64, String, i64, i64)> {
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let mut by_user: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for (n, line) in text.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        by_user
            .entry(fields[2].to_string())
            .or_default()
            .push((START + n as i64 * 100, fields[1].to_string()));
    }
    let mut sessions = Vec::new();
    for (user, records) in by_user {
        let mut current: Vec<&(i64, String)> = Vec::new();
        for record in &records {
            if current
                .last()
                .is_some_and(|last| record.0 - last.0 >= SESSION_GAP_MS)
            {
                sessions.push(session_of(&user, &current));
                current.clear();
            }
            current.push(record);
        }
        sessions.push(session_of(&user, &current));
    }
    sessions
}

fn session_of(user: &str, records: &[&(i64, String)]) -> (i64, i64, String, i64, i64) {
    let items: std::collections::BTreeSet<&str> = records.iter().map(|r| r.1.as_str()).collect();
    (
        records[0].0,
        records[records.len() - 1].0 + SESSION_GAP_MS,
        user.to_string(),
        records.len() as i64,
        items.len() as i64,
    )
}

fn written_sessions(bootstrap: &str) -> BTreeMap<(i64, i64, String, i64, i64), usize> {
    let mut seen = BTreeMap::new();
    for (_, value) in read_topic(bootstrap, "kept") {
        let r: serde_json::Value = serde_json::from_str(&value).unwrap();
        let int = |f: &str| r[f].as_i64().unwrap();
        let key = (
            int("window_start"),
            int("window_end"),
            r["cat_id"].as_str().unwrap().to_string(),
            int("count"),
            int("items"),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    seen
}

#[test]
fn sessions_killed_6_times_are_each_written_once_with_their_recounted_records() {
    let dir = scratch();
    let expected = recount_sessions();
    // The watermark ends near the last record's time: sessions ending after it stay open
    // (judged: those ending a second before it).
    let last = START + (expected.iter().map(|s| s.3).sum::<i64>() - 1) * 100;
    let required: Vec<_> = expected
        .iter()
        .filter(|s| s.1 <= last - 1000)
        .cloned()
        .collect();
    let probe = required.iter().max_by_key(|s| s.1).unwrap().clone();
    let (_broker, bootstrap, seed) = kill_six_times(&dir.path, SESSIONS, |bootstrap| {
        written_sessions(bootstrap).contains_key(&probe)
    });
    let got = written_sessions(&bootstrap);
    let missing = required.iter().filter(|s| !got.contains_key(*s)).count();
    let doubled: usize = got.values().map(|n| n - 1).sum();
    let unexpected = got.keys().filter(|s| !expected.contains(s)).count();
    eprintln!(
        "sessions killed 6 times (seed {seed}): {} sessions closed in the recount, {} written; \
         missing {missing}, duplicates {doubled}, not expected {unexpected}",
        required.len(),
        got.len()
    );
    assert_eq!((missing, doubled, unexpected), (0, 0, 0), "seed {seed}");
}

/// The pairs the join makes, recounted from the CSV file: (the later time, category, click
/// time, purchase time) for every click and purchase in one category with the purchase at most
/// 30 s after the click or 10 s before it.
fn recount_pairs() -> Vec<(i64, String, i64, i64)> {
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let stamped = |action: &str| {
        let mut by_category: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for (n, row) in rows.iter().enumerate() {
            if row[7] == action {
                by_category
                    .entry(row[2])
                    .or_default()
                    .push(START + n as i64 * 100);
            }
        }
        by_category
    };
    let (clicks, purchases) = (stamped("0"), stamped("2"));
    let mut pairs = Vec::new();
    for (category, clicked) in &clicks {
        for &c in clicked {
            for &p in purchases.get(category).into_iter().flatten() {
                if p >= c - JOIN_BEFORE_MS && p <= c + JOIN_WITHIN_MS {
                    pairs.push((c.max(p), category.to_string(), c, p));
                }
            }
        }
    }
    pairs
}

fn written_pairs(bootstrap: &str) -> BTreeMap<(i64, String, i64, i64), usize> {
    let mut seen = BTreeMap::new();
    for (t, value) in read_topic(bootstrap, "kept") {
        let r: serde_json::Value = serde_json::from_str(&value).unwrap();
        let time = |f: &str| r[f].as_i64().unwrap_or_default();
        let category = r["cat_id"].as_str().unwrap_or_default().to_string();
        *seen
            .entry((t, category, time("clicked_at"), time("bought_at")))
            .or_insert(0) += 1;
    }
    seen
}

#[test]
fn a_join_killed_6_times_writes_each_pair_once() {
    join_killed_6_times_on("memory://");
}

/// The same on durable storage: the broker keeps its topics in SQLite.
#[test]
fn a_join_killed_6_times_on_a_sqlite_broker_writes_each_pair_once() {
    join_killed_6_times_on("sqlite://broker.db");
}

fn join_killed_6_times_on(storage: &str) {
    let dir = scratch();
    let expected = recount_pairs();
    // Pairs at the last event time are never decided on a live input (no later record moves
    // the watermark past them); judge those before it.
    let last = START + 9_998 * 100;
    let required: Vec<_> = expected.iter().filter(|p| p.0 < last).cloned().collect();
    let probe = required.iter().max().unwrap().clone();
    let (_broker, bootstrap, seed) = kill_six_times_on(&dir.path, storage, JOIN, |bootstrap| {
        written_pairs(bootstrap).contains_key(&probe)
    });
    let got = written_pairs(&bootstrap);
    let missing = required.iter().filter(|p| !got.contains_key(*p)).count();
    let doubled: usize = got.values().map(|n| n - 1).sum();
    let unexpected = got.keys().filter(|p| !expected.contains(p)).count();
    eprintln!(
        "join killed 6 times on {storage} (seed {seed}): {} pairs in the recount, {} written; \
         missing {missing}, duplicates {doubled}, not expected {unexpected}",
        required.len(),
        got.len()
    );
    assert!(
        required.len() > 100,
        "the sample has pairs: {}",
        required.len()
    );
    assert_eq!((missing, doubled, unexpected), (0, 0, 0), "seed {seed}");
}

/// The example stateful plugin (`shop.distinct_buyers`, ABI 1.2): distinct buyers per action per
/// 10 s window.
fn distinct_buyers_stage() -> String {
    let library = common::plugins::lib("weir_shop");
    format!(
        r#"
[plugins]
paths = ["{}"]

[transforms.buyers]
type = "shop.distinct_buyers"
inputs = ["events"]
size_ms = 10000
group_by = "action"

[sinks.kept]
type = "kafka"
inputs = ["buyers"]
topic = "kept"
create_topic = false
codec = "json"
fields = ["window_start", "action", "buyers"]
"#,
        library.display()
    )
}

/// Distinct buyers per (10 s window start, action), recounted from the CSV file.
fn recount_buyers() -> BTreeMap<(i64, String), i64> {
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let mut users: BTreeMap<(i64, String), std::collections::BTreeSet<String>> = BTreeMap::new();
    for (n, line) in text.lines().skip(1).enumerate() {
        let fields: Vec<&str> = line.split(',').collect();
        let t = START + n as i64 * 100;
        users
            .entry((t.div_euclid(10_000) * 10_000, fields[7].to_string()))
            .or_default()
            .insert(fields[0].to_string());
    }
    users
        .into_iter()
        .map(|(k, u)| (k, u.len() as i64))
        .collect()
}

fn written_buyers(bootstrap: &str) -> BTreeMap<(i64, String), Vec<i64>> {
    let mut seen: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for (_, value) in read_topic(bootstrap, "kept") {
        let r: serde_json::Value = serde_json::from_str(&value).unwrap();
        seen.entry((
            r["window_start"].as_i64().unwrap(),
            r["action"].as_str().unwrap_or_default().to_string(),
        ))
        .or_default()
        .push(r["buyers"].as_i64().unwrap());
    }
    seen
}

/// A plugin transform that keeps state, under the same kill loop as the built-in stages: every
/// window's distinct-buyer count once, equal to the recount — the host kept the input's tickets
/// until the plugin's output passed them, and handed a restarted plugin only later records.
#[test]
fn a_stateful_plugin_killed_6_times_writes_each_window_once_with_its_recounted_buyers() {
    let dir = scratch();
    let expected = recount_buyers();
    // The last window stays open: no later record closes it.
    let last = expected.keys().map(|(w, _)| *w).max().unwrap();
    let required: BTreeMap<_, _> = expected
        .iter()
        .filter(|((w, _), _)| *w < last)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let probe = required.keys().max().unwrap().clone();
    let (_broker, bootstrap, seed) =
        kill_six_times(&dir.path, &distinct_buyers_stage(), |bootstrap| {
            written_buyers(bootstrap).contains_key(&probe)
        });
    let got = written_buyers(&bootstrap);
    let missing = required.keys().filter(|k| !got.contains_key(*k)).count();
    let doubled: usize = got.values().map(|n| n.len() - 1).sum();
    let wrong = got
        .iter()
        .filter(|(k, counts)| counts.iter().any(|c| expected.get(*k) != Some(c)))
        .count();
    eprintln!(
        "stateful plugin killed 6 times (seed {seed}): {} windows closed in the recount, {} \
         written; missing {missing}, duplicates {doubled}, wrong {wrong}",
        required.len(),
        got.len()
    );
    assert_eq!((missing, doubled, wrong), (0, 0, 0), "seed {seed}");
}
