//! Sink `kafka`: writes records to a topic, one message per record (one per window for the
//! `seed` codec), the record's event time as the message timestamp.
//!
//! Exactly once (`guarantee = "exactly-once"`, the default): every `kafka` sink of the run on the
//! same cluster writes through one transactional producer (see `kafka::transaction`), which
//! commits the results, the sources' offsets and the stages' progress marks together.
//!
//! At least once: the producer is idempotent, so librdkafka's retries neither duplicate nor
//! reorder. Each batch's delivery tickets ride on its messages and are let go only when the broker
//! has acknowledged the last of them; a message that still fails after the retries (by
//! `delivery.timeout.ms`) marks the tickets undelivered and becomes this stage's error.

use crate::ack::Acks;
use crate::kafka::codec::Encoder;
use crate::kafka::link::TopicLinks;
use crate::kafka::options::sink_options;
use crate::kafka::transaction::{Transactions, Transactor};
use crate::kafka::{
    Guarantee, KafkaError, KafkaOptions, PRODUCER_DEFAULTS, produce_waiting, topics,
    wait_for_cluster,
};
use crate::record::Batch;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionIssue, Rejected, Rejects, Sink, Stage, StageConfig,
    StageError, StageKind, StageMetrics, StageResult, blocking,
};
use async_trait::async_trait;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Options of the `kafka` sink (see [`KafkaOptions`]).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct KafkaSinkConfig(KafkaOptions);

/// The `kafka` sink type.
pub fn factory() -> Builtin<KafkaSinkConfig> {
    Builtin::new(
        StageKind::Sink,
        "kafka",
        "Writes records to a Kafka topic: in transactions with the sources' offsets (exactly once) or idempotently (at least once)",
        sink_options(),
    )
    .inheriting("kafka")
    .refusing(crate::kafka::options::SOURCE_ONLY)
}

impl BuiltinConfig for KafkaSinkConfig {
    fn check(&self) -> Vec<OptionIssue> {
        self.0.check_role(StageKind::Sink)
    }
}

impl StageConfig for KafkaSinkConfig {
    fn commits_progress(&self) -> bool {
        self.0.guarantee == Guarantee::ExactlyOnce
    }

    fn replaceable_while_running(&self) -> bool {
        // A successor with the same transactional id would fence this producer before it has
        // committed; handing the transaction over is not built.
        false
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let options = self.0.clone();
        let topic = options.topic.clone().unwrap_or_default();
        let links = cx.resources.get::<TopicLinks>();
        links.add_writer(options.brokers(), &topic);
        let transactor = (options.guarantee == Guarantee::ExactlyOnce).then(|| {
            let id = options
                .transactional_id
                .clone()
                .unwrap_or_else(|| format!("weir.{}", cx.pipeline));
            cx.resources.get::<Transactions>().add_writer(
                &options,
                &id,
                Arc::clone(&links),
                cx.resources.get::<crate::resume::Resumed>(),
            )
        });
        let encoder = Encoder::new(
            options.codec,
            &options.fields,
            options.key_codec,
            &options.key_fields,
        );
        Ok(Stage::Sink(Box::new(KafkaSink {
            options,
            topic,
            links,
            encoder,
            producer: None,
            transactor,
            connected: false,
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
            refused: 0,
        })))
    }
}

struct KafkaSink {
    options: KafkaOptions,
    topic: String,
    links: Arc<TopicLinks>,
    encoder: Encoder,
    producer: Option<ThreadedProducer<Deliveries>>,
    /// The run's transactional writer (exactly once); `None` at least once.
    transactor: Option<Arc<Transactor>>,
    /// Connected and the topic created.
    connected: bool,
    metrics: Arc<StageMetrics>,
    /// Where records the client refuses for good go (`<id>.errors`).
    rejects: Rejects,
    /// Records refused for good so far.
    refused: u64,
}

