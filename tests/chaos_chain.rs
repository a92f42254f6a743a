//! Exactly once through a chain of two pipelines on durable broker storage, on topics made by an
//! admin client (`create_topic = false` everywhere): the counting job (`sex` → 1-second windows →
//! `result`) and a second job reading what the first one commits (`result` → 10-second sums →
//! `result10`), both killed with SIGKILL at random moments while the log is loaded, and
//! restarted. Judged against a recount of the CSV file, never by either job. (A chain is also the
//! way to give one window's results a second exactly-once path: one pipeline may not, see
//! `topology/mark_paths.rs`.)

mod common;

use common::kafka::{
    WindowVerdict, broker, create_topic, expected_windows, scratch, seeded, wait_for_window,
    written_windows,
};
use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

const SAMPLE: &str = "data/user_log_sample.csv";

/// Size of the second job's windows, ms.
const TEN_SECONDS: i64 = 10_000;

#[test]
fn a_chain_of_two_exactly_once_jobs_killed_at_random_writes_each_10_second_sum_once() {
    let dir = scratch();
    let (_broker, bootstrap) = broker(&dir.path, "sqlite://broker.db");
    for topic in ["sex", "result", "result10"] {
        create_topic(&bootstrap, topic);
    }
    let (seed, mut random) = seeded();
    let csv = repo().join(SAMPLE);
    let start = |pipeline: &str, name: &str| {
        let no_topic_creation = match pipeline {
            "tests/fixtures/load_sex.toml" => &["sinks.sex"][..],
            "tests/fixtures/count_sex.toml" => &["sources.sex", "sinks.result"],
            _ => &["sources.result", "sinks.result10"],
        };
        let mut job = weir();
        job.args(["run", pipeline])
            .args(
                no_topic_creation
                    .iter()
                    .flat_map(|stage| ["--set".to_string(), format!("{stage}.create_topic=false")]),
            )
            .env("BROKERS", &bootstrap)
            .env("RESULT_CODEC", "json")
            .env("CSV", &csv)
            .env("RATE", "500");
        Background::start(
            job,
            &dir.path.join(format!("{name}.out")),
            &dir.path.join(format!("{name}.log")),
        )
    };
    let loader = start("tests/fixtures/load_sex.toml", "load");
    for n in 0..6 {
        let counter = start("tests/fixtures/count_sex.toml", &format!("count{n}"));
        let summer = start("tests/fixtures/sum_result.toml", &format!("sum{n}"));
        std::thread::sleep(Duration::from_millis(500 + random(1500)));
        // One of the two dies first, the other a moment later.
        let (first, second) = if random(2) == 0 {
            (counter, summer)
        } else {
            (summer, counter)
        };
        first.signal("KILL");
        std::thread::sleep(Duration::from_millis(random(800)));
        second.signal("KILL");
    }
    let (status, log) = loader.wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");

    // The recount: 1-second windows of the file, summed into 10-second ones. The last 1-second
    // window stays open (no later record closes it), so only 10-second windows that end before
    // it can close; a 10-second window closes once a later 1-second result has arrived.
    let one_second = expected_windows(&csv);
    let last = one_second.keys().map(|(w, _)| *w).max().unwrap();
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for ((window, gender), count) in &one_second {
        let ten = window.div_euclid(TEN_SECONDS) * TEN_SECONDS;
        if ten + TEN_SECONDS <= last {
            *expected.entry((ten, gender.clone())).or_insert(0) += count;
        }
    }
    // Closes for sure: a window ending at least two 1-second results before the last closed one.
    let surely_closed = |ten: i64| ten + TEN_SECONDS <= last - 2000;
    let last_sure = expected
        .keys()
        .map(|(w, _)| *w)
        .filter(|w| surely_closed(*w))
        .max();
    let last_sure = last_sure.expect("the sample spans more than 10 s of event time");

    let counter = start("tests/fixtures/count_sex.toml", "count-last");
    let summer = start("tests/fixtures/sum_result.toml", "sum-last");
    wait_for_window(
        &bootstrap,
        "result10",
        last_sure,
        Duration::from_secs(120),
        &format!("seed {seed}: the chain"),
    );
    for job in [counter, summer] {
        let (status, log) = job.signal("TERM");
        assert!(status.success(), "seed {seed}: {log}");
    }

    let written = written_windows(&bootstrap, "result10");
    let verdict = WindowVerdict::of(&expected, &written, surely_closed);
    eprintln!(
        "chain (KILL x 6 each, topics made elsewhere, seed {seed}): {} 10-second windows expected, {} written, missing {}, \
         conflicting {}, duplicates {}",
        expected.len(),
        written.len(),
        verdict.missing.len(),
        verdict.conflicting.len(),
        verdict.duplicates
    );
    verdict.assert_exact(seed);
}
