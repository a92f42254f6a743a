//! Consumer-group membership (`assignment = "group"`): the client context that hears the group's
//! rebalances. Partitions are granted and revoked inside the consumer's `poll`, on the read loop's
//! own thread; this context does what must happen before the rebalance may go on and leaves the
//! rest to the loop as [`Change`]s.
//!
//! Giving a partition up (revocation): its tenure stops being current first, so stages that hold
//! its records in open windows drop them and abandon their tickets (the next owner counts those
//! records); then what was read from it is delivered downstream (every other ticket handed out
//! has settled, up to `handover_timeout`), the commit point is committed synchronously (or, exactly
//! once, went into the transaction that wrote the output), and only then does librdkafka let the
//! next owner start — from that commit point, so it reads again only what was not yet delivered
//! here. If the partition was
//! *lost* (this member was thrown out of the group after missing its session timeout) nothing is
//! committed: another member already owns it. Either way the ledger forgets the partition, so a
//! ticket that settles later can never move its committed offset back.

use crate::kafka::transaction::{GroupStanding, Transactor};
use crate::kafka::{ClientLog, report_error, report_log};
use crate::resume::Resumed;
use crate::sources::checkpoint::{Checkpoints, Partition};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A partition the group granted: its tenure here and how many partitions its topic has.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Grant {
    pub(super) partition: Partition,
    pub(super) tenure: u64,
    pub(super) partitions: i64,
}

/// A change of the partitions this member reads, for the read loop.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// The group granted these partitions.
    Granted(Vec<Grant>),
    /// These partitions were handed over (or lost); stop tracking them.
    Revoked(Vec<Partition>),
}

/// The client context of a group member.
pub(super) struct Membership {
    pub(super) path: String,
    pub(super) checkpoints: Arc<Checkpoints>,
    /// True when the source commits offsets itself.
    pub(super) commits_itself: bool,
    /// How long a revocation waits for what was read to be delivered.
    pub(super) handover_timeout: Duration,
    /// Exactly once: where the progress marks committed by other members are read again on each
    /// grant (a stage resuming on a partition another member gave up continues from its marks).
    pub(super) marks: Option<(Arc<Transactor>, Arc<Resumed>)>,
    /// Exactly once: the generation and member id the transactions commit offsets under,
    /// refreshed at each grant.
    pub(super) standing: Arc<GroupStanding>,
    /// Where the partition figures go (see `ClientLog`).
    pub(super) partitions: Option<Arc<crate::stage::StageMetrics>>,
    changes: Mutex<Vec<Change>>,
    changed: AtomicBool,
}

impl Membership {
    pub(super) fn new(
        path: String,
        checkpoints: Arc<Checkpoints>,
        commits_itself: bool,
        handover_timeout: Duration,
    ) -> Self {
        Membership {
            path,
            checkpoints,
            commits_itself,
            handover_timeout,
            marks: None,
            standing: {
                let standing = GroupStanding::default();
                standing.set_member();
                Arc::new(standing)
            },
            partitions: None,
            changes: Mutex::new(Vec::new()),
            changed: AtomicBool::new(false),
        }
    }

    /// The changes since the last call, oldest first.
    pub(super) fn take_changes(&self) -> Vec<Change> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, change: Change) {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
        self.changed.store(true, Ordering::Release);
    }

    /// Waits until every ticket handed out has settled (or the time is up); true if they did.
    fn wait_for_delivery(&self) -> bool {
        let deadline = Instant::now() + self.handover_timeout;
        while self.checkpoints.outstanding() > 0 && !self.checkpoints.is_stuck() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

fn partitions(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| (Arc::from(e.topic()), e.partition()))
        .collect()
}

fn names(partitions: &[Partition]) -> String {
    let names: Vec<String> = partitions.iter().map(|(t, p)| format!("{t}/{p}")).collect();
    names.join(", ")
}

impl ClientContext for Membership {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        report_log(level, facility, message);
    }

    fn error(&self, error: ClientError, reason: &str) {
        report_error(&error, reason);
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(metrics) = &self.partitions {
            metrics.set_partitions(crate::kafka::partition_figures(&statistics));
        }
    }
}

/// What a consumer's context reports about partitions granted and revoked since it was last
/// asked (a group member's rebalances; nothing for a source that assigned itself every
/// partition).
pub(super) trait Changes {
    fn take_changes(&self) -> Vec<Change>;
}

impl Changes for ClientLog {
    fn take_changes(&self) -> Vec<Change> {
        Vec::new()
    }
}

impl Changes for Membership {
    fn take_changes(&self) -> Vec<Change> {
        Membership::take_changes(self)
    }
}

