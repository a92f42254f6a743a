//! Source `kafka`: reads topics into records, the message timestamp as event time.
//!
//! It takes every partition of its topics itself (assignment, not a group join: Flink and Spark
//! do the same, and it starts in milliseconds instead of seconds) and keeps its progress in its
//! consumer group's committed offsets. An offset is committed only once everything derived from
//! the records before it has been delivered by every sink (see `sources::checkpoint`), so a crash at any
//! moment loses nothing: the next run resumes from the commit point.
//!
//! Exactly once (when a `kafka` sink of the run writes to the same cluster in transactions): the
//! source does not commit itself; its commit points go into the sinks' transactions. Before reading
//! it starts the transactional producer (fencing an older process and aborting what that one left
//! open), then loads the progress marks committed with the offsets (see `resume`), and reads only
//! committed records.
//!
//! Watermarks are tracked per partition: the watermark is the oldest "latest event time" among the
//! partitions, so a fast partition does not make a slower one's records late. A partition that has
//! been read to its end with nothing new for `idle_timeout` stops holding the watermark back until
//! new data arrives (Flink's idleness), so an unused partition cannot stall windows forever.
//!
//! A source whose topic a `kafka` sink of the same pipeline writes ends once that sink has
//! finished and everything it wrote has been read (see `kafka::link`).

mod committing;
mod group;
mod quiet;
mod reader;
mod start;

use super::checkpoint::{Checkpoints, Partition, Tenures};
use crate::kafka::codec::Decoder;
use crate::kafka::link::{Progress, TopicLinks};
use crate::kafka::options::{Assignment, KAFKA_OPTIONS, ORIGIN_FIELDS};
use crate::kafka::transaction::{CommitPoint, GroupStanding, Transactions, Transactor};
use crate::kafka::{
    CONSUMER_DEFAULTS, ClientLog, Guarantee, KafkaError, KafkaOptions, Start, topics,
    wait_for_cluster,
};
use crate::record::{BatchBuilder, Millis};
use crate::resume::Resumed;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionIssue, Output, Rejects, RunHealth, Shutdown,
    Source, SourceContext, Stage, StageConfig, StageError, StageKind, StageMetrics, StageResult,
};
use async_trait::async_trait;
use group::{Change, Changes, Membership};
use quiet::more_follows;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError as ClientError;
use reader::{LOGGED_BAD_MESSAGES, PartitionState, Reader};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of the `kafka` source (see [`KafkaOptions`]).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct KafkaSourceConfig(KafkaOptions);

/// The `kafka` source type.
pub fn factory() -> Builtin<KafkaSourceConfig> {
    Builtin::new(
        StageKind::Source,
        "kafka",
        "Reads Kafka topics; commits offsets only after every sink delivered what came of them",
        KAFKA_OPTIONS,
    )
    .inheriting("kafka")
}

impl BuiltinConfig for KafkaSourceConfig {
    fn check(&self) -> Vec<OptionIssue> {
        self.0.check_role(StageKind::Source)
    }
}

impl StageConfig for KafkaSourceConfig {
    fn output_fields(&self, _inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        // What the codecs make of a message, as the decoder the run builds names them.
        let decoder = Decoder::new(
            self.0.codec,
            &self.0.fields,
            self.0.key_codec,
            &self.0.key_fields,
        );
        let decoder = if self.0.with_origin {
            decoder.with_origin(ORIGIN_FIELDS)
        } else {
            decoder
        };
        Some(decoder.schema().names().map(str::to_string).collect())
    }