/// Counts a message the client refused for good and sends it to the sink's errors output: its
/// value as text, at its event time.
fn reject_message(
    rejects: &Rejects,
    metrics: &StageMetrics,
    value: &[u8],
    time: crate::record::Millis,
    error: &KafkaError,
) {
    metrics.add_dropped(crate::stage::DropReason::Invalid, 1);
    rejects.reject(Rejected {
        reason: &error.to_string(),
        at: &format!("event time {time}"),
        record: &String::from_utf8_lossy(value),
    });
}

/// The bytes of a message handed to the client: its key and value.
fn message_bytes(message: &crate::kafka::codec::Message<'_>) -> u64 {
    (message.value.len() + message.key.map_or(0, <[u8]>::len)) as u64
}

/// Travels with every message of one batch; when the last delivery report is in, the batch's
/// tickets go with it.
struct BatchDelivery {
    acks: Acks,
}

/// Receives delivery reports (on librdkafka's polling thread).
struct Deliveries {
    brokers: String,
    topic: String,
    links: Arc<TopicLinks>,
    /// The first delivery that failed: its partition (if one was picked) and the error.
    failure: Mutex<Option<(Option<i32>, ClientError)>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        crate::kafka::report_log(level, facility, message);
    }

    fn error(&self, error: ClientError, reason: &str) {
        crate::kafka::report_error(&error, reason);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<BatchDelivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<BatchDelivery>) {
        match result {
            Ok(message) => self.links.delivered(
                &self.brokers,
                &self.topic,
                message.partition(),
                message.offset(),
            ),
            Err((error, message)) => {
                batch.acks.fail();
                let partition = Some(message.partition()).filter(|&p| p >= 0);
                let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                failure.get_or_insert_with(|| (partition, error.clone()));
            }
        }
    }
}

impl KafkaSink {
    /// Connects and creates the topic if asked to (once); returns the client settings.
    async fn connect(&mut self) -> StageResult<ClientConfig> {
        let bootstrap = self.options.bootstrap().await?;
        let config = self.options.client_config(&bootstrap, PRODUCER_DEFAULTS)?;
        let timeout = self.options.connect_timeout();
        let probe = config.clone();
        tokio::task::spawn_blocking(move || wait_for_cluster(&probe, &bootstrap, timeout))
            .await
            .map_err(|e| StageError::joined("connecting", e))??;
        if self.options.create_topic {
            topics::ensure_topics(&config, &self.options, std::slice::from_ref(&self.topic))
                .await?;
        }
        self.connected = true;
        Ok(config)
    }

    async fn producer(&mut self) -> StageResult<&ThreadedProducer<Deliveries>> {
        if self.producer.is_none() {
            let config = self.connect().await?;
            let deliveries = Deliveries {
                brokers: self.options.brokers().to_string(),
                topic: self.topic.clone(),
                links: Arc::clone(&self.links),
                failure: Mutex::new(None),
            };
            let producer =
                config
                    .create_with_context(deliveries)
                    .map_err(|source| KafkaError::Client {
                        role: "producer",
                        source,
                    })?;
            self.producer = Some(producer);
        }
        Ok(self.producer.as_ref().expect("created above"))
    }

    fn check_failure(&self) -> Result<(), KafkaError> {
        let failure = self.producer.as_ref().and_then(|p| {
            p.context()
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        });
        match failure {
            None => Ok(()),
            Some((partition, source)) => Err(KafkaError::Delivery {
                topic: self.topic.clone(),
                partition,
                source,
            }),
        }
    }

