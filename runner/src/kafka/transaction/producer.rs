//! The transactional producer of a [`Transactor`](super::Transactor): its settings, connecting
//! (waiting for the cluster within `connect_timeout`), the progress topic weir itself needs, and
//! `init_transactions`, which fences any older producer with the same id; and its delivery
//! reports, which tell the transactor whether anything written could not be delivered.

use crate::kafka::link::TopicLinks;
use crate::kafka::{KafkaError, KafkaOptions, PRODUCER_DEFAULTS, report_error, report_log, topics};
use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one transactional call may take before it counts as failed (a commit that times out
/// is tried again: rides out a broker away for ~20 s, and gives up within about half a minute
/// when it does not come back).
pub(super) const TXN_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings a transactional producer adds to [`PRODUCER_DEFAULTS`]: a transaction may stay open
/// as long as a message may take to be delivered (librdkafka requires it).
const TRANSACTIONAL_DEFAULTS: &[(&str, &str)] = &[("transaction.timeout.ms", "120000")];

/// A consumer-group member's transactions: when a member dies mid-transaction nobody takes its
/// transactional id over, so the broker aborts what it left open only after this timeout, and
/// until then read_committed readers of what it wrote (the merging half of a shared window) wait.
const MEMBER_TRANSACTIONAL_DEFAULTS: &[(&str, &str)] = &[
    ("transaction.timeout.ms", "10000"),
    ("delivery.timeout.ms", "10000"),
];

/// Delivery reports of the transactional producer.
pub(super) struct TxnDeliveries {
    brokers: String,
    links: Arc<TopicLinks>,
    pub(super) failure: Mutex<Option<(String, Option<i32>, ClientError)>>,
}

impl ClientContext for TxnDeliveries {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        report_log(level, facility, message);
    }

    fn error(&self, error: ClientError, reason: &str) {
        report_error(&error, reason);
    }
}

impl ProducerContext for TxnDeliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => self.links.delivered(
                &self.brokers,
                message.topic(),
                message.partition(),
                message.offset(),
            ),
            // An abort purges the transaction's unsent messages: that is the abort working, and
            // whatever called for it is dealt with there (a fence is sat out, a failure ends the
            // run), so a purge is no delivery failure of its own.
            Err((
                ClientError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => {}
            Err((error, message)) => {
                let partition = Some(message.partition()).filter(|&p| p >= 0);
                let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
                failure
                    .get_or_insert_with(|| (message.topic().to_string(), partition, error.clone()));
            }
        }
    }
}

/// Connects to the cluster of `options` as the transactional producer `transactional_id`,
/// creates `progress_topic`, and fences older producers of the id; returns the producer and the
/// bootstrap address it used. `member`: a consumer-group member's producer (shorter timeouts).
pub(super) async fn connect(
    options: &KafkaOptions,
    transactional_id: &str,
    progress_topic: &str,
    member: bool,
    links: &Arc<TopicLinks>,
) -> Result<(ThreadedProducer<TxnDeliveries>, String), KafkaError> {
    let bootstrap = options.bootstrap().await?;
    let defaults = if member {
        [
            PRODUCER_DEFAULTS,
            TRANSACTIONAL_DEFAULTS,
            MEMBER_TRANSACTIONAL_DEFAULTS,
        ]
        .concat()
    } else {
        [PRODUCER_DEFAULTS, TRANSACTIONAL_DEFAULTS].concat()
    };
    let mut config = options.client_config(&bootstrap, &defaults)?;
    config.set("transactional.id", transactional_id);
    let timeout = options.connect_timeout();
    let probe = config.clone();
    let address = bootstrap.clone();
    tokio::task::spawn_blocking(move || crate::kafka::wait_for_cluster(&probe, &address, timeout))
        .await
        .map_err(|e| KafkaError::TransactionFailed {
            id: transactional_id.to_string(),
            why: format!("connecting: {e}"),
        })??;
    // The progress topic is weir's own state, not one of the user's topics: it is created
    // whatever `create_topic` says (that option is about the topics the user names), and a
    // cluster that refuses gets an error that says what to create.
    let mut single = options.clone();
    single.partitions = 1;
    single.topic_config.clear();
    // Marks must outlive any pause of the pipeline: a mark that expired would make a finished
    // source read its input again. Snapshots keep reading it short however long it grows.
    single.topic_config.insert(
        "retention.ms".into(),
        crate::kafka::options::ClientValue::Int(-1),
    );
    let progress_topic = progress_topic.to_string();
    topics::ensure_topics(&config, &single, std::slice::from_ref(&progress_topic))
        .await
        .map_err(|e| KafkaError::ProgressTopic {
            topic: progress_topic,
            replication_factor: single.replication_factor,
            why: e.to_string(),
        })?;
    let deliveries = TxnDeliveries {
        brokers: options.brokers().to_string(),
        links: Arc::clone(links),
        failure: Mutex::new(None),
    };
    let producer: ThreadedProducer<TxnDeliveries> = config
        .create_with_context(deliveries)
        .map_err(|source| KafkaError::Client {
            role: "transactional producer",
            source,
        })?;
    let id = transactional_id.to_string();
    let producer = tokio::task::spawn_blocking(move || {
        producer
            .init_transactions(TXN_TIMEOUT)
            .map(|()| producer)
            .map_err(|source| KafkaError::Transaction {
                id,
                step: "starting transactions (init_transactions)",
                source,
            })
    })
    .await
    .map_err(|e| KafkaError::TransactionFailed {
        id: transactional_id.to_string(),
        why: format!("starting transactions: {e}"),
    })??;
    Ok((producer, bootstrap))
}