    fn reads_a_share(&self) -> bool {
        self.0.assignment == Assignment::Group
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let resumed = cx.resources.get::<Resumed>();
        let mut options = self.0.clone();
        let start_over = resumed.starts_over() && options.start == Start::Committed;
        if start_over {
            if options.assignment == Assignment::Group {
                return Err(StageError::Input(
                    "`--reset` cannot start a consumer group's member over (the others go on \
                     from the group's offsets): stop every member, then reset the group with \
                     Kafka's tools"
                        .into(),
                ));
            }
            // Starting over: from the beginning, and the first commit moves every partition's
            // committed offset back there (see `seed_beginnings`).
            options.start = Start::Earliest;
        } else if options.start == Start::Committed {
            resumed.source_resumes();
        }
        if options.assignment == Assignment::Group {
            cx.resources.get::<Transactions>().joins_a_group();
        }
        Ok(Stage::Source(Box::new(KafkaSource {
            start_over,
            options,
            group_id: self
                .0
                .group_id
                .clone()
                .unwrap_or_else(|| format!("weir.{}", cx.path)),
            path: cx.path.clone(),
            links: cx.resources.get::<TopicLinks>(),
            transactions: cx.resources.get::<Transactions>(),
            resumed: cx.resources.get::<Resumed>(),
            tenures: cx.resources.get::<Tenures>(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
        })))
    }
}

struct KafkaSource {
    options: KafkaOptions,
    /// `weir run --reset` with `start = "committed"`: reads from the beginning instead, and
    /// moves the group's offsets back there.
    start_over: bool,
    group_id: String,
    path: String,
    links: Arc<TopicLinks>,
    transactions: Arc<Transactions>,
    resumed: Arc<Resumed>,
    tenures: Arc<Tenures>,
    metrics: Arc<StageMetrics>,
    rejects: Rejects,
}

#[async_trait]
impl Source for KafkaSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> StageResult {
        let bootstrap = self.options.bootstrap().await?;
        let defaults = match self.options.assignment {
            Assignment::All => CONSUMER_DEFAULTS.to_vec(),
            Assignment::Group => [CONSUMER_DEFAULTS, GROUP_DEFAULTS].concat(),
        };
        let mut config = self.options.client_config(&bootstrap, &defaults)?;
        config.set("group.id", &self.group_id);
        // Its partitions' positions, ends and commit points, for `/graph` and `/metrics`.
        config.set("statistics.interval.ms", crate::kafka::PARTITION_REPORT_MS);
        config.set(
            "auto.offset.reset",
            if self.options.start == Start::Latest {
                "latest"
            } else {
                "earliest"
            },
        );
        let timeout = self.options.connect_timeout();
        let probe = config.clone();
        let address = bootstrap.clone();
        tokio::task::spawn_blocking(move || wait_for_cluster(&probe, &address, timeout))
            .await
            .map_err(|e| StageError::joined("connecting", e))??;
        let topics = self.options.all_topics();
        if self.options.create_topic {
            topics::ensure_topics(&config, &self.options, &topics).await?;
        }
        let transactor = match self.options.guarantee {
            Guarantee::ExactlyOnce => self.transactions.for_brokers(self.options.brokers()),
            Guarantee::AtLeastOnce => None,
        };
        if let Some(transactor) = &transactor {
            transactor.start().await?;
        }
        tokio::task::spawn_blocking(move || self.consume(&config, &topics, transactor, cx))
            .await
            .map_err(|e| StageError::joined("the consumer thread", e))?
    }
}

