//! Where a Kafka source that takes every partition starts reading: each partition at its
//! group's committed offset, the beginning or the end (`start`), and, for a run starting over,
//! every partition's commit point set back to its beginning.

use crate::kafka::{ClientLog, KafkaError, Start};
use crate::sources::checkpoint::Checkpoints;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A run starting over (`weir run --reset`): every partition's commit point is set to its
/// beginning, so the first commit moves the group's offsets there even for partitions that
/// deliver nothing before a crash (the next run must not go on from the old offsets).
pub(super) fn seed_beginnings(
    consumer: &BaseConsumer<ClientLog>,
    assignment: &TopicPartitionList,
    checkpoints: &Arc<Checkpoints>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    for element in assignment.elements() {
        let (low, _) = consumer
            .fetch_watermarks(element.topic(), element.partition(), timeout)
            .map_err(|source| KafkaError::Watermarks {
                topic: element.topic().to_string(),
                partition: element.partition(),
                source,
            })?;
        // Settled at once: nothing is held back for it.
        drop(checkpoints.issue(vec![(
            (Arc::from(element.topic()), element.partition()),
            low,
        )]));
    }
    Ok(())
}

/// Every partition of `topics`, each starting where `start` says.
pub(super) fn assignment(
    consumer: &BaseConsumer<ClientLog>,
    topics: &[String],
    start: Start,
    group_id: &str,
    path: &str,
    timeout: Duration,
) -> Result<TopicPartitionList, KafkaError> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let partitions = partitions_of(consumer, topic, timeout)?;
        for partition in partitions {
            list.add_partition(topic, partition);
        }
    }
    let committed = match start {
        Start::Committed => {
            consumer
                .committed_offsets(list.clone(), timeout)
                .map_err(|source| KafkaError::CommittedOffsets {
                    group: group_id.to_string(),
                    source,
                })?
        }
        _ => TopicPartitionList::new(),
    };
    let mut assignment = TopicPartitionList::new();
    for element in list.elements() {
        let at = match start {
            Start::Earliest => Offset::Beginning,
            Start::Latest => Offset::End,
            Start::Committed => committed
                .find_partition(element.topic(), element.partition())
                .map(|e| e.offset())
                .filter(|o| matches!(o, Offset::Offset(n) if *n >= 0))
                .unwrap_or(Offset::Beginning),
        };
        tracing::debug!(
            "{path}: {}/{} starts at {at:?}",
            element.topic(),
            element.partition()
        );
        assignment
            .add_partition_offset(element.topic(), element.partition(), at)
            .map_err(|source| KafkaError::StartOffset {
                topic: element.topic().to_string(),
                partition: element.partition(),
                source,
            })?;
    }
    Ok(assignment)
}

/// The partitions of `topic`, waiting up to `timeout` for it to appear.
fn partitions_of(
    consumer: &BaseConsumer<ClientLog>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(2))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect::<Vec<_>>())
            })
            .filter(|p| !p.is_empty());
        match found {
            Some(partitions) => return Ok(partitions),
            None if Instant::now() >= deadline => {
                return Err(KafkaError::NoTopic {
                    topic: topic.to_string(),
                    waited: timeout,
                });
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
