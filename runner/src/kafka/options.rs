//! The options of the `kafka` source and sink. Both roles read the same struct (the codecs work
//! both ways, and `[kafka]` in the pipeline file gives defaults to either); keys that only make
//! sense for one role are rejected on the other by `check_role`.

use super::codec::{Codec, KeyCodec};
use super::embedded::EmbeddedOptions;
use crate::stage::{OptionDoc, OptionIssue, StageKind};
use crate::time::DurationSpec;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Where a source starts reading a partition.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// The group's committed offset; the beginning when there is none.
    #[default]
    Committed,
    /// The beginning of the partition, whatever was committed.
    Earliest,
    /// The end of the partition: only records written from now on.
    Latest,
}

/// How a source gets its partitions.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// It takes every partition of its topics itself.
    #[default]
    All,
    /// It joins its consumer group and reads the partitions the group gives it, sharing the
    /// topics with the other members (other `weir run` processes of the same pipeline).
    Group,
}

/// What a pipeline promises about the records its Kafka sinks write.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum Guarantee {
    /// Sinks write in transactions that also commit the sources' offsets and the stages'
    /// progress marks: a restart neither loses nor repeats a result (for `read_committed`
    /// readers).
    #[default]
    #[serde(rename = "exactly-once")]
    ExactlyOnce,
    /// Sinks write with an idempotent producer and sources commit offsets after delivery: a
    /// restart may write some results again.
    #[serde(rename = "at-least-once")]
    AtLeastOnce,
}

/// A librdkafka setting's value: written as TOML string, integer, float or boolean.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ClientValue {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for ClientValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientValue::Text(s) => f.write_str(s),
            ClientValue::Int(i) => write!(f, "{i}"),
            ClientValue::Float(x) => write!(f, "{x}"),
            ClientValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