impl KafkaSource {
    /// The read loop, on a blocking thread.
    fn consume(
        &self,
        config: &ClientConfig,
        topics: &[String],
        transactor: Option<Arc<Transactor>>,
        cx: SourceContext,
    ) -> StageResult {
        let SourceContext {
            mut output,
            shutdown,
            health,
        } = cx;
        output.manual_watermarks();
        let run = Consuming {
            output,
            shutdown,
            checkpoints: Checkpoints::sharing(health.clone(), Arc::clone(&self.tenures)),
            health,
            commits_itself: transactor.is_none(),
        };
        let ledger = Arc::clone(&run.checkpoints);
        let run_health = run.health.clone();
        let checkpoints = &run.checkpoints;
        let result = match self.options.assignment {
            Assignment::All => {
                let log = ClientLog {
                    partitions: Some(Arc::clone(&self.metrics)),
                };
                let consumer = crate::kafka::consumer_with(config, "consumer", log)?;
                let standing = Arc::new(GroupStanding::default());
                self.prepare_transactions(
                    &consumer,
                    transactor.as_deref(),
                    checkpoints,
                    &standing,
                )?;
                let assignment = start::assignment(
                    &consumer,
                    topics,
                    self.options.start,
                    &self.group_id,
                    &self.path,
                    self.options.connect_timeout(),
                )?;
                consumer
                    .assign(&assignment)
                    .map_err(|source| KafkaError::Assign { source })?;
                if self.start_over {
                    let timeout = self.options.connect_timeout();
                    start::seed_beginnings(&consumer, &assignment, checkpoints, timeout)?;
                    tracing::info!(
                        "{}: starting over (--reset): reading every partition from its beginning",
                        self.path
                    );
                }
                let elements = assignment.elements();
                let count =
                    |topic: &str| elements.iter().filter(|e| e.topic() == topic).count() as i64;
                let partitions = elements
                    .iter()
                    .map(|e| {
                        let state = PartitionState {
                            topic_partitions: count(e.topic()),
                            ..PartitionState::default()
                        };
                        ((Arc::from(e.topic()), e.partition()), state)
                    })
                    .collect();
                self.read_all(&consumer, topics, partitions, run)
            }
            Assignment::Group => {
                let mut membership = Membership::new(
                    self.path.clone(),
                    Arc::clone(checkpoints),
                    run.commits_itself,
                    HANDOVER_TIMEOUT,
                );
                membership.partitions = Some(Arc::clone(&self.metrics));
                membership.marks = transactor
                    .as_ref()
                    .map(|t| (Arc::clone(t), Arc::clone(&self.resumed)));
                let standing = Arc::clone(&membership.standing);
                let consumer: BaseConsumer<Membership> = config
                    .create_with_context(membership)
                    .map_err(|source| KafkaError::Client {
                        role: "consumer",
                        source,
                    })?;
                self.prepare_transactions(
                    &consumer,
                    transactor.as_deref(),
                    checkpoints,
                    &standing,
                )?;
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&names)
                    .map_err(|source| KafkaError::Assign { source })?;
                self.read_all(&consumer, topics, Vec::new(), run)
            }
        };
        if let Some(transactor) = &transactor {
            // Its last offsets are committed once what it read has settled; the transactions go
            // on for it even if every Kafka sink of the run has finished.
            committing::settle(&ledger, &run_health, HANDOVER_TIMEOUT);
            let finished = transactor.source_finished();
            result?;
            finished?;
            return Ok(());
        }
        result
    }

    /// Exactly once: loads the progress marks of an earlier run and registers the source's commit
    /// point with the run's transactions.
    fn prepare_transactions<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        transactor: Option<&Transactor>,
        checkpoints: &Arc<Checkpoints>,
        standing: &Arc<GroupStanding>,
    ) -> StageResult {
        let Some(transactor) = transactor else {
            return Ok(());
        };
        if self.options.start == Start::Committed {
            self.resume(transactor);
        }
        let metadata = consumer
            .group_metadata()
            .ok_or_else(|| KafkaError::TransactionFailed {
                id: transactor.progress_topic(),
                why: format!("consumer group {} has no metadata", self.group_id),
            })?;
        standing.update(Some(metadata), false);
        transactor.register_source(
            Arc::clone(standing),
            Arc::clone(checkpoints) as Arc<dyn CommitPoint>,
        );
        Ok(())
    }

    /// Reads until the end (see [`read`](Self::read)), then lets downstream drain and commits.
    fn read_all<C: ConsumerContext + Changes>(
        &self,
        consumer: &BaseConsumer<C>,
        topics: &[String],
        partitions: Vec<(Partition, PartitionState)>,
        run: Consuming,
    ) -> StageResult {
        let Consuming {
            mut output,
            shutdown,
            health,
            checkpoints,
            commits_itself,
        } = run;
        let decoder = Decoder::new(
            self.options.codec,
            &self.options.fields,
            self.options.key_codec,
            &self.options.key_fields,
        );
        let mut reader = Reader {
            decoder: if self.options.with_origin {
                decoder.with_origin(ORIGIN_FIELDS)
            } else {
                decoder
            },
            partitions,
            bad_messages: 0,
            future_messages: 0,
            repeated_offsets: 0,
            follow_clock: self.options.follow_clock,
            bytes_read: 0,
            future_limit: Millis::MAX,
            future_tolerance: Millis::try_from(self.options.future_tolerance.0.as_millis())
                .unwrap_or(Millis::MAX),
            path: &self.path,
            metrics: &self.metrics,
            rejects: &self.rejects,
            tenures: &self.tenures,
            in_group: self.options.assignment == Assignment::Group,
        };
        let result = self.read(
            consumer,
            topics,
            &mut reader,
            &mut output,
            &shutdown,
            Commits {
                checkpoints: &checkpoints,
                by_source: commits_itself,
            },
        );
        drop(output); // downstream drains and delivers what it holds
        if commits_itself {
            committing::settle_and_commit(
                consumer,
                &checkpoints,
                &health,
                self.options.commit_interval.0,
                &self.path,
            );
        }
        if reader.future_messages > LOGGED_BAD_MESSAGES {
            tracing::warn!(
                "{}: dropped {} messages timestamped past the clock",
                self.path,
                reader.future_messages
            );
        }
        if reader.bad_messages > LOGGED_BAD_MESSAGES {
            tracing::warn!(
                "{}: skipped {} messages that did not decode",
                self.path,
                reader.bad_messages
            );
        }
        result
    }

    fn read<C: ConsumerContext + Changes>(
        &self,
        consumer: &BaseConsumer<C>,
        topics: &[String],
        reader: &mut Reader<'_>,
        output: &mut Output,
        shutdown: &Shutdown,
        commits: Commits<'_>,
    ) -> StageResult {
        let Commits {
            checkpoints,
            by_source: commits_itself,
        } = commits;
        let mut builder = BatchBuilder::with_capacity(
            Arc::clone(reader.decoder.schema()),
            self.options.batch_size,
        );
        let interval = self.options.commit_interval.0;
        let mut last_commit = Instant::now();
        let mut transport_errors = 0u64;
        while !shutdown.is_requested() {
            reader.future_limit = crate::time::future_limit(self.options.future_tolerance.0);
            let mut wait = Duration::from_millis(100);
            while builder.len() < self.options.batch_size {
                let Some(polled) = consumer.poll(wait) else {
                    break;
                };
                wait = Duration::ZERO;
                // A rebalance runs inside `poll`: follow it before the next message.
                apply_changes(consumer, reader, &mut builder);
                match polled {
                    Ok(message) => reader.take(&message, &mut builder),
                    Err(ClientError::PartitionEOF(partition)) => reader.reached_end(partition),
                    Err(e) => {
                        transport_errors += 1;
                        if transport_errors.is_power_of_two() {
                            tracing::warn!("{}: {e} (retrying)", self.path);
                        }
                    }
                }
            }
            apply_changes(consumer, reader, &mut builder);
            self.metrics
                .add_bytes_read(std::mem::take(&mut reader.bytes_read));
            let touched = reader.take_touched();
            if !touched.is_empty() {
                let acks = checkpoints.issue(touched);
                // A rejected message's offset is committed once its error record is delivered.
                self.rejects.attach(&acks);
                let batch = builder.take().with_acks(acks);
                if output.blocking_send(batch).is_err() {
                    return Ok(()); // downstream failed; the engine reports it
                }
                self.rejects.blocking_flush();
            }
            reader.confirm_quiet(|topic, partition, next| {
                more_follows(consumer, topic, partition, next)
            });
            if let Some(watermark) = reader.watermark(self.options.idle_timeout.0)
                && output.blocking_send_watermark(watermark).is_err()
            {
                return Ok(());
            }
            if commits_itself && last_commit.elapsed() >= interval {
                committing::commit(consumer, checkpoints, CommitMode::Async);
                last_commit = Instant::now();
            }
            if self.caught_up_with_writers(topics, reader) {
                tracing::debug!(
                    "{}: read everything the pipeline wrote ({:?})",
                    self.path,
                    topics
                        .iter()
                        .map(|t| self.links.progress(self.options.brokers(), t))
                        .collect::<Vec<_>>()
                );
                break;
            }
        }
        Ok(())
    }

    /// True when every topic is written by sinks of this run that have all finished, and every
    /// partition has been read past what they wrote.
    fn caught_up_with_writers(&self, topics: &[String], reader: &Reader<'_>) -> bool {
        topics.iter().all(
            |topic| match self.links.progress(self.options.brokers(), topic) {
                Progress::Done(ends) => ends.iter().all(|(partition, end)| {
                    reader
                        .partitions
                        .iter()
                        .find(|((t, p), _)| p == partition && **t == **topic)
                        .is_some_and(|(_, state)| state.next_offset >= *end)
                }),
                Progress::Unlinked | Progress::Writing => false,
            },
        )
    }

    /// Hands the progress marks committed with this source's offsets by an earlier run to the
    /// stages they belong to.
    fn resume(&self, transactor: &Transactor) {
        for (stage, through) in transactor.committed_marks() {
            tracing::debug!("{}: {stage} had emitted through {through}", self.path);
            self.resumed.restore(&stage, through);
        }
    }
}