    /// After a batch in which the client refused `refused` records for good (already sent to
    /// the errors output): at least once, their error records hold the batch's `acks` too, so
    /// the source commits past them only once those are delivered; the log says so at 1, 2, 4,
    /// 8… refusals.
    fn note_refused(&mut self, refused: u64, acks: Option<&Acks>) {
        if refused == 0 {
            return;
        }
        if let Some(acks) = acks {
            self.rejects.attach(acks);
        }
        let before = self.refused;
        self.refused += refused;
        if before == 0 || self.refused.ilog2() > before.ilog2() {
            tracing::warn!(
                "topic {}: {} records so far were larger than the client's message.max.bytes; \
                 they go to the sink's errors output (counted as dropped)",
                self.topic,
                self.refused
            );
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write(&mut self, mut batch: Batch) -> StageResult {
        if let Some(transactor) = self.transactor.clone() {
            if !self.connected {
                self.connect().await?;
            }
            transactor.start().await?;
            // The tickets go to the transaction alone: a copy held past its commit would keep
            // this batch's offsets out of the transaction that holds its records, so a crash
            // before the next commit would write them twice. Records refused here therefore do
            // not hold the source back (docs/errors.md).
            let acks = batch.take_acks();
            let encoder = &mut self.encoder;
            let (mut bytes, mut refused) = (0u64, 0u64);
            let (metrics, rejects) = (&self.metrics, &self.rejects);
            let written = blocking(|| {
                transactor.write(&self.topic, acks, |send| {
                    encoder.encode(&batch, |message| {
                        let (size, value, time) =
                            (message_bytes(&message), message.value, message.time);
                        match send(message) {
                            Err(e) if e.refuses_the_record_for_good() => {
                                refused += 1;
                                reject_message(rejects, metrics, value, time, &e);
                                Ok(())
                            }
                            sent => {
                                bytes += size;
                                sent
                            }
                        }
                    })
                })
            });
            self.metrics.add_bytes_written(bytes);
            self.note_refused(refused, None);
            return written.map_err(StageError::from);
        }
        self.producer().await?;
        self.check_failure()?;
        let delivery = Arc::new(BatchDelivery {
            acks: batch.take_acks(),
        });
        let producer = self.producer.as_ref().expect("created above");
        let topic = self.topic.as_str();
        let encoder = &mut self.encoder;
        let (mut bytes, mut refused) = (0u64, 0u64);
        let (metrics, rejects) = (&self.metrics, &self.rejects);
        let produced = blocking(|| {
            encoder.encode(&batch, |message| {
                let size = message_bytes(&message);
                let mut record =
                    BaseRecord::with_opaque_to(topic, Arc::clone(&delivery)).payload(message.value);
                if let Some(key) = message.key {
                    record = record.key(key);
                }
                if message.time >= 0 {
                    record = record.timestamp(message.time);
                }
                match produce_waiting(producer, record) {
                    Err(e) if e.refuses_the_record_for_good() => {
                        refused += 1;
                        reject_message(rejects, metrics, message.value, message.time, &e);
                        Ok(())
                    }
                    sent => {
                        bytes += size;
                        sent
                    }
                }
            })
        });
        self.metrics.add_bytes_written(bytes);
        self.note_refused(refused, Some(&delivery.acks));
        produced.map_err(|e: KafkaError| {
            delivery.acks.fail();
            e.into()
        })
    }

    async fn finish_failed_run(&mut self) -> StageResult {
        let started = match &self.transactor {
            Some(transactor) => transactor.is_started().await,
            None => self.producer.is_some(),
        };
        if !started {
            // Nothing was written: connecting now would only wait out `connect_timeout` for
            // a cluster the run has already given up on.
            return Ok(());
        }
        self.finish().await
    }

    async fn finish(&mut self) -> StageResult {
        if let Some(transactor) = &self.transactor {
            transactor.start().await?;
            blocking(|| transactor.finish_writer())?;
            self.links
                .writer_finished(self.options.brokers(), &self.topic);
            return Ok(());
        }
        if let Some(producer) = self.producer.as_ref() {
            blocking(|| {
                while producer.in_flight_count() > 0 {
                    let _ = producer.flush(Duration::from_millis(200));
                    if self.check_failure().is_err() {
                        break;
                    }
                }
            });
        }
        self.check_failure()?;
        self.links
            .writer_finished(self.options.brokers(), &self.topic);
        Ok(())
    }
}
