//! The counters every stage keeps, always on and cheap (relaxed atomics, one clock read per
//! batch): records in and out, bytes a source read and a sink wrote, drops, batches and the time
//! spent on them, and the watermark its output carries; a Kafka source adds its partitions'
//! positions, ends and commit points. The engine prints them when the run ends; the control API
//! serves them live.

use crate::record::Millis;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Counters every stage keeps.
#[derive(Debug)]
pub struct StageMetrics {
    /// Records that came in.
    pub received: AtomicU64,
    /// Records sent on.
    pub emitted: AtomicU64,
    /// Bytes a source read from outside (its file, its messages' keys and values).
    bytes_read: AtomicU64,
    /// Bytes a sink wrote to outside (its file or stdout, its messages' keys and values, the
    /// events it sent to browsers).
    bytes_written: AtomicU64,
    /// Records (or input rows) dropped as bad or late; each drop is also logged.
    pub dropped: AtomicU64,
    /// The same, per [`DropReason`].
    dropped_by: [AtomicU64; DropReason::ALL.len()],
    /// Batches handled (transforms and sinks).
    pub batches: AtomicU64,
    /// Time spent handling them, in nanoseconds (a transform's `process`, a sink's `write`).
    pub busy_nanos: AtomicU64,
    /// The latest watermark the stage's output carried (`Millis::MIN`: none yet).
    pub watermark: AtomicI64,
    /// For a Kafka source: the partitions it reads, as its client last reported them.
    partitions: std::sync::Mutex<Vec<PartitionFigures>>,
}

/// A Kafka partition a source reads, as its client reports it every second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionFigures {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset of the next record the source will read (-1: none read yet).
    pub position: i64,
    /// The end of the partition: the offset the next record will get (the last stable offset
    /// for a reader of committed records).
    pub end: i64,
    /// The commit point: the consumer group's committed offset (-1: none).
    pub committed: i64,
}

impl PartitionFigures {
    /// Records still to read.
    pub fn lag(&self) -> i64 {
        if self.position < 0 {
            (self.end - self.committed.max(0)).max(0)
        } else {
            (self.end - self.position).max(0)
        }
    }
}

impl Default for StageMetrics {
    fn default() -> Self {
        StageMetrics {
            received: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            dropped_by: Default::default(),
            batches: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
            watermark: AtomicI64::new(Millis::MIN),
            partitions: std::sync::Mutex::new(Vec::new()),
        }
    }
}

/// Why a stage dropped records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// They arrived after every window they belong to had closed.
    Late,
    /// They could not be read: a malformed csv row, an undecodable Kafka message, a record
    /// without the fields a sink needs.
    Invalid,
    /// Their time is out of what the stage accepts: too far in the future, or too close to
    /// the ends of the time range for any window.
    OutOfRange,
}

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 3] = [
        DropReason::Late,
        DropReason::Invalid,
        DropReason::OutOfRange,
    ];

    /// Its name in metrics: `late`, `invalid`, `out_of_range`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Late => "late",
            DropReason::Invalid => "invalid",
            DropReason::OutOfRange => "out_of_range",
        }
    }
}

/// The counters of a stage at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Records in.
    pub received: u64,
    /// Records out.
    pub emitted: u64,
    /// Bytes read (sources).
    pub bytes_read: u64,
    /// Bytes written (sinks).
    pub bytes_written: u64,
    /// Records dropped.
    pub dropped: u64,
    /// Records dropped per reason, in [`DropReason::ALL`] order.
    pub dropped_by: [u64; DropReason::ALL.len()],
    /// Batches handled.
    pub batches: u64,
    /// Time spent on them.
    pub busy_nanos: u64,
    /// The output's watermark, if it has one yet.
    pub watermark: Option<Millis>,
}

impl StageMetrics {
    /// Counts `n` records dropped for `reason`.
    pub fn add_dropped(&self, reason: DropReason, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        self.dropped_by[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes a source read.
    pub fn add_bytes_read(&self, n: u64) {
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes a sink wrote.
    pub fn add_bytes_written(&self, n: u64) {
        self.bytes_written.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one batch handled in `took`.
    pub fn add_batch(&self, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.busy_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Reads (received, emitted, dropped).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.emitted.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }

    /// Replaces the figures of the partitions a Kafka source reads.
    pub fn set_partitions(&self, partitions: Vec<PartitionFigures>) {
        *self.partitions.lock().unwrap_or_else(|e| e.into_inner()) = partitions;
    }

    /// The figures of the partitions a Kafka source reads (empty for other stages).
    pub fn partitions(&self) -> Vec<PartitionFigures> {
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads every counter.
    pub fn figures(&self) -> Figures {
        let watermark = self.watermark.load(Ordering::Relaxed);
        Figures {
            received: self.received.load(Ordering::Relaxed),
            emitted: self.emitted.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            dropped_by: std::array::from_fn(|i| self.dropped_by[i].load(Ordering::Relaxed)),
            batches: self.batches.load(Ordering::Relaxed),
            busy_nanos: self.busy_nanos.load(Ordering::Relaxed),
            watermark: (watermark != Millis::MIN).then_some(watermark),
        }
    }
}
