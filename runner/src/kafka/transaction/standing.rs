//! A consumer-group member's standing in its group, as its transactions need it: the group
//! metadata (generation and member id) that each `send_offsets_to_transaction` carries, so the
//! broker can refuse the offsets of a member that has not yet heard of a rebalance (KIP-447), and
//! whether the group hands partitions over eagerly (all of them at each rebalance) or
//! cooperatively.
//!
//! librdkafka's group metadata is a snapshot: taken once at start it names no generation and no
//! member, and the broker cannot tell a zombie's commit from a current one. The member's
//! rebalance callback refreshes it at every grant.

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError as ClientError, RDKafkaErrorCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// See the module documentation. Shared by a group source and the run's transactor.
#[derive(Default)]
pub struct GroupStanding {
    metadata: Mutex<Option<ConsumerGroupMetadata>>,
    cooperative: AtomicBool,
    /// The source is a consumer-group member (it reads again from the committed offsets of
    /// whatever the group grants it), not a reader of every partition.
    member: AtomicBool,
}

impl GroupStanding {
    /// Records the member's group metadata as it is now (at start, and after each grant) and
    /// whether the group's rebalance protocol is cooperative.
    pub fn update(&self, metadata: Option<ConsumerGroupMetadata>, cooperative: bool) {
        if let Some(metadata) = metadata {
            *self.lock() = Some(metadata);
        }
        self.cooperative.store(cooperative, Ordering::Release);
    }

    /// The metadata to commit offsets with (held while the commit uses it).
    pub(super) fn lock(&self) -> MutexGuard<'_, Option<ConsumerGroupMetadata>> {
        self.metadata.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the source as a consumer-group member.
    pub fn set_member(&self) {
        self.member.store(true, Ordering::Release);
    }

    /// True for a consumer-group member.
    pub(super) fn is_member(&self) -> bool {
        self.member.load(Ordering::Acquire)
    }

    /// True when a rebalance takes only some partitions away: a member fenced mid-generation
    /// then keeps partitions whose read positions ran past what its aborted transaction wrote.
    pub(super) fn is_cooperative(&self) -> bool {
        self.cooperative.load(Ordering::Acquire)
    }
}

/// True when `error` is the broker refusing a group member's offsets because the group moved on.
pub(super) fn is_fencing(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Transaction(e) if matches!(
            e.code(),
            RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::FencedInstanceId
        )
    )
}