crate::stage_options! {
    /// Options of a `kafka` source or sink.
    #[derive(Clone, Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct KafkaOptions, documented in KAFKA_OPTIONS {
        brokers: Option<String> => OptionDoc::of("\"embedded\" | \"host:port,...\"", "[kafka] brokers, or WEIR_KAFKA_BROKERS", "the cluster; \"embedded\" starts a broker inside weir"),
        /// The broker `brokers = "embedded"` starts.
        #[serde(default)]
        embedded: EmbeddedOptions => OptionDoc::of("{ listen, storage, advertise, users, tls }", "{ listen = \"127.0.0.1:9092\", storage = \"memory://\" }", "where the embedded broker listens and keeps data (\"sqlite://FILE\" is durable), its SCRAM users, and TLS on its listener (`tls = { cert, key, ca }`)"),
        /// Connect over TLS (see `kafka::security`).
        tls: Option<super::security::TlsOptions> => OptionDoc::of("{ ca, cert, key, key_password }", "none (plaintext)", "connect over TLS; `ca` checks the brokers' certificates (else the system's store), `cert`/`key` for client certificates"),
        /// Authenticate with SASL (see `kafka::security`).
        sasl: Option<super::security::SaslOptions> => OptionDoc::of("{ mechanism, username, password | password_file }", "none", "authenticate: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; the password never shows in logs"),
        /// The topic a sink writes, or a source reads.
        topic: Option<String> => OptionDoc::of("string", "required", "topic to write (sink) or read (source)"),
        /// How message values map to record fields.
        #[serde(default)]
        codec: Codec => OptionDoc::of("\"raw\" | \"json\" | \"seed\"", "\"raw\"", "message value ↔ fields: raw text of one field, a JSON object, or the tutorial's [{\"0\":1},...] array"),
        /// The record fields the value holds (meaning depends on `codec`).
        #[serde(default)]
        fields: Vec<String> => OptionDoc::of("[string]", "raw: [\"value\"]; json: all (sink) / required (source); seed: [\"key\", \"count\"]", "the record fields the value holds"),
        /// How message keys map to record fields.
        #[serde(default)]
        key_codec: KeyCodec => OptionDoc::of("\"none\" | \"raw\" | \"json\"", "\"none\"", "message key ↔ fields"),
        /// The record fields the key holds.
        #[serde(default)]
        key_fields: Vec<String> => OptionDoc::of("[string]", "raw: [\"key\"]; json: required", "the record fields the key holds"),
        /// librdkafka settings, passed through.
        #[serde(default)]
        options: BTreeMap<String, ClientValue> => OptionDoc::of("{ \"librdkafka.key\" = value }", "{}", "any librdkafka setting, passed through (overrides weir's defaults)"),
        #[serde(default = "default_connect_timeout")]
        connect_timeout: DurationSpec => OptionDoc::of("duration", "\"10s\"", "how long to wait for the cluster at start before failing"),
        /// Create missing topics (with the settings below) before reading or writing.
        #[serde(default = "default_true")]
        create_topic: bool => OptionDoc::of("bool", "true", "create the topic if missing, with the settings below"),
        /// Partitions of a created topic.
        #[serde(default = "default_partitions")]
        partitions: i32 => OptionDoc::of("integer", "1", "partitions of a created topic"),
        /// Replication factor of a created topic.
        #[serde(default = "default_replication")]
        replication_factor: i32 => OptionDoc::of("integer", "1", "replication factor of a created topic"),
        /// Topic-level settings of a created topic (e.g. `"retention.ms"`).
        #[serde(default)]
        topic_config: BTreeMap<String, ClientValue> => OptionDoc::of("{ key = value }", "{}", "topic settings of a created topic"),
        /// Exactly once (transactions) or at least once.
        #[serde(default)]
        guarantee: Guarantee => OptionDoc::of("\"exactly-once\" | \"at-least-once\"", "\"exactly-once\"", "exactly once: sinks write in transactions that commit the sources' offsets too; at least once: idempotent writes, offsets committed after delivery"),
        /// The transactional id of the run's producer (exactly once): a second process with the same
        /// id fences the first.
        transactional_id: Option<String> => OptionDoc::of("string", "\"weir.<pipeline file name>\"", "exactly once: the producer's transactional id; a second run with the same id fences the first"),
        /// How often delivered offsets (at least once) or transactions (exactly once) are committed.
        #[serde(default = "default_commit_interval")]
        commit_interval: DurationSpec => OptionDoc::of("duration", "\"200ms\"", "how often transactions (exactly once) or delivered offsets (at least once) are committed"),
        /// More topics a source reads.
        #[serde(default)]
        topics: Vec<String> => OptionDoc::of("[string]", "[]", "more topics to read"),
        /// Source: the consumer group whose committed offsets it resumes from and commits to.
        group_id: Option<String> => OptionDoc::of("string", "\"weir.<component path>\"", "consumer group whose offsets are resumed from and committed"),
        /// Source: where to start reading.
        #[serde(default)]
        start: Start => OptionDoc::of("\"committed\" | \"earliest\" | \"latest\"", "\"committed\"", "where to start: the committed offset (else the beginning), the beginning, or the end"),
        /// Source: every partition, or the share its consumer group gives it.
        #[serde(default)]
        assignment: Assignment => OptionDoc::of("\"all\" | \"group\"", "\"all\"", "take every partition, or join the consumer group and read the partitions it gives (several processes share the topics)"),
        /// Source: most records per batch.
        #[serde(default = "default_batch_size")]
        batch_size: usize => OptionDoc::of("integer", "1024", "most records per batch"),
        /// Source: how long a partition read to its end may hold the watermark back.
        #[serde(default = "default_idle_timeout")]
        idle_timeout: DurationSpec => OptionDoc::of("duration", "\"5s\"", "a partition read to its end stops holding the watermark back after this long"),
        /// Source: event time follows the clock on a quiet live input (see the reader's watermark).
        #[serde(default = "default_true")]
        follow_clock: bool => OptionDoc::of("boolean", "true", "when a partition's records trail the clock by under 10 s (a live stream), once it is read to its end and quiet for 1 s its event time follows the clock (less that lag and 1 s), so the last windows close without new data; rows that come later for a window closed this way are late"),
        /// Source: each record also carries where it came from (see [`ORIGIN_FIELDS`]).
        #[serde(default)]
        with_origin: bool => OptionDoc::of("boolean", "false", "each record also carries `_partition`, `_tenure` (this process's grant of that partition) and `_partitions` (the topic's count)"),
        /// Source: a message timestamp more than this past the wall clock is not believed.
        #[serde(default = "default_future_tolerance")]
        future_tolerance: DurationSpec => OptionDoc::of("duration", "\"1h\"", "a message timestamped more than this past the wall clock and past its partition's latest event time is dropped and counted instead of moving the watermark (a replay running ahead of the clock by steps is kept)"),
    }
}

fn default_connect_timeout() -> DurationSpec {
    DurationSpec(Duration::from_secs(10))
}
fn default_batch_size() -> usize {
    1024
}
fn default_commit_interval() -> DurationSpec {
    DurationSpec(Duration::from_millis(200))
}
fn default_idle_timeout() -> DurationSpec {
    DurationSpec(Duration::from_secs(5))
}
fn default_future_tolerance() -> DurationSpec {
    DurationSpec(crate::time::DEFAULT_FUTURE_TOLERANCE)
}
fn default_true() -> bool {
    true
}
fn default_partitions() -> i32 {
    1
}
fn default_replication() -> i32 {
    1
}

/// The fields `with_origin = true` adds to each record, after its own: the partition it was read
/// from, this process's tenure of that partition (a number that changes each time the consumer
/// group grants the partition again; 0 when the source assigned itself every partition), and how
/// many partitions the topic has.
pub const ORIGIN_FIELDS: [&str; 3] = ["_partition", "_tenure", "_partitions"];

/// Options only a source has.
pub const SOURCE_ONLY: &[&str] = &[
    "with_origin",
    "topics",
    "group_id",
    "start",
    "assignment",
    "batch_size",
    "idle_timeout",
    "future_tolerance",
    "follow_clock",
];

