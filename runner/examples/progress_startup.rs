//! What reading the progress marks costs a starting run after a long history of commits: fills
//! a progress topic the way N commits of a two-stage job leave it (a window's mark and a csv
//! source's position move at each commit) — once as this version writes it (a snapshot of every
//! mark after each 100 mark records) and once as versions before snapshots wrote it — then
//! reads each back with the reader a starting run uses, timing it. Prints one JSON line.
//!
//!     cargo run --release --example progress_startup -- 127.0.0.1:9092 1000000 [--runs 3]

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use weir::kafka::PRODUCER_DEFAULTS;
use weir::kafka::transaction::{progress_snapshot, read_progress_marks};

const STAGES: [&str; 2] = ["count", "sex"];

fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

fn send(producer: &BaseProducer, topic: &str, key: &str, value: &str) {
    let mut record = BaseRecord::<str, str>::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(1));
            }
            Err((e, _)) => panic!("produce failed: {e}"),
        }
    }
    producer.poll(Duration::ZERO);
}

/// Writes `commits` commits' marks to `topic`; with `snapshots`, a snapshot after each 100 mark
/// records. Returns the marks a reader must find.
fn fill(bootstrap: &str, topic: &str, commits: i64, snapshots: bool) -> BTreeMap<String, i64> {
    let mut producer_config = config(bootstrap);
    for (k, v) in PRODUCER_DEFAULTS {
        producer_config.set(*k, *v);
    }
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let made = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ));
    for result in made.expect("create_topics") {
        result.expect("the topic is created");
    }
    let producer: BaseProducer = producer_config.create().expect("producer");
    let mut known = BTreeMap::new();
    let mut since_snapshot = 0;
    for commit in 0..commits {
        for stage in STAGES {
            let through = commit * 200;
            send(&producer, topic, stage, &through.to_string());
            known.insert(stage.to_string(), through);
            since_snapshot += 1;
        }
        if snapshots && since_snapshot >= 100 {
            let (key, value) = progress_snapshot(&known);
            send(&producer, topic, key, &value);
            since_snapshot = 0;
        }
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    known
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bootstrap = args.first().expect("BOOTSTRAP COMMITS [--runs R]");
    let commits: i64 = args.get(1).and_then(|n| n.parse().ok()).expect("COMMITS");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let mut report = Vec::new();
    for (name, snapshots) in [("with snapshots", true), ("without snapshots", false)] {
        let topic = format!(
            "bench-{}.progress",
            if snapshots { "snapshots" } else { "legacy" }
        );
        let filled = Instant::now();
        let expected = fill(bootstrap, &topic, commits, snapshots);
        let fill_s = filled.elapsed().as_secs_f64();
        let mut seconds = Vec::new();
        let mut records = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let (marks, read) =
                read_progress_marks(&config(bootstrap), &topic, Duration::from_secs(600))
                    .expect("reads");
            seconds.push(started.elapsed().as_secs_f64());
            assert_eq!(marks, expected, "{name}: the marks read back differ");
            records = read;
        }
        report.push(format!(
            "{{\"case\":\"{name}\",\"commits\":{commits},\"fill_s\":{fill_s:.1},\
             \"records_read\":{records},\"read_s\":{seconds:?}}}"
        ));
    }
    println!("[{}]", report.join(","));
}
