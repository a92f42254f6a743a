//! Reading back the progress marks a run committed (see the parent module).

use crate::kafka::KafkaError;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The progress marks committed to `topic` (the last per stage), read with `read_committed`
/// using `config`. A missing topic means none. Blocking.
pub(super) fn read_progress(
    config: &rdkafka::ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<String, i64>, KafkaError> {
    use rdkafka::consumer::Consumer;
    let mut config = config.clone();
    config.set("isolation.level", "read_committed");
    config.set("enable.partition.eof", "true");
    config.set("enable.auto.commit", "false");
    let consumer = crate::kafka::consumer(&config, "consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|source| KafkaError::Progress {
            topic: topic.to_string(),
            source,
        })?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    let mut marks = BTreeMap::new();
    if !exists {
        return Ok(marks);
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .and_then(|()| consumer.assign(&assignment))
        .map_err(|source| KafkaError::Progress {
            topic: topic.to_string(),
            source,
        })?;
    let deadline = Instant::now() + timeout;
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let stage = message.key().map(String::from_utf8_lossy);
                let through = message
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|p| p.parse::<i64>().ok());
                match (stage, through) {
                    (Some(stage), Some(through)) => {
                        marks.insert(stage.into_owned(), through);
                    }
                    _ => tracing::warn!(
                        "{topic}@{}: not a progress mark (key = stage, value = integer); skipped",
                        message.offset()
                    ),
                }
            }
            Some(Err(ClientError::PartitionEOF(_))) => return Ok(marks),
            Some(Err(e)) => tracing::warn!("reading {topic}: {e} (retrying)"),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(KafkaError::Progress {
                topic: topic.to_string(),
                source: ClientError::Global(RDKafkaErrorCode::OperationTimedOut),
            });
        }
    }
}
