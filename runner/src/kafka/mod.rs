//! What the `kafka` source and sink share: their options (one struct for both roles, inherited
//! from the pipeline's top-level `[kafka]` table), the client settings we ship, connecting with a
//! bounded wait, creating topics, the embedded broker, and the link that lets a source end after
//! a sink of the same pipeline has finished writing its topic.

pub mod broker_users;
pub mod codec;
pub mod embedded;
mod error;
pub mod link;
pub mod options;
pub mod security;
pub mod storage;
pub mod topics;
pub mod transaction;

pub use error::KafkaError;
pub use options::{Guarantee, KafkaOptions, Start};

use crate::stage::{PartitionFigures, StageMetrics};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `brokers` value that starts (or reuses) the broker inside this process.
pub const EMBEDDED: &str = "embedded";

/// Consumer settings weir ships with; the `options` table overrides any of them.
///
/// Offsets are committed by the source itself once records are delivered, so librdkafka must not
/// commit or store them; partition ends are reported so a finite run can tell it is caught up;
/// a fetch waits at the broker up to 500 ms for new data (Kafka's default; a broker answers
/// as soon as data comes, so the wait only sets how often an idle consumer asks again: 100 ms
/// made an idle pipeline's broker answer 10 fetches a second. Tried once before and dropped when
/// a consumer-group test lost records under load, which the broker's fetch bug fixed since
/// explains — tests/groups.rs);
/// a short queue back-off keeps small-message throughput up; fetches
/// of at most 512 KiB bound memory, since librdkafka keeps ~300 bytes per fetched message and a
/// 50 MB fetch of one-byte messages would hold millions (a larger message still comes whole);
/// prefetching stops at 50,000 queued messages (librdkafka's default, 100,000, holds two such
/// fetches of one-byte messages: ~15 MB more at the same speed on the peer rig, BENCHMARKS.md).
pub const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("fetch.max.bytes", "524288"),
    ("queued.min.messages", "50000"),
    ("message.max.bytes", "524288"),
    ("enable.auto.commit", "false"),
    ("enable.auto.offset.store", "false"),
    ("enable.partition.eof", "true"),
    ("session.timeout.ms", "6000"),
    ("fetch.wait.max.ms", "500"),
    ("fetch.queue.backoff.ms", "10"),
    ("topic.metadata.refresh.interval.ms", "10000"),
];

/// Producer settings weir ships with; the `options` table overrides any of them.
///
/// Idempotence makes retries safe (no duplicates, no reordering) and is required for correct
/// results on some brokers; a short linger batches without adding visible latency; a queue of
/// 20,000 messages keeps the producer fed while bounding its memory.
pub const PRODUCER_DEFAULTS: &[(&str, &str)] = &[
    ("queue.buffering.max.messages", "20000"),
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("linger.ms", "5"),
    ("delivery.timeout.ms", "120000"),
];

/// Settings librdkafka applies to producers only (with the aliases it knows them by). A
/// consumer made from a producer's settings — the metadata probe every producer starts with —
/// leaves them out, where librdkafka would warn for each that it ignores it.
const PRODUCER_ONLY: &[&str] = &[
    "acks",
    "request.required.acks",
    "linger.ms",
    "queue.buffering.max.ms",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "batch.num.messages",
    "batch.size",
    "compression.type",
    "compression.codec",
    "compression.level",
    "enable.idempotence",
    "enable.gapless.guarantee",
    "delivery.timeout.ms",
    "message.timeout.ms",
    "retries",
    "message.send.max.retries",
    "request.timeout.ms",
    "transactional.id",
    "transaction.timeout.ms",
    "partitioner",
    "sticky.partitioning.linger.ms",
    "queuing.strategy",
    "produce.offset.report",
    "delivery.report.only.error",
];

/// `config` without its producer-only settings, for a consumer made from it. (A copy with keys
/// taken out, not one built from `config_map()`, which shows secrets such as `sasl.password` as
/// a placeholder.)
pub fn consumer_config(config: &ClientConfig) -> ClientConfig {
    let mut consumer = config.clone();
    for key in PRODUCER_ONLY {
        consumer.remove(key);
    }
    consumer
}

impl KafkaOptions {
    /// The bootstrap address list, starting the embedded broker first when `brokers` says
    /// `"embedded"`.
    pub async fn bootstrap(&self) -> Result<String, KafkaError> {
        if self.brokers() == EMBEDDED {
            Ok(embedded::ensure(&self.embedded).await?)
        } else {
            Ok(self.brokers().to_string())
        }
    }