impl ConsumerContext for Membership {
    /// librdkafka's default handling, except that granted partitions start at the group's
    /// committed offsets, asked for explicitly. Left to itself, librdkafka resumed a partition
    /// that came straight back to this member (an eager rebalance revokes everything first) from
    /// its own fetch position, past records it had fetched and dropped unread on the revocation:
    /// 1,768 of 2,000,000 records were lost that way in `bench/groups.py`.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.start_at_committed(consumer, list);
                let assigned = if cooperative {
                    consumer.incremental_assign(list)
                } else {
                    consumer.assign(list)
                };
                match assigned {
                    Ok(()) => self.post_rebalance(consumer, &Rebalance::Assign(list)),
                    Err(e) => tracing::warn!("{}: taking partitions failed: {e}", self.path),
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(list));
                let released = if cooperative {
                    consumer.incremental_unassign(list)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = released {
                    tracing::warn!("{}: giving partitions up failed: {e}", self.path);
                }
            }
            other => tracing::warn!("{}: rebalance failed: {other:?}", self.path),
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked = partitions(list);
        if revoked.is_empty() {
            return;
        }
        self.checkpoints.hand_over(&revoked);
        if consumer.assignment_lost() {
            tracing::warn!(
                "{}: lost {} (this member missed its session timeout); records read from them \
                 and not yet committed are read again by their new owner",
                self.path,
                names(&revoked)
            );
            if let Some((transactor, _)) = &self.marks {
                transactor.partitions_lost();
            }
        } else {
            if !self.wait_for_delivery() {
                tracing::warn!(
                    "{}: handing over {} before everything read from them was delivered (waited \
                     {:?}); the new owner reads those records again",
                    self.path,
                    names(&revoked),
                    self.handover_timeout
                );
            }
            if self.commits_itself {
                commit_now(consumer, &self.checkpoints);
            } else if let Some((transactor, _)) = &self.marks {
                // The tickets settled when the transactor began committing; the offsets are the
                // next owner's only once that transaction is committed.
                if let Err(e) = transactor.commit_now() {
                    tracing::warn!(
                        "{}: committing before a hand-over failed: {e}; the new owner reads the \
                         records since the last commit again",
                        self.path
                    );
                }
            }
            tracing::info!("{}: handed over {}", self.path, names(&revoked));
        }
        self.checkpoints.revoke(&revoked);
        self.push(Change::Revoked(revoked));
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let granted = partitions(list);
                if granted.is_empty() {
                    return;
                }
                tracing::info!("{}: reads {}", self.path, names(&granted));
                if let Some((transactor, resumed)) = &self.marks {
                    let cooperative = matches!(
                        consumer.rebalance_protocol(),
                        RebalanceProtocol::Cooperative
                    );
                    self.standing.update(consumer.group_metadata(), cooperative);
                    transactor.regranted();
                    match transactor.read_marks() {
                        Ok(marks) => {
                            for (stage, through) in marks {
                                resumed.restore(&stage, through);
                            }
                        }
                        Err(e) => tracing::warn!(
                            "{}: could not read the committed progress marks again: {e}",
                            self.path
                        ),
                    }
                }
                let tenures = self.checkpoints.grant(&granted);
                let grants = granted
                    .into_iter()
                    .zip(tenures)
                    .map(|(partition, tenure)| Grant {
                        partitions: partition_count(consumer, &partition.0),
                        partition,
                        tenure,
                    })
                    .collect();
                self.push(Change::Granted(grants));
            }
            Rebalance::Error(_) | Rebalance::Revoke(_) => {}
        }
    }
}

impl Membership {
    /// Sets each partition of `list` to start at the group's committed offset (those without one
    /// start where `auto.offset.reset` says).
    fn start_at_committed(&self, consumer: &BaseConsumer<Self>, list: &mut TopicPartitionList) {
        let committed = match consumer.committed_offsets(list.clone(), COMMITTED_TIMEOUT) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::warn!(
                    "{}: could not read the group's committed offsets ({e}); librdkafka picks \
                     where the granted partitions start",
                    self.path
                );
                return;
            }
        };
        for element in committed.elements() {
            if let Offset::Offset(at) = element.offset()
                && at >= 0
            {
                tracing::debug!(
                    "{}: {}/{} starts at the committed {at}",
                    self.path,
                    element.topic(),
                    element.partition()
                );
                if let Err(e) = list.set_partition_offset(
                    element.topic(),
                    element.partition(),
                    Offset::Offset(at),
                ) {
                    tracing::warn!("{}: {e}", self.path);
                }
            }
        }
    }
}

/// How long a grant waits for the group's committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(10);

/// How many partitions `topic` has (0 when the metadata does not say).
fn partition_count<C: ConsumerContext>(consumer: &BaseConsumer<C>, topic: &str) -> i64 {
    consumer
        .fetch_metadata(Some(topic), COMMITTED_TIMEOUT)
        .ok()
        .and_then(|m| {
            m.topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len() as i64)
        })
        .unwrap_or(0)
}

/// Commits the commit point synchronously (inside a rebalance, before a partition moves).
fn commit_now(consumer: &BaseConsumer<Membership>, checkpoints: &Checkpoints) {
    let Some(point) = checkpoints.take_commit() else {
        return;
    };
    tracing::debug!("committing {point:?} before a hand-over");
    let list = super::committing::offsets_list(&point);
    if let Err(e) = consumer.commit(&list, CommitMode::Sync) {
        tracing::warn!(
            "committing offsets before a hand-over failed: {e}; the new owner reads the records \
             since the last commit again"
        );
    }
}
