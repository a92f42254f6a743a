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

/// Options of a `kafka` source or sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaOptions {
    brokers: Option<String>,
    /// The broker `brokers = "embedded"` starts.
    #[serde(default)]
    pub embedded: EmbeddedOptions,
    /// librdkafka settings, passed through.
    #[serde(default)]
    pub options: BTreeMap<String, ClientValue>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout: DurationSpec,
    /// The topic a sink writes, or a source reads.
    pub topic: Option<String>,
    /// More topics a source reads.
    #[serde(default)]
    pub topics: Vec<String>,
    /// How message values map to record fields.
    #[serde(default)]
    pub codec: Codec,
    /// The record fields the value holds (meaning depends on `codec`).
    #[serde(default)]
    pub fields: Vec<String>,
    /// How message keys map to record fields.
    #[serde(default)]
    pub key_codec: KeyCodec,
    /// The record fields the key holds.
    #[serde(default)]
    pub key_fields: Vec<String>,
    /// Source: the consumer group whose committed offsets it resumes from and commits to.
    pub group_id: Option<String>,
    /// Source: where to start reading.
    #[serde(default)]
    pub start: Start,
    /// Source: every partition, or the share its consumer group gives it.
    #[serde(default)]
    pub assignment: Assignment,
    /// Source: most records per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How often delivered offsets (at least once) or transactions (exactly once) are committed.
    #[serde(default = "default_commit_interval")]
    pub commit_interval: DurationSpec,
    /// Exactly once (transactions) or at least once.
    #[serde(default)]
    pub guarantee: Guarantee,
    /// The transactional id of the run's producer (exactly once): a second process with the same
    /// id fences the first.
    pub transactional_id: Option<String>,
    /// Source: a message timestamp more than this past the wall clock is not believed.
    #[serde(default = "default_future_tolerance")]
    pub future_tolerance: DurationSpec,
    /// Source: how long a partition read to its end may hold the watermark back.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: DurationSpec,
    /// Source: each record also carries where it came from (see [`ORIGIN_FIELDS`]).
    #[serde(default)]
    pub with_origin: bool,
    /// Create missing topics (with the settings below) before reading or writing.
    #[serde(default = "default_true")]
    pub create_topic: bool,
    /// Partitions of a created topic.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Replication factor of a created topic.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
    /// Topic-level settings of a created topic (e.g. `"retention.ms"`).
    #[serde(default)]
    pub topic_config: BTreeMap<String, ClientValue>,
    /// Connect over TLS (see `kafka::security`).
    pub tls: Option<super::security::TlsOptions>,
    /// Authenticate with SASL (see `kafka::security`).
    pub sasl: Option<super::security::SaslOptions>,
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
];

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
            _ => false,
        }
    }
}

