//! What the sources of a run register with its transactions: where each one's commit point comes
//! from, and whether a fence can be sat out given who registered.

use super::GroupStanding;
use std::sync::Arc;

/// Per topic and partition, the offset to resume from.
pub type Offsets = Vec<((Arc<str>, i32), i64)>;

/// Where a source's commit point comes from (its ledger of delivery tickets).
pub trait CommitPoint: Send + Sync {
    /// The commit point, if it moved since the last call.
    fn take_commit(&self) -> Option<Offsets>;
}

/// A source whose progress goes into the transactions: a Kafka source's offsets (committed to
/// its consumer group), or another source's position (kept as a progress mark under its name).
pub(super) enum Registered {
    Offsets {
        group: Arc<GroupStanding>,
        point: Arc<dyn CommitPoint>,
    },
    Position {
        stage: Arc<str>,
        point: Arc<dyn CommitPoint>,
    },
}

/// A fence can be sat out only when every source of the transactions is an eager group member:
/// each then gives all its partitions up at the rebalance and reads them again from the committed
/// offsets. A cooperative member keeps some partitions, and any other source's position would have
/// moved past what the aborted transaction wrote.
pub(super) fn fencing_recoverable(sources: &[Registered]) -> bool {
    sources.iter().all(|source| match source {
        Registered::Offsets { group, .. } => group.is_member() && !group.is_cooperative(),
        Registered::Position { .. } => false,
    })
}
