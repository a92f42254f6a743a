//! `weir consume TOPIC` and `weir produce TOPIC`: look at a topic and write to one from the
//! shell, as kcat or Kafka's console tools do, without writing a pipeline. Both speak to any
//! Kafka-compatible cluster (`--brokers`, else $WEIR_KAFKA_BROKERS, else 127.0.0.1:9092) and
//! give up with one clear error when it cannot be reached within 10 s.

use crate::cli::TapFormat;
use crate::tap_table::TapTable;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir::kafka::ClientLog;

/// Where the cluster is when neither `--brokers` nor $WEIR_KAFKA_BROKERS says.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// How long to wait for the cluster before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `--brokers`, else $WEIR_KAFKA_BROKERS, else [`DEFAULT_BROKERS`].
pub fn brokers(flag: Option<String>) -> String {
    flag.or_else(|| {
        std::env::var(crate::BROKERS_ENV)
            .ok()
            .filter(|b| !b.trim().is_empty())
    })
    .unwrap_or_else(|| DEFAULT_BROKERS.to_string())
}

/// What `weir consume` reads and how it prints it.
pub struct Consume {
    pub topic: String,
    pub brokers: String,
    pub from_beginning: bool,
    pub committed_only: bool,
    pub format: TapFormat,
    pub count: Option<u64>,
    pub to_end: bool,
}

/// A connected client for `brokers`, or the error printed.
fn connected(brokers: &str) -> Result<ClientConfig, ExitCode> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    if let Err(e) = weir::kafka::wait_for_cluster(&config, brokers, CONNECT_TIMEOUT) {
        eprintln!("error: {e}");
        return Err(ExitCode::FAILURE);
    }
    Ok(config)
}

/// Prints the records of a topic, one per line, until `count` records, the end of every
/// partition (`to_end`), or Ctrl-C.
pub fn consume(args: Consume) -> ExitCode {
    let config = match connected(&args.brokers) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let consumer: BaseConsumer<ClientLog> = match config
        .clone()
        .set("group.id", format!("weir-consume-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set(
            "isolation.level",
            if args.committed_only {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create_with_context(ClientLog::default())
    {
        Ok(consumer) => consumer,
        Err(e) => {
            eprintln!("error: cannot make a Kafka consumer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let partitions = match partitions_of(&config, &args.topic) {
        Ok(partitions) => partitions,
        Err(code) => return code,
    };
    if partitions.is_empty() {
        eprintln!(
            "error: topic {} does not exist at {}",
            args.topic, args.brokers
        );
        return ExitCode::FAILURE;
    }
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        if let Err(e) = assignment.add_partition_offset(&args.topic, *partition, start) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = consumer.assign(&assignment) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let mut table = TapTable::new(false);
    let mut ended = BTreeSet::new();
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    while args.count.is_none_or(|n| printed < n) {
        if args.to_end && ended.len() == partitions.len() {
            break;
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                ended.remove(&message.partition());
                let record = describe(&message, args.format);
                let line = match args.format {
                    TapFormat::Json => format!("{record}\n"),
                    TapFormat::Table => table.lines(&args.topic, &record),
                };
                let mut out = stdout.lock();
                if out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return ExitCode::SUCCESS; // the reader went away (`| head`)
                }
                printed += 1;
            }
            Some(Err(ClientError::PartitionEOF(partition))) => {
                ended.insert(partition);
            }
            Some(Err(e)) => eprintln!("warning: {e}"),
            None => {}
        }
    }
    ExitCode::SUCCESS
}

/// One record as printed, a JSON object in this order: partition, offset, timestamp, key and
/// value (a JSON value as it is, other text as a string; always as text in a table).
fn describe<M: Message>(message: &M, format: TapFormat) -> String {
    let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
    let value = text(message.payload());
    let value = match (format, &value) {
        (TapFormat::Json, Some(v)) => serde_json::from_str(v).unwrap_or(Value::String(v.clone())),
        (_, v) => v.clone().map_or(Value::Null, Value::String),
    };
    let timestamp = message
        .timestamp()
        .to_millis()
        .map_or(Value::Null, Value::from);
    format!(
        "{{\"partition\":{},\"offset\":{},\"timestamp\":{timestamp},\"key\":{},\"value\":{value}}}",
        message.partition(),
        message.offset(),
        Value::from(text(message.key())),
    )
}

/// The partitions of `topic` (none when it does not exist), or the error printed.
fn partitions_of(config: &ClientConfig, topic: &str) -> Result<Vec<i32>, ExitCode> {
    let probe: BaseConsumer = config.create().map_err(|e| {
        eprintln!("error: cannot make a Kafka client: {e}");
        ExitCode::FAILURE
    })?;
    match probe.fetch_metadata(Some(topic), CONNECT_TIMEOUT) {
        Ok(metadata) => Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default()),
        Err(e) => {
            eprintln!("error: reading the metadata of {topic}: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Creates `topic` with one partition.
fn create_topic(config: &ClientConfig, topic: &str) -> Result<(), ExitCode> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let fail = |why: String| {
        eprintln!("error: creating topic {topic}: {why}");
        ExitCode::FAILURE
    };
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        config.create().map_err(|e| fail(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .map_err(|e| fail(e.to_string()))?;
    for result in results {
        result.map_err(|(_, code)| fail(code.to_string()))?;
    }
    Ok(())
}

/// Writes each line of standard input to `topic` as one record (with `key_separator`, the text
/// before its first occurrence is the key); says how many on standard error. A topic that does
/// not exist is an error unless `create` (then it gets one partition).
pub fn produce(topic: &str, brokers: &str, key_separator: Option<&str>, create: bool) -> ExitCode {
    let config = match connected(brokers) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match partitions_of(&config, topic) {
        Err(code) => return code,
        Ok(partitions) if partitions.is_empty() && !create => {
            eprintln!(
                "error: topic {topic} does not exist at {brokers}; `--create` makes it (one \
                 partition), as does a pipeline's kafka sink"
            );
            return ExitCode::FAILURE;
        }
        Ok(partitions) if partitions.is_empty() => {
            if let Err(code) = create_topic(&config, topic) {
                return code;
            }
        }
        Ok(_) => {}
    }
    let producer: BaseProducer<Deliveries> = match config
        .clone()
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())
    {
        Ok(producer) => producer,
        Err(e) => {
            eprintln!("error: cannot make a Kafka producer: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut sent = 0u64;
    for (number, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                eprintln!("error: reading standard input, line {}: {e}", number + 1);
                return ExitCode::FAILURE;
            }
        };
        let (key, value) = match key_separator.and_then(|sep| line.split_once(sep)) {
            Some((key, value)) => (Some(key), value),
            None => (None, line.as_str()),
        };
        let mut record = BaseRecord::<str, str>::to(topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    ClientError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    eprintln!("error: line {}: {e}", number + 1);
                    return ExitCode::FAILURE;
                }
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    if let Err(e) = producer.flush(Duration::from_secs(30)) {
        eprintln!("error: {sent} records handed over, but not all were confirmed: {e}");
        return ExitCode::FAILURE;
    }
    let failed = producer.context().failed.load(Ordering::Acquire);
    if failed > 0 {
        let why = producer
            .context()
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        eprintln!("error: {failed} of {sent} records were not written to {topic}: {why}");
        return ExitCode::FAILURE;
    }
    eprintln!("{sent} records written to {topic}");
    ExitCode::SUCCESS
}

/// Counts the records the cluster did not take, keeping the first reason.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl rdkafka::ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::AcqRel);
            self.first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| e.to_string());
        }
    }
}