    /// Client settings: `defaults`, then the user's `options`, then `tls`/`sasl`, with
    /// `bootstrap` as the brokers. Fails only when a `sasl.password_file` cannot be read.
    pub fn client_config(
        &self,
        bootstrap: &str,
        defaults: &[(&str, &str)],
    ) -> Result<ClientConfig, KafkaError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        config.set("client.id", "weir");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.options {
            config.set(key, value.to_string());
        }
        security::apply(&mut config, self.tls.as_ref(), self.sasl.as_ref())
            .map_err(|why| KafkaError::Security { why })?;
        Ok(config)
    }
}

/// Waits until the cluster at `bootstrap` answers a metadata request, for at most `timeout`;
/// then fails with a message that names the address and the key to change. Runs blocking calls,
/// so call it from a blocking thread.
pub fn wait_for_cluster(
    config: &ClientConfig,
    bootstrap: &str,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let probe: BaseConsumer<Probe> = consumer_config(config)
        .create_with_context(Probe::default())
        .map_err(|source| KafkaError::Client {
            role: "client",
            source,
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left
            .min(Duration::from_secs(2))
            .max(Duration::from_millis(100));
        let answer = probe.fetch_metadata(None, attempt);
        // Serves the client's error and log events (a failed TLS handshake says why there).
        while let Some(event) = probe.poll(Duration::from_millis(10)) {
            if let Err(e) = event {
                probe.context().note(&e.to_string());
            }
        }
        if answer.is_err()
            && let Some(reason) = probe.context().login_refused()
        {
            // A refused login does not get better by trying again.
            return Err(KafkaError::LoginRefused {
                bootstrap: bootstrap.to_string(),
                username: config.get("sasl.username").unwrap_or_default().to_string(),
                reason,
            });
        }
        match answer {
            Ok(_) => return Ok(()),
            Err(last) if Instant::now() >= deadline => {
                let plaintext = config
                    .get("security.protocol")
                    .is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
                let reported = probe.context().last_problem();
                return Err(KafkaError::Unreachable {
                    bootstrap: bootstrap.to_string(),
                    waited: timeout,
                    last: match reported {
                        Some(problem) => format!("{last}; the client reported: {problem}"),
                        None => last.to_string(),
                    },
                    plaintext,
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Hands one message to `producer`, waiting while its queue is full; any other refusal becomes
/// [`KafkaError::Produce`]. Blocking.
pub fn produce_waiting<C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<(), KafkaError> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((ClientError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((source, back)) => {
                return Err(KafkaError::Produce {
                    topic: back.topic.to_string(),
                    source,
                });
            }
        }
    }
}

/// A consumer with `config` whose reports go to weir's log; `role` names it in the error.
pub fn consumer(
    config: &ClientConfig,
    role: &'static str,
) -> Result<BaseConsumer<ClientLog>, KafkaError> {
    consumer_with(config, role, ClientLog::default())
}

/// [`consumer`] with the context `log` (e.g. one that reports partition figures).
pub fn consumer_with(
    config: &ClientConfig,
    role: &'static str,
    log: ClientLog,
) -> Result<BaseConsumer<ClientLog>, KafkaError> {
    config
        .create_with_context(log)
        .map_err(|source| KafkaError::Client { role, source })
}

/// How often a source's client reports its partitions (`statistics.interval.ms`).
pub const PARTITION_REPORT_MS: &str = "1000";

/// The partitions a consumer reads, from its client's statistics: position, end (the last
/// stable offset where the client reports one, else the high watermark) and commit point.
pub fn partition_figures(stats: &rdkafka::Statistics) -> Vec<PartitionFigures> {
    let mut figures: Vec<PartitionFigures> = stats
        .topics
        .values()
        .flat_map(|topic| {
            topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.desired)
                .map(|p| PartitionFigures {
                    topic: topic.topic.clone(),
                    partition: p.partition,
                    position: p.app_offset,
                    end: if p.ls_offset >= 0 {
                        p.ls_offset
                    } else {
                        p.hi_offset
                    },
                    committed: p.committed_offset,
                })
        })
        .collect();
    figures.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    figures
}

/// The client context of [`wait_for_cluster`]'s probe: logs like [`ClientLog`], and keeps what
/// librdkafka said about the failed connections (a TLS handshake that failed says why only
/// there), else its last error.
#[derive(Default)]
struct Probe {
    /// The last connection failure librdkafka logged (facility `FAIL`).
    connection: std::sync::Mutex<Option<String>>,
    /// The last other error.
    other: std::sync::Mutex<Option<String>>,
}

impl Probe {
    fn last_problem(&self) -> Option<String> {
        let read = |m: &std::sync::Mutex<Option<String>>| {
            m.lock().unwrap_or_else(|p| p.into_inner()).clone()
        };
        read(&self.connection).or_else(|| read(&self.other))
    }

    /// Why the cluster refused the SASL login, if that is what the last connection failure
    /// was (librdkafka: "SASL authentication error: <reason> (after …)").
    fn login_refused(&self) -> Option<String> {
        const MARK: &str = "SASL authentication error: ";
        let connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        let failure = connection.as_deref()?;
        let reason = &failure[failure.find(MARK)? + MARK.len()..];
        let reason = reason.split(" (after ").next().unwrap_or(reason);
        Some(reason.to_string())
    }

    fn note(&self, problem: &str) {
        *self.other.lock().unwrap_or_else(|p| p.into_inner()) = Some(problem.to_string());
    }
}

impl ClientContext for Probe {
    // The probe's reports are the reason in its own error if the cluster stays out of reach,
    // and noise if it answers a moment later: debug level either way (an unreachable broker
    // used to print ~390 warnings in 10 s, the same few lines again and again).
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "FAIL" {
            *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.to_string());
        }
        tracing::debug!("kafka client ({level:?}): {facility}: {message}");
    }

    fn error(&self, error: ClientError, reason: &str) {
        self.note(reason);
        tracing::debug!("kafka client: {error}: {reason}");
    }
}

impl ConsumerContext for Probe {}

/// Routes librdkafka's own reports into weir's log: problems as warnings (librdkafka retries
/// them), chatter at debug level, and "reached the end of a partition" (a normal event that
/// librdkafka also reports as an error) not at all.
/// With `partitions`, it also records the partitions the consumer reads there each time the
/// client reports its statistics.
#[derive(Clone, Debug, Default)]
pub struct ClientLog {
    /// Where the partition figures go.
    pub partitions: Option<Arc<StageMetrics>>,
}

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        report_log(level, facility, message);
    }

    fn error(&self, error: ClientError, reason: &str) {
        report_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(metrics) = &self.partitions {
            metrics.set_partitions(partition_figures(&statistics));
        }
    }
}

impl ConsumerContext for ClientLog {}

/// [`ClientLog`]'s handling of a librdkafka log line, for other client contexts.
pub fn report_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    use RDKafkaLogLevel::{Alert, Critical, Emerg, Error, Warning};
    if matches!(level, Emerg | Alert | Critical | Error | Warning) && !run_is_over() {
        tracing::warn!("kafka client: {facility}: {message}");
    } else {
        tracing::debug!("kafka client: {facility}: {message}");
    }
}

