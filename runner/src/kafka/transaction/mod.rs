//! Exactly-once writes: one transactional producer per run and cluster (a [`Transactor`]) that
//! every `kafka` sink of the run writes through, so all their output, the offsets of the Kafka
//! sources it came from, and the progress marks of the stages in between become visible together
//! or not at all — the design of Kafka Streams, with one transaction per commit interval.
//!
//! A commit, under the lock that also guards writing (so nothing is written while it runs):
//! 1. the delivery tickets of everything written in the open transaction are let go, so each
//!    source's ledger moves its commit point over records whose results are all in it;
//! 2. the progress marks carried by what was written go to the run's progress topic
//!    (`<transactional id>.progress`, key = stage, value = how far it had emitted), now and then
//!    with a snapshot of all of them, so a start reads only the topic's tail (`progress`);
//! 3. each source's commit point goes in with `send_offsets_to_transaction`;
//! 4. `commit_transaction`.
//!
//! If any step fails the transaction is aborted and the run fails; nothing of it is visible to a
//! `read_committed` reader and the next run resumes from the previous commit. One failure is not
//! the end of the run: a consumer-group member whose offsets the broker refuses because the group
//! has moved on (it gave a partition to another member before this one heard of the rebalance)
//! aborts, writes nothing more until the group grants it partitions again (each from its
//! committed offset), and goes on — what the aborted transaction held is read again by the
//! partitions' owners. A restarted or
//! duplicate process with the same transactional id fences this one (`init_transactions`), and the
//! broker aborts whatever transaction the old one left open.

mod loading;
mod meaning;
mod open;
mod producer;
mod progress;
mod registered;
mod standing;
mod transactor;

pub use progress::{progress_snapshot, read_progress_marks};
pub use registered::{CommitPoint, Offsets};
pub use standing::GroupStanding;
pub use transactor::Transactor;

use super::KafkaOptions;
use super::link::TopicLinks;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The run's transactors, one per cluster (`brokers`) and transactional id.
#[derive(Default)]
pub struct Transactions {
    all: Mutex<HashMap<(String, String), Arc<Transactor>>>,
    /// Set when a source of the run is a consumer-group member: every process of the group runs
    /// the same pipeline, so each writes under its own transactional id (this suffix), while all
    /// keep their progress marks in the pipeline's one progress topic.
    member: std::sync::OnceLock<String>,
}

impl Transactions {
    /// A source of this run joins a consumer group (called when sources are built, before sinks).
    pub fn joins_a_group(&self) {
        self.member.get_or_init(|| {
            let started = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("member-{}-{started:x}", std::process::id())
        });
    }

    /// A sink with `options` will write through the transactor of its cluster and transactional
    /// id (called when the sink is built, before anything runs).
    pub fn add_writer(
        &self,
        options: &KafkaOptions,
        transactional_id: &str,
        links: Arc<TopicLinks>,
        resumed: Arc<crate::resume::Resumed>,
    ) -> Arc<Transactor> {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let writer_id = match self.member.get() {
            Some(member) => format!("{transactional_id}.{member}"),
            None => transactional_id.to_string(),
        };
        let transactor = all
            .entry((options.brokers().to_string(), transactional_id.to_string()))
            .or_insert_with(|| {
                Arc::new(Transactor::new(
                    options.clone(),
                    writer_id,
                    transactional_id.to_string(),
                    links,
                    resumed,
                ))
            });
        transactor.add_writer();
        Arc::clone(transactor)
    }

    /// The run's first transactor (by cluster and id), if a sink of this run writes in
    /// transactions: where a source that is not on a cluster keeps its position.
    pub fn first(&self) -> Option<Arc<Transactor>> {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .min_by(|a, b| a.0.cmp(b.0))
            .map(|(_, t)| Arc::clone(t))
    }

    /// The transactor that writes to the cluster at `brokers`, if a sink of this run does.
    /// (With several transactional ids on one cluster, the first one by id.)
    pub fn for_brokers(&self, brokers: &str) -> Option<Arc<Transactor>> {
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .filter(|((b, _), _)| b == brokers)
            .min_by(|a, b| a.0.cmp(b.0))
            .map(|(_, t)| Arc::clone(t))
    }
}