/// The options a `kafka` sink documents: all but [`SOURCE_ONLY`].
pub fn sink_options() -> &'static [OptionDoc] {
    static DOCS: std::sync::OnceLock<Vec<OptionDoc>> = std::sync::OnceLock::new();
    DOCS.get_or_init(|| {
        KAFKA_OPTIONS
            .iter()
            .filter(|o| !SOURCE_ONLY.contains(&o.name))
            .copied()
            .collect()
    })
}

impl KafkaOptions {
    /// The `brokers` setting (`"embedded"` or `host:port,...`).
    pub fn brokers(&self) -> &str {
        self.brokers.as_deref().unwrap_or_default()
    }

    /// How long to wait for the cluster at start.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.0
    }

    /// Every topic named, `topic` first.
    pub fn all_topics(&self) -> Vec<String> {
        self.topic.iter().chain(&self.topics).cloned().collect()
    }

    /// Checks that hold for both roles, plus the role's own.
    pub fn check_role(&self, role: StageKind) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        match self.brokers.as_deref() {
            None => issues.push(
                OptionIssue::new("brokers", "no brokers set for this Kafka stage").hint(
                    "set `brokers = \"embedded\"` (or host:port) here or in a top-level [kafka] \
                     table, or the WEIR_KAFKA_BROKERS environment variable",
                ),
            ),
            Some(b) if b.trim().is_empty() => {
                issues.push(OptionIssue::new("brokers", "`brokers` is empty"))
            }
            _ => {}
        }
        issues.extend(self.embedded.check().into_iter().map(|issue| OptionIssue {
            key: format!("embedded.{}", issue.key),
            ..issue
        }));
        if self.brokers() == "embedded" && self.embedded.tls.is_some() && self.tls.is_none() {
            issues.push(
                OptionIssue::new(
                    "tls",
                    "the embedded broker speaks only TLS (`embedded.tls`), but this stage's \
                     clients would connect in plaintext",
                )
                .hint("tls = { ca = \"ca.pem\" } (the CA that signed `embedded.tls.cert`)"),
            );
        }
        for key in self.options.keys() {
            if key == "bootstrap.servers" {
                issues.push(
                    OptionIssue::new(format!("options.\"{key}\""), "set brokers with `brokers`")
                        .hint("`brokers` also accepts \"embedded\" and WEIR_KAFKA_BROKERS"),
                );
            }
            if super::security::OWNED_SETTINGS.contains(&key.as_str()) {
                issues.push(
                    OptionIssue::new(
                        format!("options.\"{key}\""),
                        "set TLS and SASL with `tls` and `sasl`",
                    )
                    .hint("tls = { ca = \"ca.pem\" }, sasl = { mechanism = \"SCRAM-SHA-256\", username = \"…\", password = \"${KAFKA_PASSWORD}\" }"),
                );
            }
        }
        issues.extend(super::security::check(
            self.tls.as_ref(),
            self.sasl.as_ref(),
        ));
        if self.partitions < 1 {
            issues.push(OptionIssue::new(
                "partitions",
                "partitions must be at least 1",
            ));
        }
        if self.replication_factor < 1 {
            issues.push(OptionIssue::new(
                "replication_factor",
                "replication_factor must be at least 1",
            ));
        }
        issues.extend(self.codec.check(role, &self.fields, "fields"));
        issues.extend(self.key_codec.check(&self.key_fields, "key_fields"));
        match role {
            StageKind::Source => {
                if self.all_topics().is_empty() {
                    issues.push(
                        OptionIssue::new("topic", "no topic to read")
                            .hint("set `topic = \"name\"` or `topics = [\"a\", \"b\"]`"),
                    );
                }
                if self.batch_size == 0 {
                    issues.push(OptionIssue::new(
                        "batch_size",
                        "batch_size must be at least 1",
                    ));
                }
                if self.assignment == Assignment::Group && self.start != Start::Committed {
                    issues.push(
                        OptionIssue::new(
                            "start",
                            "a group member reads each partition from the group's committed \
                             offset",
                        )
                        .hint("remove `start`, or set `assignment = \"all\"`"),
                    );
                }
            }
            _ => {
                if self.topic.is_none() {
                    issues.push(OptionIssue::new("topic", "no topic to write"));
                }
                for key in SOURCE_ONLY {
                    if self.is_set(key) {
                        issues.push(OptionIssue::new(
                            *key,
                            format!("`{key}` applies to kafka sources only"),
                        ));
                    }
                }
            }
        }
        issues
    }

    fn is_set(&self, key: &str) -> bool {
        match key {
            "topics" => !self.topics.is_empty(),
            "group_id" => self.group_id.is_some(),
            "start" => self.start != Start::default(),
            "assignment" => self.assignment != Assignment::default(),
            "batch_size" => self.batch_size != default_batch_size(),
            "commit_interval" => self.commit_interval.0 != default_commit_interval().0,
            "idle_timeout" => self.idle_timeout.0 != default_idle_timeout().0,
            "with_origin" => self.with_origin,
            "future_tolerance" => self.future_tolerance.0 != default_future_tolerance().0,
            "follow_clock" => !self.follow_clock,
            _ => false,
        }
    }
}