/// [`ClientLog`]'s handling of a librdkafka error report, for other client contexts.
pub fn report_error(error: &ClientError, reason: &str) {
    if matches!(
        error,
        ClientError::Global(RDKafkaErrorCode::PartitionEOF) | ClientError::PartitionEOF(_)
    ) {
        return;
    }
    if run_is_over() {
        tracing::debug!("kafka client: {reason}");
    } else {
        tracing::warn!("kafka client: {reason}");
    }
}

/// Set once a run has ended and reported; see [`run_over`].
static RUN_OVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Tells the client log that the run has ended: every stage has finished and its results are
/// delivered and committed. The process is exiting; clients that still exist (a transactional
/// producer's commit thread lets go of it a moment later) may find the embedded broker already
/// gone, and their reports of that are logged at debug level instead of as warnings.
pub fn run_over() {
    RUN_OVER.store(true, std::sync::atomic::Ordering::Release);
}

fn run_is_over() -> bool {
    RUN_OVER.load(std::sync::atomic::Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::{PRODUCER_DEFAULTS, consumer_config};
    use rdkafka::ClientConfig;

    #[test]
    fn a_consumer_made_from_producer_settings_keeps_the_rest_secrets_included() {
        let mut producer = ClientConfig::new();
        for (key, value) in PRODUCER_DEFAULTS {
            producer.set(*key, *value);
        }
        producer
            .set("transactional.id", "weir.job")
            .set("bootstrap.servers", "127.0.0.1:9092")
            .set("sasl.password", "hunter2");
        let consumer = consumer_config(&producer);
        for (key, _) in PRODUCER_DEFAULTS {
            assert_eq!(consumer.get(key), None, "{key}");
        }
        assert_eq!(consumer.get("transactional.id"), None);
        assert_eq!(consumer.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(consumer.get("sasl.password"), Some("hunter2"));
    }
}
