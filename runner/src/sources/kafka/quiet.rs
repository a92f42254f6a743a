//! Whether a partition that has gone quiet for this consumer has more on the broker: the read
//! loop asks before it lets event time follow the clock on a quiet input (issue #30, item 4).

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use std::time::Duration;

/// How long the read loop waits for the broker's answer about a quiet partition.
const QUIET_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether the broker holds more of `topic`/`partition` than this consumer has read (`next`:
/// the offset after its last record; its position is past transaction markers, which are no
/// records), or None when the broker does not answer.
pub(super) fn more_follows<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    next: i64,
) -> Option<bool> {
    let position = consumer
        .position()
        .ok()
        .and_then(|list| {
            list.find_partition(topic, partition)
                .map(|element| element.offset())
        })
        .and_then(|offset| match offset {
            rdkafka::Offset::Offset(at) => Some(at),
            _ => None,
        })
        .unwrap_or(next);
    consumer
        .fetch_watermarks(topic, partition, QUIET_CHECK_TIMEOUT)
        .ok()
        .map(|(_, high)| high > position.max(next))
}
