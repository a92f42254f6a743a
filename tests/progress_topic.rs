//! The progress topic against a real broker on both storage engines: a starting run reads it
//! from the end back to the newest snapshot that covers the rest (not whole), skips what aborted
//! transactions wrote, and gets the marks a full reading gives; a run that commits often leaves
//! such snapshots, and a finished source read back from them does not send its file again.

mod common;

use common::kafka::{
    WindowVerdict, broker, count_to_end, read_topic, reader, scratch, start_loader, wait_for_window,
};
use common::{Background, repo, weir};
use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir::kafka::transaction::{progress_snapshot, read_progress_marks};

const SAMPLE: &str = "data/user_log_sample.csv";

fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

fn transactional(
    bootstrap: &str,
    id: &str,
) -> ThreadedProducer<rdkafka::producer::DefaultProducerContext> {
    let producer: ThreadedProducer<_> = client(bootstrap)
        .set("transactional.id", id)
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer
}

fn write(
    producer: &ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    key: &str,
    value: &str,
) {
    let mut record = BaseRecord::<str, str>::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// Every record of partition 0 of `topic` as (key, value), read with read_committed.
fn all_records(consumer: &BaseConsumer) -> Vec<(String, String)> {
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => records.push((
                String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return records,
            _ => {}
        }
    }
    panic!("the topic was not read to its end within 60 s");
}

/// The furthest mark per stage among plain mark records (snapshots ignored): what a reader
/// of the whole topic finds when one writer wrote it.
fn recount(records: &[(String, String)]) -> BTreeMap<String, i64> {
    let mut marks = BTreeMap::new();
    for (key, value) in records {
        if let Ok(through) = value.parse::<i64>() {
            let at = marks.entry(key.clone()).or_insert(through);
            *at = (*at).max(through);
        }
    }
    marks
}

#[test]
fn a_reading_stops_at_the_newest_covering_snapshot_and_ignores_aborted_ones() {
    for engine in ["memory://", "sqlite"] {
        let dir = scratch();
        let storage = match engine {
            "sqlite" => format!("sqlite://{}", dir.path.join("broker.db").display()),
            memory => memory.to_string(),
        };
        let (_broker, bootstrap) = broker(&dir.path, &storage);
        let topic = "filled.progress";
        common::kafka::create_topic(&bootstrap, topic);
        let producer = transactional(&bootstrap, "filler");
        // 20,000 mark records of two stages, as versions without snapshots wrote them.
        let mut expected = BTreeMap::new();
        for chunk in 0..20 {
            producer.begin_transaction().unwrap();
            for i in 0..500 {
                let through = (chunk * 500 + i) * 10;
                for stage in ["count", "sex"] {
                    write(&producer, topic, stage, &through.to_string());
                    expected.insert(stage.to_string(), through);
                }
            }
            producer
                .commit_transaction(Duration::from_secs(30))
                .unwrap();
        }
        let (marks, read) =
            read_progress_marks(&client(&bootstrap), topic, Duration::from_secs(60)).unwrap();
        assert_eq!(
            marks, expected,
            "{engine}: a topic without snapshots, read whole"
        );
        assert_eq!(read, 20_000, "{engine}");
        // A snapshot then, an aborted one claiming more, and a few marks after them.
        producer.begin_transaction().unwrap();
        let (key, value) = progress_snapshot(&expected);
        write(&producer, topic, key, &value);
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
        producer.begin_transaction().unwrap();
        let mut bogus = expected.clone();
        bogus.insert("count".into(), i64::MAX);
        bogus.insert("ghost".into(), 1);
        let (key, value) = progress_snapshot(&bogus);
        write(&producer, topic, key, &value);
        write(&producer, topic, "sex", &i64::MAX.to_string());
        producer.flush(Duration::from_secs(30)).unwrap();
        producer.abort_transaction(Duration::from_secs(30)).unwrap();
        producer.begin_transaction().unwrap();
        for through in [300_000, 300_010] {
            write(&producer, topic, "count", &through.to_string());
        }
        write(&producer, topic, "new", "5");
        producer
            .commit_transaction(Duration::from_secs(30))
            .unwrap();
        expected.insert("count".into(), 300_010);
        expected.insert("new".into(), 5);
        let (marks, read) =
            read_progress_marks(&client(&bootstrap), topic, Duration::from_secs(60)).unwrap();
        eprintln!("{engine}: {read} records read for {} marks", marks.len());
        assert_eq!(marks, expected, "{engine}: snapshot + tail");
        assert!(
            read <= 256,
            "{engine}: read {read} records, not just the tail"
        );
        // The recount of the whole topic agrees.
        let consumer = reader(&bootstrap, "recount", topic, &[]);
        assert_eq!(recount(&all_records(&consumer)), expected, "{engine}");
    }
}

/// The load job (csv → Kafka, exactly once) committing every 10 ms: its progress topic gets
/// snapshots, a restart reads only the tail and finds its finished source's position, and the
/// rerun sends no row again.
#[test]
fn a_run_committing_often_leaves_snapshots_and_its_rerun_reads_only_the_tail() {
    let dir = scratch();
    let (_broker, bootstrap) = broker(&dir.path, "memory://");
    let rows = std::fs::read_to_string(repo().join(SAMPLE))
        .unwrap()
        .lines()
        .count()
        - 1;
    let load = |name: &str| {
        let mut job = weir();
        job.args(["run", "tests/fixtures/load_sex.toml"])
            .args(["--set", "kafka.commit_interval=\"10ms\""])
            .args(["--set", "sinks.sex.transactional_id=\"progress-test\""])
            .args(["--set", "sources.user_log.batch_size=10"])
            .env("BROKERS", &bootstrap)
            .env("CSV", repo().join(SAMPLE))
            .env("RATE", "450");
        let run = Background::start(
            job,
            &dir.path.join(format!("{name}.out")),
            &dir.path.join(format!("{name}.log")),
        );
        let (status, log) = run.wait(Duration::from_secs(120));
        assert!(status.success(), "{name}: {log}");
    };
    load("first");
    let topic = "progress-test.progress";
    let records = all_records(&reader(&bootstrap, "raw", topic, &[]));
    let snapshots = records.iter().filter(|(k, _)| k == "weir:snapshot").count();
    let (marks, read) =
        read_progress_marks(&client(&bootstrap), topic, Duration::from_secs(60)).unwrap();
    eprintln!(
        "{} progress records, {snapshots} snapshots; a start reads {read}",
        records.len()
    );
    assert!(
        snapshots >= 2,
        "{} records, {snapshots} snapshots",
        records.len()
    );
    assert_eq!(marks, recount(&records));
    // Stored under the stage and what its position means (the file, the event rate).
    let position = marks
        .iter()
        .find(|(key, _)| key.starts_with("sources.user_log#file="))
        .map(|(_, through)| *through);
    assert_eq!(position, Some(rows as i64), "{marks:?}");
    // Offsets count the transactions' commit markers too: the first chunk of 256 offsets holds
    // about 128 records, and the newest snapshot is within it.
    assert!(
        (read as usize) < records.len(),
        "read {read} of {} records",
        records.len()
    );
    load("again");
    let sent = count_to_end(&reader(&bootstrap, "sex", "sex", &[]));
    assert_eq!(sent, rows, "the rerun sent rows again");
}

/// Counts per (window start, gender) of `size_ms` windows over the sample as the loader stamps
/// it (10 rows per event second from 2015-11-11T00:00:00Z), recounted from the file.
fn recount_windows(size_ms: i64) -> BTreeMap<(i64, String), u64> {
    let start = 1_447_200_000_000i64;
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let mut windows = BTreeMap::new();
    for (n, line) in text.lines().skip(1).enumerate() {
        let gender = line.split(',').nth(9).unwrap().to_string();
        let window = (start + n as i64 * 100).div_euclid(size_ms) * size_ms;
        *windows.entry((window, gender)).or_insert(0) += 1;
    }
    windows
}

/// Windows written to `result` after its first `skip` records, per (start, gender).
fn windows_after(bootstrap: &str, skip: usize) -> BTreeMap<(i64, String), Vec<u64>> {
    let mut windows: BTreeMap<(i64, String), Vec<u64>> = BTreeMap::new();
    for (_, value) in read_topic(bootstrap, "result").into_iter().skip(skip) {
        let r: serde_json::Value = serde_json::from_str(&value).unwrap();
        windows
            .entry((
                r["window_start"].as_i64().unwrap(),
                r["gender"].as_str().unwrap().to_string(),
            ))
            .or_default()
            .push(r["count"].as_u64().unwrap());
    }
    windows
}

/// The counting job has emitted 1 s windows; rerun with `size = "2s"` it must refuse (its
/// stored progress means "every 1 s window through T"), naming both sizes and `--reset`; with
/// `--reset` it counts every 2 s window of the whole topic again, each once with its recounted
/// count; and a later plain restart goes on from the reset run's progress.
#[test]
fn an_edited_window_size_is_refused_and_a_reset_run_starts_over() {
    let dir = scratch();
    let (_broker, bootstrap) = broker(&dir.path, "memory://");
    let csv = repo().join(SAMPLE);
    let (status, log) = start_loader(&dir.path, &bootstrap, &csv, "100000", "load", &[])
        .wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    let counter = |name: &str, extra: &[&str]| {
        let mut count = weir();
        count
            .args(["run", "tests/fixtures/count_sex.toml"])
            .args(extra)
            .env("BROKERS", &bootstrap)
            .env("GROUP", "edits")
            .env("RESULT_CODEC", "json");
        Background::start(
            count,
            &dir.path.join(format!("{name}.out")),
            &dir.path.join(format!("{name}.log")),
        )
    };
    let last_second = *recount_windows(1000).keys().map(|(w, _)| w).max().unwrap();
    let run = counter("one-second", &[]);
    wait_for_window(
        &bootstrap,
        "result",
        last_second - 1000,
        Duration::from_secs(60),
        "1 s run",
    );
    let (status, log) = run.signal("TERM");
    assert!(status.success(), "{log}");
    let before = read_topic(&bootstrap, "result").len();

    let two_seconds = ["--set", "transforms.per_second.size=\"2s\""];
    let (status, log) = counter("edited", &two_seconds).wait(Duration::from_secs(60));
    assert!(!status.success(), "the edited run went on: {log}");
    for needed in [
        "transforms.per_second",
        "size=1000ms slide=1000ms",
        "size=2000ms slide=2000ms",
        "--reset",
    ] {
        assert!(log.contains(needed), "no `{needed}` in: {log}");
    }
    assert_eq!(
        read_topic(&bootstrap, "result").len(),
        before,
        "the refused run wrote"
    );

    let last_two = last_second.div_euclid(2000) * 2000;
    let reset = counter("reset", &[&two_seconds[..], &["--reset"]].concat());
    wait_for_window(
        &bootstrap,
        "result",
        last_two - 2000,
        Duration::from_secs(60),
        "reset run",
    );
    let (status, log) = reset.signal("TERM");
    assert!(status.success(), "{log}");
    let again = counter("again", &two_seconds);
    std::thread::sleep(Duration::from_secs(4));
    let (status, log) = again.signal("TERM");
    assert!(status.success(), "the run after the reset: {log}");

    let expected = recount_windows(2000);
    let written = windows_after(&bootstrap, before);
    let verdict = WindowVerdict::of(&expected, &written, |w| w < last_two - 2000);
    eprintln!(
        "after --reset: {} windows written, {} expected before {}; missing {}, conflicting {}, duplicates {}",
        written.len(),
        expected
            .keys()
            .filter(|(w, _)| *w < last_two - 2000)
            .count(),
        last_two - 2000,
        verdict.missing.len(),
        verdict.conflicting.len(),
        verdict.duplicates
    );
    verdict.assert_exact(0);
}

/// One run with a csv → Kafka loader (the only Kafka sink, finite) and a Kafka source feeding a
/// file sink: after the loader has finished, the source must go on committing its offsets (in
/// transactions without records), or a restart would read everything since then again.
#[test]
fn a_source_keeps_committing_after_the_last_kafka_sink_finished() {
    use rdkafka::consumer::Consumer;
    let dir = scratch();
    let (_broker, bootstrap) = broker(&dir.path, "memory://");
    common::kafka::create_topic(&bootstrap, "sex");
    let out = dir.path.join("seen.txt");
    let pipeline = dir.path.join("two_parts.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
[kafka]
brokers = "{bootstrap}"

[sources.orders]
type = "csv"
path = "{}"
rate = "max"

[sinks.orders_out]
type = "kafka"
inputs = ["orders"]
topic = "orders"
fields = ["gender"]

[sources.sex]
type = "kafka"
topic = "sex"
fields = ["gender"]
group_id = "keeps-committing"

[sinks.seen]
type = "file"
inputs = ["sex"]
path = "{}"
"#,
            repo().join(SAMPLE).display(),
            out.display()
        ),
    )
    .unwrap();
    let mut run = weir();
    run.args(["run", &pipeline.display().to_string()]);
    let run = Background::start(run, &dir.path.join("run.out"), &dir.path.join("run.log"));
    let orders = reader(&bootstrap, "orders", "orders", &[]);
    let rows = std::fs::read_to_string(repo().join(SAMPLE))
        .unwrap()
        .lines()
        .count()
        - 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut loaded = 0;
    while loaded < rows {
        assert!(
            Instant::now() < deadline,
            "the loader wrote {loaded} of {rows} rows"
        );
        std::thread::sleep(Duration::from_millis(300));
        loaded += count_to_end(&orders);
    }
    // The loader (the run's only Kafka sink) is done; now the source gets its records.
    let (status, log) = start_loader(
        &dir.path,
        &bootstrap,
        &repo().join(SAMPLE),
        "100000",
        "load",
        &[],
    )
    .wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let committed = || {
        let consumer: BaseConsumer = client(&bootstrap)
            .set("group.id", "keeps-committing")
            .create()
            .unwrap();
        let mut list = rdkafka::TopicPartitionList::new();
        list.add_partition("sex", 0);
        let got = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        match got.find_partition("sex", 0).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(n)) => n,
            _ => 0,
        }
    };
    let mut at = committed();
    while at < rows as i64 {
        assert!(
            Instant::now() < deadline,
            "the source's committed offset stayed at {at} of {rows} while it ran"
        );
        std::thread::sleep(Duration::from_millis(500));
        at = committed();
    }
    let (status, log) = run.signal("TERM");
    assert!(status.success(), "{log}");
    let seen = std::fs::read_to_string(&out).unwrap().lines().count();
    assert_eq!(seen, rows, "the file sink's records");
}
