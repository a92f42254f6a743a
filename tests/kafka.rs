//! Kafka through the real binary and the real protocol: the embedded broker and `weir broker`
//! (tansu), rdkafka and kafka-python clients. Covers the shipped tutorial pipeline end to end,
//! interop with the tutorial's Python producer and consumer, no broker at start, a broker that goes
//! away for 10 seconds, a delivery that keeps failing. (Restarts and transactions: `chaos.rs`.)

mod common;

use common::kafka::{broker, read_topic, wait_for_port};
use common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const SAMPLE: &str = "data/user_log_sample.csv";

/// `weir run` of the shipped pipeline at `rate` (rows/s or `"max"`), its dashboard on a free port.
fn shipped(rate: &str) -> Command {
    let mut cmd = weir();
    cmd.args(["run", "pipelines/shopping_gender.toml"])
        .args(["--set", &format!("sources.user_log.rate={rate}")])
        .args([
            "--set",
            &format!("sinks.dashboard.listen=127.0.0.1:{}", free_port()),
        ]);
    cmd
}

/// Runs the tutorial-style kafka-python consumer of `result` until the counts add up to
/// `expected` rows; returns what it printed (the arrays, then the totals as JSON).
fn tutorial_consumer(bootstrap: &str, expected: u64) -> String {
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let consumed = Command::new(&py)
        .current_dir(repo())
        .args(["tests/python/tutorial_consumer.py", bootstrap])
        .args([expected.to_string().as_str(), "--timeout", "60"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&consumed);
    assert!(consumed.status.success(), "{stderr}");
    stdout
}

fn sum_arrays<'a>(arrays: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, u64> {
    let mut lines = String::new();
    for a in arrays {
        lines.push_str(a);
        lines.push('\n');
    }
    sum_seed(&lines)
}

#[test]
fn the_shipped_pipeline_runs_through_the_embedded_broker_and_ends_by_itself() {
    let kafka = free_port();
    let started = Instant::now();
    let output = shipped(r#""max""#)
        .args(["--set", &format!("kafka.embedded.listen=127.0.0.1:{kafka}")])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(sum_seed(&stdout), count_genders(&repo().join(SAMPLE)));
    assert!(stderr.contains("sinks.sex: 9999 in"), "{stderr}");
    assert!(stderr.contains("sources.shoppers: 9999 out"), "{stderr}");
}

/// The shipped job at real size: a generated log of 1,000,000 rows at `rate = "max"` (10 rows per
/// event second, so its stamps end 28 hours ahead of the clock). Every row is counted — the
/// recount of the file equals the sums of the windows printed, one line per event second — and
/// nothing is dropped (before, everything past the first hour of event time was dropped as a
/// clock in the future, and the run still exited 0).
#[test]
fn the_shipped_pipeline_at_max_rate_counts_a_million_row_log_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("user_log.csv");
    let generated = weir()
        .args([
            "gen", "user-log", "--rows", "1000000", "--seed", "7", "--out",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", text(&generated).1);
    let kafka = free_port();
    let output = shipped(r#""max""#)
        .args(["--set", &format!("kafka.embedded.listen=127.0.0.1:{kafka}")])
        .env("WEIR_USER_LOG", &csv)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let expected = count_genders(&csv);
    assert_eq!(expected.values().sum::<u64>(), 1_000_000);
    assert_eq!(sum_seed(&stdout), expected, "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        100_000,
        "one window per event second"
    );
    assert!(stderr.contains("sources.shoppers: 1000000 out"), "{stderr}");
    // The run summary names no stage with drops (the dashboard's "0 updates dropped" aside).
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains(" dropped") && !l.contains("updates dropped")),
        "{stderr}"
    );
    assert!(
        stderr.contains("sources.shoppers: 1000000 out, "),
        "{stderr}"
    );
}

#[test]
fn an_independent_consumer_reads_the_same_counts_from_topic_result() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    let output = shipped(r#""max""#)
        .env("WEIR_KAFKA_BROKERS", &bootstrap)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let expected = count_genders(&repo().join(SAMPLE));
    let result = read_topic(&bootstrap, "result");
    assert_eq!(sum_arrays(result.iter().map(|(_, v)| v.as_str())), expected);
    // The console printed the very same arrays, in the same order.
    let printed: Vec<&str> = stdout.lines().collect();
    let written: Vec<&str> = result.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(printed, written);
    // Each window's message carries the window's event time (end - 1 ms).
    assert!(
        result.iter().all(|(t, _)| t % 1000 == 999),
        "{:?}",
        &result[..3]
    );
    // And `sex` holds one gender digit per row of the file.
    let sex = read_topic(&bootstrap, "sex");
    assert_eq!(sex.len(), 9999);
    assert!(
        sex.iter()
            .all(|(_, v)| ["0", "1", "2"].contains(&v.as_str()))
    );
}

#[test]
fn the_tutorials_python_producer_and_consumer_work_with_weir() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    // The Spark job's place: processing-time windows, as Spark Streaming counted.
    let mut count = weir();
    count
        .args(["run", "tests/fixtures/count_sex.toml"])
        .env("BROKERS", &bootstrap)
        .env("WINDOW_TIME", "processing");
    let counting = Background::start(
        count,
        &dir.path().join("count.out"),
        &dir.path().join("count.log"),
    );
    let py = python("WEIR_TEST_PYTHON", "venv-sio5");
    let produced = Command::new(&py)
        .current_dir(repo())
        .args(["tests/python/tutorial_producer.py", &bootstrap, SAMPLE])
        .output()
        .unwrap();
    assert!(produced.status.success(), "{}", text(&produced).1);
    assert_eq!(text(&produced).0.trim(), "9999");
    let stdout = tutorial_consumer(&bootstrap, 9999);
    let totals: BTreeMap<String, u64> =
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(totals, count_genders(&repo().join(SAMPLE)), "{stdout}");
    assert!(
        stdout.lines().next().unwrap().starts_with("[{\""),
        "{stdout}"
    );
    let (status, log) = counting.signal("TERM");
    assert!(status.success(), "{log}");
}

