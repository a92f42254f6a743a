//! How a Kafka source commits what it read itself (at least once, or a consumer-group member
//! handing partitions over): the commit point as a list, a commit, and waiting at the end until
//! what was handed on has settled.

use crate::sources::checkpoint::{Checkpoints, Partition};
use crate::stage::RunHealth;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Attempts at the final, synchronous commit of a run, half a second apart.
const FINAL_COMMIT_ATTEMPTS: u32 = 3;

/// Commits the commit point if it moved; true unless the commit failed. A failed commit is
/// offered again by the next call (the broker keeps the last successful one meanwhile).
pub(super) fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    checkpoints: &Checkpoints,
    mode: CommitMode,
) -> bool {
    let Some(point) = checkpoints.take_commit() else {
        return true;
    };
    match consumer.commit(&offsets_list(&point), mode) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("committing offsets failed (will retry): {e}");
            checkpoints.commit_failed();
            false
        }
    }
}

/// Waits (at most `limit`) until everything this source handed on has settled.
pub(super) fn settle(checkpoints: &Checkpoints, health: &RunHealth, limit: Duration) {
    let deadline = Instant::now() + limit;
    while checkpoints.outstanding() > 0
        && !checkpoints.is_stuck()
        && !health.has_failed()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until everything sent has been delivered downstream (or the run failed), then
/// commits the final point.
pub(super) fn settle_and_commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    checkpoints: &Arc<Checkpoints>,
    health: &RunHealth,
    interval: Duration,
    path: &str,
) {
    let mut last_commit = Instant::now();
    while checkpoints.outstanding() > 0 && !checkpoints.is_stuck() && !health.has_failed() {
        consumer.poll(Duration::from_millis(20));
        if last_commit.elapsed() >= interval {
            commit(consumer, checkpoints, CommitMode::Async);
            last_commit = Instant::now();
        }
    }
    for attempt in 1..=FINAL_COMMIT_ATTEMPTS {
        if commit(consumer, checkpoints, CommitMode::Sync) {
            break;
        }
        if attempt == FINAL_COMMIT_ATTEMPTS {
            tracing::warn!(
                "{path}: the final offsets were not committed; a restart reads the records \
                 since the last successful commit again"
            );
        } else {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `point` as a list to commit.
pub(super) fn offsets_list(point: &[(Partition, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in point {
        if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*offset)) {
            tracing::warn!("cannot commit {topic}/{partition}@{offset}: {e}");
        }
    }
    list
}
