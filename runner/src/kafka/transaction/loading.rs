//! What a transactor knows of the committed progress when it starts: the marks read back from
//! the progress topic (or none, for a run that starts over), checked against the meanings this
//! run's stages declare.

use super::meaning::{by_stage, check_meanings};
use super::progress::{MarkBook, read_progress};
use crate::kafka::KafkaError;
use crate::resume::Resumed;
use std::collections::BTreeMap;
use std::time::Duration;

/// The committed marks by stage, and the book that writes the next ones; `reader` reads the
/// progress topic, `member` says whether other producers (a consumer group's members) write it.
pub(super) async fn load_progress(
    reader: rdkafka::ClientConfig,
    transactional_id: &str,
    topic: &str,
    wait: Duration,
    resumed: &Resumed,
    member: bool,
) -> Result<(BTreeMap<String, i64>, MarkBook), KafkaError> {
    let (read, book) = if resumed.starts_over() {
        if member {
            return Err(KafkaError::TransactionFailed {
                id: transactional_id.to_string(),
                why: "`--reset` cannot start a consumer group's member over (the others go on \
                      from the group's offsets): stop every member, then reset the group with \
                      Kafka's tools and delete the progress topic"
                    .into(),
            });
        }
        tracing::info!(
            "{transactional_id}: starting over (--reset): the progress earlier runs committed is \
             ignored, and the first commit replaces it"
        );
        (Default::default(), MarkBook::starting_over())
    } else {
        let name = topic.to_string();
        let read = tokio::task::spawn_blocking(move || read_progress(&reader, &name, wait))
            .await
            .map_err(|e| KafkaError::TransactionFailed {
                id: transactional_id.to_string(),
                why: format!("reading progress marks: {e}"),
            })??;
        tracing::debug!(
            "{transactional_id}: {} progress marks from the last {} records of {topic}",
            read.marks.len(),
            read.records_read,
        );
        let book = MarkBook::new(&read, !member);
        (read, book)
    };
    let (marks, meanings) = by_stage(&read.marks);
    check_meanings(&resumed.meanings(), &meanings, topic)?;
    Ok((marks, book))
}
