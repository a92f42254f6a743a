//! Creating the topics a pipeline uses, with explicit settings, before it reads or writes them
//! (rather than relying on a broker's auto-creation and its defaults).

use super::KafkaError;
use super::KafkaOptions;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;

/// Creates each of `topics` that does not exist yet, with the partitions, replication factor and
/// topic settings of `options`.
pub async fn ensure_topics(
    config: &ClientConfig,
    options: &KafkaOptions,
    topics: &[String],
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|source| KafkaError::Client {
            role: "admin client",
            source,
        })?;
    let settings: Vec<(String, String)> = options
        .topic_config
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|name| {
            settings.iter().fold(
                NewTopic::new(
                    name,
                    options.partitions,
                    TopicReplication::Fixed(options.replication_factor),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let admin_options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &admin_options)
        .await
        .map_err(|source| KafkaError::CreateTopics {
            topics: topics.to_vec(),
            source,
        })?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!("created topic {name} ({} partition(s))", options.partitions)
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}