/// The documented options shared by both roles, for `weir list`.
pub const COMMON_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "brokers",
        ty: "\"embedded\" | \"host:port,...\"",
        default: "[kafka] brokers, or WEIR_KAFKA_BROKERS",
        doc: "the cluster; \"embedded\" starts a broker inside weir",
    },
    OptionDoc {
        name: "embedded",
        ty: "{ listen, storage }",
        default: "{ listen = \"127.0.0.1:9092\", storage = \"memory://\" }",
        doc: "where the embedded broker listens and keeps data (\"sqlite://FILE\" is durable)",
    },
    OptionDoc {
        name: "tls",
        ty: "{ ca, cert, key, key_password }",
        default: "none (plaintext)",
        doc: "connect over TLS; `ca` checks the brokers' certificates (else the system's store), `cert`/`key` for client certificates",
    },
    OptionDoc {
        name: "sasl",
        ty: "{ mechanism, username, password | password_file }",
        default: "none",
        doc: "authenticate: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; the password never shows in logs",
    },
    OptionDoc {
        name: "topic",
        ty: "string",
        default: "required",
        doc: "topic to write (sink) or read (source)",
    },
    OptionDoc {
        name: "codec",
        ty: "\"raw\" | \"json\" | \"seed\"",
        default: "\"raw\"",
        doc: "message value ↔ fields: raw text of one field, a JSON object, or the tutorial's [{\"0\":1},...] array",
    },
    OptionDoc {
        name: "fields",
        ty: "[string]",
        default: "raw: [\"value\"]; json: all (sink) / required (source); seed: [\"key\", \"count\"]",
        doc: "the record fields the value holds",
    },
    OptionDoc {
        name: "key_codec",
        ty: "\"none\" | \"raw\" | \"json\"",
        default: "\"none\"",
        doc: "message key ↔ fields",
    },
    OptionDoc {
        name: "key_fields",
        ty: "[string]",
        default: "raw: [\"key\"]; json: required",
        doc: "the record fields the key holds",
    },
    OptionDoc {
        name: "options",
        ty: "{ \"librdkafka.key\" = value }",
        default: "{}",
        doc: "any librdkafka setting, passed through (overrides weir's defaults)",
    },
    OptionDoc {
        name: "connect_timeout",
        ty: "duration",
        default: "\"10s\"",
        doc: "how long to wait for the cluster at start before failing",
    },
    OptionDoc {
        name: "create_topic",
        ty: "bool",
        default: "true",
        doc: "create the topic if missing, with the settings below",
    },
    OptionDoc {
        name: "partitions",
        ty: "integer",
        default: "1",
        doc: "partitions of a created topic",
    },
    OptionDoc {
        name: "replication_factor",
        ty: "integer",
        default: "1",
        doc: "replication factor of a created topic",
    },
    OptionDoc {
        name: "topic_config",
        ty: "{ key = value }",
        default: "{}",
        doc: "topic settings of a created topic",
    },
    OptionDoc {
        name: "guarantee",
        ty: "\"exactly-once\" | \"at-least-once\"",
        default: "\"exactly-once\"",
        doc: "exactly once: sinks write in transactions that commit the sources' offsets too; at least once: idempotent writes, offsets committed after delivery",
    },
    OptionDoc {
        name: "transactional_id",
        ty: "string",
        default: "\"weir.<pipeline file name>\"",
        doc: "exactly once: the producer's transactional id; a second run with the same id fences the first",
    },
    OptionDoc {
        name: "commit_interval",
        ty: "duration",
        default: "\"200ms\"",
        doc: "how often transactions (exactly once) or delivered offsets (at least once) are committed",
    },
];

/// The documented options only a source has.
pub const SOURCE_OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "topics",
        ty: "[string]",
        default: "[]",
        doc: "more topics to read",
    },
    OptionDoc {
        name: "group_id",
        ty: "string",
        default: "\"weir.<component path>\"",
        doc: "consumer group whose offsets are resumed from and committed",
    },
    OptionDoc {
        name: "start",
        ty: "\"committed\" | \"earliest\" | \"latest\"",
        default: "\"committed\"",
        doc: "where to start: the committed offset (else the beginning), the beginning, or the end",
    },
    OptionDoc {
        name: "assignment",
        ty: "\"all\" | \"group\"",
        default: "\"all\"",
        doc: "take every partition, or join the consumer group and read the partitions it gives (several processes share the topics)",
    },
    OptionDoc {
        name: "batch_size",
        ty: "integer",
        default: "1024",
        doc: "most records per batch",
    },
    OptionDoc {
        name: "idle_timeout",
        ty: "duration",
        default: "\"5s\"",
        doc: "a partition read to its end stops holding the watermark back after this long",
    },
    OptionDoc {
        name: "with_origin",
        ty: "boolean",
        default: "false",
        doc: "each record also carries `_partition`, `_tenure` (this process's grant of that partition) and `_partitions` (the topic's count)",
    },
    OptionDoc {
        name: "future_tolerance",
        ty: "duration",
        default: "\"1h\"",
        doc: "a message timestamped more than this past the wall clock is dropped and counted instead of moving the watermark",
    },
];
