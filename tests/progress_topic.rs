//! The progress topic against a real broker on both storage engines: a starting run reads it
//! from the end back to the newest snapshot that covers the rest (not whole), skips what aborted
//! transactions wrote, and gets the marks a full reading gives; a run that commits often leaves
//! such snapshots, and a finished source read back from them does not send its file again.

mod common;

use common::kafka::{broker, count_to_end, reader, scratch};
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
    assert_eq!(marks.get("sources.user_log").copied(), Some(rows as i64), "{marks:?}");
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
