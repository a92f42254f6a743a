//! Why a Kafka stage failed: [`KafkaError`] names the topic, partition, group or address the
//! failure is about, keeps the client's own error as its source, and becomes a
//! [`StageError`](crate::stage::StageError) at the stage boundary.

use super::codec::CodecError;
use super::embedded::EmbeddedError;
use crate::stage::StageError;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// A failure of the Kafka client layer.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The `tls`/`sasl` settings cannot be used (a password file that cannot be read).
    #[error("{why}")]
    Security {
        /// What is wrong (never a secret).
        why: String,
    },
    /// librdkafka refused the client settings.
    #[error("cannot create a Kafka {role}: {source}")]
    Client {
        /// `client`, `consumer`, `producer` or `admin client`.
        role: &'static str,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// No broker answered in time.
    #[error(
        "no Kafka broker reachable at {bootstrap} after {waited:.0?} (last error: {last}); start one, or set `brokers` (in [kafka] or on this stage, or WEIR_KAFKA_BROKERS) to a reachable one, or \"embedded\"{}", plaintext_hint(*plaintext)
    )]
    Unreachable {
        /// The bootstrap address list.
        bootstrap: String,
        /// How long it waited.
        waited: Duration,
        /// The last metadata request's error, and the last problem the client reported.
        last: String,
        /// The client spoke plaintext (the cluster may want TLS or SASL).
        plaintext: bool,
    },
    /// The cluster answered but refused the SASL login.
    #[error(
        "the Kafka cluster at {bootstrap} refused the SASL login of user `{username}` ({reason}); check `sasl.username`, the password and `sasl.mechanism`"
    )]
    LoginRefused {
        /// The bootstrap address list.
        bootstrap: String,
        /// The user that tried.
        username: String,
        /// What the client reported (never the password).
        reason: String,
    },
    /// The admin request that creates topics failed.
    #[error("cannot create topics {topics:?}: {source}")]
    CreateTopics {
        /// The topics asked for.
        topics: Vec<String>,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The broker refused to create one topic.
    #[error("cannot create topic {topic}: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// Exactly once cannot have the topic it keeps its progress marks in.
    #[error(
        "exactly once keeps its progress in topic {topic} (1 partition, replication factor {replication_factor}), which could not be created: {why}; create it with an admin client, or let weir's Kafka user create topics"
    )]
    ProgressTopic {
        /// The progress topic.
        topic: String,
        /// The replication factor it is created with.
        replication_factor: i32,
        /// What went wrong.
        why: String,
    },
    /// Committed progress was made under other options than the stage has now.
    #[error(
        "{stage}: the progress earlier runs committed (topic {topic}) was made with {before}, and this run has {now}; going on would mix the two. Put the option back, or start over with `weir run --reset` (every source reads again from its beginning; what earlier runs wrote stays in the output topics)"
    )]
    ProgressMeaning {
        /// The stage.
        stage: String,
        /// The progress topic.
        topic: String,
        /// The meaning stored with its marks.
        before: String,
        /// The meaning it declares now.
        now: String,
    },
    /// A topic to read does not exist and may not be created.
    #[error(
        "topic {topic} does not exist (waited {waited:?}); create it, or leave `create_topic` on"
    )]
    NoTopic {
        /// The topic.
        topic: String,
        /// How long it waited for the topic to appear.
        waited: Duration,
    },
    /// Where a partition begins could not be read.
    #[error("cannot read where {topic}/{partition} begins: {source}")]
    Watermarks {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The group's committed offsets could not be read.
    #[error("cannot read the committed offsets of group {group}: {source}")]
    CommittedOffsets {
        /// The consumer group.
        group: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// A start offset could not be set for a partition.
    #[error("bad start offset for {topic}/{partition}: {source}")]
    StartOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The consumer could not be given its partitions.
    #[error("cannot assign partitions: {source}")]
    Assign {
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// A message could not be queued for sending.
    #[error("cannot produce a message to topic {topic}: {source}")]
    Produce {
        /// The topic.
        topic: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The broker did not take a message, after the client's retries.
    #[error("delivery to topic {topic} failed: {source}")]
    Delivery {
        /// The topic.
        topic: String,
        /// The partition, when the client had picked one.
        partition: Option<i32>,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// A step of a Kafka transaction failed (the transaction was aborted).
    #[error("{}", transaction_message(id, step, source))]
    Transaction {
        /// The transactional id.
        id: String,
        /// Which step (e.g. `commit_transaction`).
        step: &'static str,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// The progress marks of an earlier run could not be read.
    #[error("cannot read the progress marks in topic {topic}: {source}")]
    Progress {
        /// The progress topic.
        topic: String,
        /// The client's error.
        #[source]
        source: ClientError,
    },
    /// An earlier failure ended the run's transactions.
    #[error("the transactions of {id} have stopped: {why}")]
    TransactionFailed {
        /// The transactional id.
        id: String,
        /// What ended them.
        why: String,
    },
    /// Records could not be written as messages.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The embedded broker could not be started.
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
}

/// The text of [`KafkaError::Transaction`]: a broker without transactions gets told what to set.
fn transaction_message(id: &str, step: &str, source: &ClientError) -> String {
    let unsupported = source.to_string().contains("not supported by broker")
        || matches!(
            source.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnsupportedVersion
                    | RDKafkaErrorCode::UnsupportedForMessageFormat
            )
        );
    if unsupported {
        format!(
            "transaction {id}: {step} failed: {source}; the brokers do not support Kafka \
             transactions: set `guarantee = \"at-least-once\"` (in [kafka] or on the stage)"
        )
    } else if matches!(
        source.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced)
    ) {
        format!(
            "transaction {id}: {step} failed: {source}; another process with the same \
             transactional id took over (set `transactional_id` to run two copies side by side)"
        )
    } else {
        format!("transaction {id}: {step} failed: {source}")
    }
}

impl KafkaError {
    /// Whether the error is about one record and no retry can cure it: the client refused to
    /// queue a message larger than `message.max.bytes`. A sink rejects such a record (to its
    /// `<id>.errors`) instead of failing the batch.
    pub fn refuses_the_record_for_good(&self) -> bool {
        matches!(
            self,
            KafkaError::Produce {
                source: ClientError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                ..
            }
        )
    }
}

impl From<KafkaError> for StageError {
    fn from(error: KafkaError) -> Self {
        StageError::External(Box::new(error))
    }
}

/// The end of an [`KafkaError::Unreachable`] message for a plaintext client.
fn plaintext_hint(plaintext: bool) -> &'static str {
    if plaintext {
        "; if the cluster wants TLS or SASL, set `tls` / `sasl` (this client spoke plaintext)"
    } else {
        ""
    }
}