/// Follows the partitions granted and revoked since the last call. When every partition this
/// member read was revoked (an eager rebalance), the records not yet sent are dropped with them:
/// their next owner reads them from the committed offsets, and sending them would only have
/// them counted twice.
fn apply_changes<C: ConsumerContext + Changes>(
    consumer: &BaseConsumer<C>,
    reader: &mut Reader<'_>,
    builder: &mut BatchBuilder,
) {
    for change in consumer.context().take_changes() {
        let revoking = matches!(change, Change::Revoked(_));
        reader.apply(change);
        if revoking && reader.partitions.is_empty() && !builder.is_empty() {
            drop(builder.take());
        }
    }
}

/// How the read loop's progress is committed.
struct Commits<'a> {
    /// The ledger of tickets handed out.
    checkpoints: &'a Arc<Checkpoints>,
    /// True when the source commits offsets itself (false: a transaction takes them).
    by_source: bool,
}

/// The parts of a source's context the read loop works with.
struct Consuming {
    output: Output,
    shutdown: Shutdown,
    health: RunHealth,
    checkpoints: Arc<Checkpoints>,
    commits_itself: bool,
}

/// Consumer settings of a group member, over [`CONSUMER_DEFAULTS`]; `options` overrides them.
/// Cooperative rebalancing moves only the partitions that change owner, so the other members
/// keep reading through a join or a leave.
const GROUP_DEFAULTS: &[(&str, &str)] = &[
    ("partition.assignment.strategy", "range"),
    ("heartbeat.interval.ms", "1000"),
];

/// How long a group member giving partitions up waits for what it read from them to be
/// delivered before it lets them go anyway (the new owner then reads those records again).
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(20);
