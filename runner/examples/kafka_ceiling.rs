//! The broker's own ceiling for the tutorial's messages, measured with the same client settings
//! weir's Kafka stages use (`weir::kafka::PRODUCER_DEFAULTS` / `CONSUMER_DEFAULTS`): produce N
//! one-byte messages (a gender digit, as topic `sex` holds) as fast as the producer goes, wait
//! for every delivery report, then read them all back. Prints one JSON line with both rates.
//!
//!     cargo run --release --example kafka_ceiling -- 127.0.0.1:9092 1000000

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use weir::kafka::{CONSUMER_DEFAULTS, PRODUCER_DEFAULTS};

const TOPIC: &str = "ceiling";

fn config(bootstrap: &str, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    config
}

fn produce(bootstrap: &str, count: usize) -> Duration {
    let producer: BaseProducer = config(bootstrap, PRODUCER_DEFAULTS).create().unwrap();
    let digits = [b"0", b"1", b"2"];
    let started = Instant::now();
    for i in 0..count {
        let mut record = BaseRecord::<[u8], [u8]>::to(TOPIC)
            .payload(&digits[i % 3][..])
            .timestamp(1_447_200_000_000 + i as i64 * 100);
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

fn consume(bootstrap: &str, count: usize) -> Duration {
    let mut config = config(bootstrap, CONSUMER_DEFAULTS);
    config.set("group.id", "ceiling");
    let consumer: BaseConsumer = config.create().unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let started = Instant::now();
    let mut seen = 0;
    while seen < count {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(_)) => seen += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => eprintln!("consume: {e}"),
            None => panic!("no message for 10 s after {seen} of {count}"),
        }
    }
    started.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bootstrap = args.get(1).map_or("127.0.0.1:9092", String::as_str);
    let count: usize = args
        .get(2)
        .map_or(1_000_000, |n| n.parse().expect("a count"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin: AdminClient<DefaultClientContext> = config(bootstrap, &[]).create().unwrap();
        admin
            .create_topics(
                &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
    });
    let produced = produce(bootstrap, count);
    let consumed = consume(bootstrap, count);
    println!(
        "{{\"messages\": {count}, \"produce_s\": {:.3}, \"consume_s\": {:.3}, \"produce_per_s\": {:.0}, \"consume_per_s\": {:.0}}}",
        produced.as_secs_f64(),
        consumed.as_secs_f64(),
        count as f64 / produced.as_secs_f64(),
        count as f64 / consumed.as_secs_f64()
    );
}
