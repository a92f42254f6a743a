//! The counters every stage keeps; the engine prints them when the run ends.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters every stage keeps; the engine prints them when the run ends.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Records that came in.
    pub received: AtomicU64,
    /// Records sent on.
    pub emitted: AtomicU64,
    /// Records (or input rows) dropped as bad or late; each drop is also logged.
    pub dropped: AtomicU64,
}

impl StageMetrics {
    /// Adds `n` dropped records.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads (received, emitted, dropped).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.emitted.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}
