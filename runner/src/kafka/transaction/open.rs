//! The state of a run's transactional producer under its lock: the producer, the open
//! transaction and what it holds, the failure that ended it — and the steps on it that need
//! nothing else (begin, abort, fail). The commit sequence is the `transactor`'s.

use super::producer::TxnDeliveries;
use super::progress::MarkBook;
use crate::ack::Acks;
use crate::kafka::KafkaError;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::producer::{Producer, ThreadedProducer};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an abort may take: it is best effort (the broker aborts an open transaction anyway
/// when the next producer with the id starts), and it runs when something already went wrong.
const ABORT_TIMEOUT: Duration = Duration::from_secs(5);

/// One transactional producer's state (see the module documentation).
#[derive(Default)]
pub(super) struct State {
    pub(super) producer: Option<ThreadedProducer<TxnDeliveries>>,
    /// A transaction has begun and not yet ended.
    pub(super) open: bool,
    /// Tickets (and marks) of what was written in the open transaction.
    pub(super) held: Vec<Acks>,
    /// Progress marks written since the last commit, by stage.
    pub(super) marks: BTreeMap<Arc<str>, i64>,
    /// The committed marks known, for the snapshots (set by `start`).
    pub(super) book: Option<MarkBook>,
    /// Messages written in the open transaction.
    pub(super) written: u64,
    pub(super) last_commit: Option<Instant>,
    /// The failure that ended this transactor; every later call returns it.
    pub(super) failure: Option<String>,
    /// Transactions committed (for the log at the end).
    pub(super) committed: u64,
    /// The broker refused this member's offsets because its group moved on (see the module
    /// documentation): until the group grants it partitions again, every transaction is aborted
    /// and no commit point or mark goes anywhere.
    pub(super) fenced: bool,
}

impl State {
    pub fn usable(&self, id: &str) -> Result<(), KafkaError> {
        if let Some(why) = &self.failure {
            return Err(KafkaError::TransactionFailed {
                id: id.to_string(),
                why: why.clone(),
            });
        }
        if self.producer.is_none() {
            return Err(KafkaError::TransactionFailed {
                id: id.to_string(),
                why: "the transactional producer was not started".into(),
            });
        }
        Ok(())
    }

    pub fn begin(&mut self, id: &str) -> Result<(), KafkaError> {
        if self.open {
            return Ok(());
        }
        let producer = self.producer.as_ref().expect("checked by usable");
        producer
            .begin_transaction()
            .map_err(|source| self.fail(id, "begin_transaction", source))?;
        self.open = true;
        Ok(())
    }

    /// Records `source` as the failure that ends this transactor and returns it as an error.
    pub fn fail(&mut self, id: &str, step: &'static str, source: ClientError) -> KafkaError {
        let error = KafkaError::Transaction {
            id: id.to_string(),
            step,
            source,
        };
        self.failure.get_or_insert_with(|| error.to_string());
        error
    }

    /// Aborts the open transaction (best effort: the broker aborts it anyway when the next
    /// producer with this id starts).
    pub fn abort(&mut self, id: &str) {
        if !self.open {
            return;
        }
        self.open = false;
        for acks in self.held.drain(..) {
            acks.fail();
        }
        if let Some(producer) = self.producer.as_ref()
            && let Err(e) = producer.abort_transaction(ABORT_TIMEOUT)
        {
            tracing::warn!("{}: aborting the transaction failed: {e}", id);
        }
    }

    pub fn delivery_failure(&self) -> Option<(String, Option<i32>, ClientError)> {
        self.producer.as_ref().and_then(|p| {
            p.context()
                .failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        })
    }
}
