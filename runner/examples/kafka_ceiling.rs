//! The broker's own ceiling for the tutorial's messages, measured with the same client settings
//! weir's Kafka stages use (`weir::kafka::PRODUCER_DEFAULTS` / `CONSUMER_DEFAULTS`): produce N
//! one-byte messages (a gender digit, as topic `sex` holds) as fast as the producer goes, wait
//! for every delivery report, then read them all back. Prints one JSON line with the rates.
//!
//!     cargo run --release --example kafka_ceiling -- 127.0.0.1:9092 1000000
//!     kafka_ceiling BOOTSTRAP N [both|produce|consume] [--topic T] [--partitions P] [KEY=VALUE ...]
//!
//! `--per-second R` stamps the messages R to a second of event time (default 10, the tutorial's
//! rate; message i at 2015-11-11 00:00 UTC + i/R s).
//! `--partitions P` creates the topic with P partitions (the messages spread over them; `consume`
//! reads partition 0 only, so use it with one). `produce` only fills the topic; `consume` only reads N messages of a topic filled before (a
//! durable broker's stored data); `KEY=VALUE` overrides a consumer setting (e.g.
//! `fetch.max.bytes=2097152`), and `--defaults=librdkafka` starts from librdkafka's own defaults
//! instead of weir's. The consume time runs from the first poll to the N-th message, so it
//! includes the wait for the first answer.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use weir::kafka::{CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};

fn config(bootstrap: &str, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    config
}

fn produce(bootstrap: &str, topic: &str, count: usize, per_second: i64) -> Duration {
    let producer: BaseProducer = config(bootstrap, PRODUCER_DEFAULTS).create().unwrap();
    let digits = [b"0", b"1", b"2"];
    let started = Instant::now();
    for i in 0..count {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic)
            .payload(&digits[i % 3][..])
            .timestamp(1_447_200_000_000 + i as i64 * 1000 / per_second);
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
    producer.flush(Duration::from_secs(120)).unwrap();
    started.elapsed()
}

/// How a consume run is set up: weir's defaults or librdkafka's, plus overrides.
struct ConsumeSettings {
    weir_defaults: bool,
    overrides: Vec<(String, String)>,
}

/// Reads `count` messages; returns the time to the first one and to the last.
fn consume(
    bootstrap: &str,
    topic: &str,
    count: usize,
    settings: &ConsumeSettings,
) -> (Duration, Duration) {
    let defaults = if settings.weir_defaults {
        CONSUMER_DEFAULTS
    } else {
        &[("enable.partition.eof", "true")]
    };
    let mut config = config(bootstrap, defaults);
    config.set("group.id", "ceiling");
    for (key, value) in &settings.overrides {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let started = Instant::now();
    let mut first = None;
    let mut seen = 0;
    while seen < count {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => {
                first.get_or_insert_with(|| started.elapsed());
                seen += 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => panic!("no message for 10 s after {seen} of {count}"),
        }
    }
    (first.unwrap_or_default(), started.elapsed())
}

fn main() {
    let mut positional = Vec::new();
    let mut topic = "ceiling".to_string();
    let mut partitions = 1;
    let mut per_second: i64 = 10;
    let mut settings = ConsumeSettings {
        weir_defaults: true,
        overrides: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--topic" {
            topic = args.next().expect("--topic needs a name");
        } else if arg == "--partitions" {
            partitions = args
                .next()
                .and_then(|p| p.parse().ok())
                .expect("--partitions needs a number");
        } else if arg == "--per-second" {
            per_second = args
                .next()
                .and_then(|p| p.parse().ok())
                .filter(|p| *p > 0)
                .expect("--per-second needs a positive number");
        } else if arg == "--defaults=librdkafka" {
            settings.weir_defaults = false;
        } else if let Some((key, value)) = arg.split_once('=') {
            settings.overrides.push((key.into(), value.into()));
        } else {
            positional.push(arg);
        }
    }
    let bootstrap = positional.first().map_or("127.0.0.1:9092", String::as_str);
    let count: usize = positional
        .get(1)
        .map_or(1_000_000, |n| n.parse().expect("a count"));
    let mode = positional.get(2).map_or("both", String::as_str);
    let (fill, read) = match mode {
        "both" => (true, true),
        "produce" => (true, false),
        "consume" => (false, true),
        other => panic!("mode `{other}` is not both, produce or consume"),
    };
    let mut line = format!("{{\"messages\": {count}");
    if fill {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let admin: AdminClient<DefaultClientContext> = config(bootstrap, &[]).create().unwrap();
            admin
                .create_topics(
                    &[NewTopic::new(
                        &topic,
                        partitions,
                        TopicReplication::Fixed(1),
                    )],
                    &AdminOptions::new(),
                )
                .await
                .unwrap();
        });
        let produced = produce(bootstrap, &topic, count, per_second);
        line += &format!(
            ", \"produce_s\": {:.3}, \"produce_per_s\": {:.0}",
            produced.as_secs_f64(),
            count as f64 / produced.as_secs_f64()
        );
    }
    if read {
        let (first, consumed) = consume(bootstrap, &topic, count, &settings);
        line += &format!(
            ", \"first_message_s\": {:.3}, \"consume_s\": {:.3}, \"consume_per_s\": {:.0}",
            first.as_secs_f64(),
            consumed.as_secs_f64(),
            count as f64 / consumed.as_secs_f64()
        );
    }
    println!("{line}}}");
}