#[test]
fn no_broker_at_start_is_a_clear_error_after_a_bounded_wait() {
    let port = free_port();
    let started = Instant::now();
    let output = weir()
        .args(["run", "tests/fixtures/count_sex.toml"])
        .args(["--set", r#"kafka.connect_timeout="5s""#])
        .env("BROKERS", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The source, the sink and the transactions each wait for the cluster; the run gives up
    // once, not once per client in turn (it took 20 s with a 10 s timeout, 10 s with this 5 s
    // one). A loose bound: the point is one wait, not two.
    assert!(
        started.elapsed() < Duration::from_secs(5 + 3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!(
            "no Kafka broker reachable at 127.0.0.1:{port} after 5s"
        )),
        "{stderr}"
    );
    // One clear error, not the client's retries (it printed ~390 warnings in 10 s).
    assert!(stderr.lines().count() <= 5, "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
}

/// A producer setting in a sink's `options` reaches the producer only: the exactly-once sink's
/// progress reader (a consumer) was made from the same settings, and librdkafka warned
/// "CONFWARN: ... queue.buffering.max.ms is a producer property and will be ignored by this
/// consumer instance" for it.
#[test]
fn a_producer_option_on_an_exactly_once_sink_draws_no_client_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    let output = weir()
        .args(["run", "tests/fixtures/load_sex.toml"])
        .args(["--set", r#"sinks.sex.options={ "linger.ms" = 50 }"#])
        .env("BROKERS", &bootstrap)
        .env("CSV", repo().join(SAMPLE))
        .env("RATE", r#""max""#)
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("sinks.sex: 9999 in"), "{stderr}");
    assert!(!stderr.contains("CONFWARN"), "{stderr}");
    assert!(!stderr.contains(" WARN "), "{stderr}");
}

#[test]
fn a_taken_port_for_the_embedded_broker_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = shipped("10")
        .args(["--set", &format!("kafka.embedded.listen=127.0.0.1:{port}")])
        .output()
        .unwrap();
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port} is already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("embedded.listen"), "{stderr}");
}

#[test]
fn a_broker_gone_for_10_seconds_mid_run_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (broker_run, bootstrap) = broker(dir.path(), "sqlite://broker.db");
    let mut run = shipped("1000");
    // At least once: exactly once through this outage read back too few rows on a loaded machine
    // (6,600 and 8,400 of 9,999, the run ending cleanly) — a known gap, open in issue #13.
    run.env("WEIR_KAFKA_BROKERS", &bootstrap)
        .args(["--set", r#"kafka.guarantee="at-least-once""#]);
    let pipeline = Background::start(
        run,
        &dir.path().join("run.out"),
        &dir.path().join("run.log"),
    );
    std::thread::sleep(Duration::from_secs(3));
    broker_run.signal("KILL");
    std::thread::sleep(Duration::from_secs(10));
    let port = bootstrap.rsplit(':').next().unwrap();
    let mut again = weir();
    again
        .args([
            "broker",
            "--listen",
            &bootstrap,
            "--storage",
            "sqlite://broker.db",
        ])
        .current_dir(dir.path());
    let _broker = Background::start(
        again,
        &dir.path().join("b2.out"),
        &dir.path().join("b2.log"),
    );
    wait_for_port(port.parse().unwrap());
    let (status, log) = pipeline.wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    let printed = std::fs::read_to_string(dir.path().join("run.out")).unwrap();
    assert_eq!(
        sum_seed(&printed),
        count_genders(&repo().join(SAMPLE)),
        "{log}"
    );
    assert!(
        log.contains("brokers are down"),
        "the outage was seen: {log}"
    );
}

#[test]
fn the_tutorials_consumer_reads_the_printed_arrays_from_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let kafka = free_port();
    let bootstrap = format!("127.0.0.1:{kafka}");
    let mut run = shipped("2000");
    run.args(["--set", &format!("kafka.embedded.listen={bootstrap}")]);
    let pipeline = Background::start(
        run,
        &dir.path().join("run.out"),
        &dir.path().join("run.log"),
    );
    wait_for_port(kafka);
    // The first 1,000 rows' windows, read while the job runs (its broker lives inside it).
    let stdout = tutorial_consumer(&bootstrap, 1000);
    let (status, log) = pipeline.wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    let arrays: Vec<&str> = stdout.lines().filter(|l| l.starts_with('[')).collect();
    let printed = std::fs::read_to_string(dir.path().join("run.out")).unwrap();
    let printed: Vec<&str> = printed.lines().take(arrays.len()).collect();
    assert!(arrays.len() >= 100, "{stdout}");
    assert_eq!(arrays, printed);
}

#[test]
fn three_partitions_count_the_same_with_nothing_late() {
    let output = shipped(r#""max""#)
        .args(["--set", "kafka.partitions=3"])
        .args([
            "--set",
            &format!("kafka.embedded.listen=127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("created topic sex (3 partition(s))"),
        "{stderr}"
    );
    // Per-partition watermarks: no partition's records are taken as late.
    assert!(
        stderr.contains("transforms.per_second: 9999 in, 2957 out\n"),
        "{stderr}"
    );
    assert_eq!(sum_seed(&stdout), count_genders(&repo().join(SAMPLE)));
}

#[test]
fn a_delivery_that_keeps_failing_becomes_the_stage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (broker_run, bootstrap) = broker(dir.path(), "sqlite://broker.db");
    let mut load = weir();
    load.args(["run", "tests/fixtures/load_sex.toml"])
        .args([
            "--set",
            r#"sinks.sex.options={ "delivery.timeout.ms" = 2000 }"#,
        ])
        .env("BROKERS", &bootstrap)
        .env("CSV", repo().join(SAMPLE))
        .env("RATE", "200");
    let loader = Background::start(
        load,
        &dir.path().join("load.out"),
        &dir.path().join("load.log"),
    );
    std::thread::sleep(Duration::from_millis(1500));
    broker_run.signal("KILL");
    let (status, log) = loader.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{log}");
    // Written in transactions: the periodic commit may meet the failure first (a message to `sex`
    // or to the progress topic that timed out, or was purged when the transaction was aborted
    // against the dead broker, or the commit itself timing out), and the sink reports it as what
    // stopped them.
    assert!(
        log.lines().any(
            |line| line.starts_with("error: stage sinks.sex (kafka) failed")
                && (line.contains("delivery to topic")
                    && (line.contains("MessageTimedOut") || line.contains("PurgeQueue"))
                    || line.contains("commit_transaction failed"))
        ),
        "{log}"
    );
}

/// The tutorial's producer pattern: a few rows a second, stamped by the clock, then nothing. Every
/// window of them comes out, the last one too, without a row after it (issue 30, item 4): a
/// quiet partition's event time follows the clock once its records have (`follow_clock`).
#[test]
fn the_last_window_of_a_live_input_that_goes_quiet_comes_out_without_new_data() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    const ROWS: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    common::kafka::create_topic(&bootstrap, "sex");
    let pipeline = dir.path().join("quiet.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[kafka]
brokers = "{bootstrap}"

[sources.sex]
type = "kafka"
topic = "sex"
fields = ["gender"]
codec = "json"
create_topic = false

[transforms.per_second]
type = "window"
inputs = ["sex"]
size = "1s"
group_by = ["gender"]

[sinks.console]
type = "console"
inputs = ["per_second"]
"#
        ),
    )
    .unwrap();
    let out = dir.path().join("quiet.out");
    let mut cmd = weir();
    cmd.arg("run").arg(&pipeline);
    let counting = Background::start(cmd, &out, &dir.path().join("quiet.log"));
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for i in 0..ROWS {
        let stamped = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let gender = (i % 3).to_string();
        *expected
            .entry((stamped.div_euclid(1000) * 1000, gender.clone()))
            .or_default() += 1;
        producer
            .send(
                BaseRecord::<(), _>::to("sex")
                    .payload(&format!("{{\"gender\":\"{gender}\"}}"))
                    .timestamp(stamped),
            )
            .unwrap();
        producer.poll(Duration::from_millis(100));
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    // Nothing more is written. The last window must come out on its own (a generous bound; how
    // soon is measured in BENCHMARKS.md, "The last window of a quiet input").
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut counted: BTreeMap<(i64, String), u64> = BTreeMap::new();
    while Instant::now() < deadline && counted != expected {
        std::thread::sleep(Duration::from_millis(200));
        counted.clear();
        for line in std::fs::read_to_string(&out).unwrap_or_default().lines() {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let start = record["window_start"].as_i64().unwrap();
            let gender = record["gender"].as_str().unwrap().to_string();
            *counted.entry((start, gender)).or_default() += record["count"].as_u64().unwrap();
        }
    }
    let (status, log) = counting.signal("TERM");
    assert!(status.success(), "{log}");
    assert_eq!(
        counted, expected,
        "every window of the quiet input, the last one too, with its true count; log:\n{log}"
    );
}
