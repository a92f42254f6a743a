//! A stage's error output: the records it rejects — a bad CSV row, an undecodable Kafka message,
//! a record too late for its window, a row a sink cannot show — each with the reason and where
//! it came from, as records of their own. Another component reads them by naming
//! `<stage>.errors` among its `inputs` (a file, a dead-letter Kafka topic, the console); when
//! nothing does, a [`Rejects`] is disconnected and rejecting costs nothing beyond the count the
//! stage keeps anyway.
//!
//! Rejected records carry the delivery tickets of the input they came from, so the source does
//! not commit past a rejected record before its error record has been delivered: a dead-letter
//! topic is as durable as the main output.
//!
//! A stage collects rejections while it works ([`Rejects::reject`]) and they leave as one batch
//! at its next flush: the engine flushes after every call into a transform or sink; a source
//! flushes after each batch it sends ([`Rejects::flush`] / [`Rejects::blocking_flush`]), having
//! first attached that batch's tickets ([`Rejects::attach`]).

use crate::ack::Acks;
use crate::record::json::row_json;
use crate::record::{Batch, BatchBuilder, Schema};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::mpsc;

/// The fields of an error record, in order.
pub const ERROR_FIELDS: [&str; 4] = ["stage", "reason", "at", "record"];

/// Error batches that may wait between a stage and its errors stream before the stage waits.
const QUEUED_BATCHES: usize = 16;

/// The schema of error records (shared by every errors stream).
pub fn error_schema() -> Arc<Schema> {
    static SCHEMA: OnceLock<Arc<Schema>> = OnceLock::new();
    Arc::clone(SCHEMA.get_or_init(|| Arc::new(Schema::new(ERROR_FIELDS))))
}

/// One rejected record.
#[derive(Clone, Copy, Debug)]
pub struct Rejected<'a> {
    /// Why it was rejected, e.g. `expected 7 fields, found 3`.
    pub reason: &'a str,
    /// Where it came from: `file:line`, `topic/partition@offset`, or what the stage knows.
    pub at: &'a str,
    /// The record as text: the raw line or message, or the record's fields as JSON.
    pub record: &'a str,
}

/// Where a stage sends the records it rejects; disconnected unless a component reads
/// `<stage>.errors`. Clones share one buffer and one stream.
#[derive(Clone, Default)]
pub struct Rejects(Option<Arc<Stream>>);

/// A [`Rejects`] that does not keep its stream open (the stream ends when the last `Rejects`
/// goes).
#[derive(Clone, Default)]
pub struct WeakRejects(Option<Weak<Stream>>);

struct Stream {
    /// The rejecting component's id, written into each error record.
    stage: Arc<str>,
    to: mpsc::Sender<Batch>,
    pending: Mutex<Pending>,
}

struct Pending {
    rows: BatchBuilder,
    acks: Acks,
}

impl std::fmt::Debug for Rejects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(stream) => write!(f, "Rejects({}.errors)", stream.stage),
            None => f.write_str("Rejects(disconnected)"),
        }
    }
}

/// A connected [`Rejects`] for the component `stage`, and the receiving end of its errors
/// stream (which ends when every clone of the `Rejects` is gone).
pub fn error_stream(stage: &str) -> (Rejects, mpsc::Receiver<Batch>) {
    let (to, from) = mpsc::channel(QUEUED_BATCHES);
    let stream = Stream {
        stage: Arc::from(stage),
        to,
        pending: Mutex::new(Pending {
            rows: BatchBuilder::with_capacity(error_schema(), 16),
            acks: Acks::default(),
        }),
    };
    (Rejects(Some(Arc::new(stream))), from)
}

impl Rejects {
    /// Rejects that go nowhere (nothing reads the stage's errors).
    pub fn disconnected() -> Rejects {
        Rejects(None)
    }

    /// Whether anything reads these rejections. When not, a stage need not describe them.
    pub fn is_connected(&self) -> bool {
        self.0.is_some()
    }

    /// Adds one error record, stamped with the processing time, to the next flush.
    pub fn reject(&self, rejected: Rejected<'_>) {
        let Some(stream) = &self.0 else { return };
        let mut pending = stream.lock();
        pending.rows.push_str(&stream.stage);
        pending.rows.push_str(rejected.reason);
        pending.rows.push_str(rejected.at);
        pending.rows.push_str(rejected.record);
        pending.rows.end_row(crate::time::now_millis());
    }

    /// Rejects rows of `batch` (its positions, each with the reason), as JSON records, keeping
    /// the batch's tickets with them.
    pub fn reject_rows(&self, batch: &Batch, rows: &[(usize, &str)]) {
        if !self.is_connected() {
            return;
        }
        for &(index, reason) in rows {
            if index < batch.len() {
                let row = batch.row(index);
                self.reject(Rejected {
                    reason,
                    at: &format!("event time {}", row.event_time()),
                    record: &row_json(&row),
                });
            }
        }
        self.attach(batch.acks());
    }

    /// The error records waiting for the next flush carry `acks` too: for a source, the
    /// tickets of the batch read with them.
    pub fn attach(&self, acks: &Acks) {
        let Some(stream) = &self.0 else { return };
        let mut pending = stream.lock();
        if !pending.rows.is_empty() && !acks.is_empty() {
            pending.acks.absorb(acks.clone());
        }
    }

    /// The waiting error records as one batch, if any.
    fn take(&self) -> Option<(&Stream, Batch)> {
        let stream = self.0.as_deref()?;
        let mut pending = stream.lock();
        if pending.rows.is_empty() {
            return None;
        }
        let acks = std::mem::take(&mut pending.acks);
        Some((stream, pending.rows.take().with_acks(acks)))
    }

    /// Sends the waiting error records, waiting while the errors stream is full. When it is
    /// gone (its readers stopped), they are dropped: the run is stopping.
    pub async fn flush(&self) {
        if let Some((stream, batch)) = self.take() {
            let _ = stream.to.send(batch).await;
        }
    }

    /// [`flush`](Self::flush) for code on a blocking thread.
    pub fn blocking_flush(&self) {
        if let Some((stream, batch)) = self.take() {
            let _ = stream.to.blocking_send(batch);
        }
    }

    /// The waiting error records as one batch, for a driver that hands them on itself instead
    /// of through the stream (the `weir test` harness, which runs without tasks).
    pub fn drain(&self) -> Option<Batch> {
        self.take().map(|(_, batch)| batch)
    }

    /// A handle that can give these rejects back while any clone is alive.
    pub fn downgrade(&self) -> WeakRejects {
        WeakRejects(self.0.as_ref().map(Arc::downgrade))
    }
}

impl WeakRejects {
    /// The rejects, or disconnected ones when the stream has ended.
    pub fn upgrade(&self) -> Rejects {
        Rejects(self.0.as_ref().and_then(Weak::upgrade))
    }
}

impl Stream {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ledger;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Settled(AtomicU64);
    impl Ledger for Settled {
        fn settle(&self, _seq: u64, delivered: bool) {
            assert!(delivered);
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn rejections_leave_as_one_batch_holding_the_tickets_of_their_input() {
        let (rejects, mut stream) = error_stream("csv");
        let ledger = Arc::new(Settled::default());
        let input = Acks::issue(Arc::clone(&ledger) as Arc<dyn Ledger>, 1);
        rejects.reject(Rejected {
            reason: "expected 7 fields, found 3",
            at: "log.csv:4",
            record: "1,2,3",
        });
        rejects.clone().reject(Rejected {
            reason: "not a number",
            at: "log.csv:9",
            record: "x",
        });
        rejects.attach(&input);
        drop(input);
        assert_eq!(ledger.0.load(Ordering::SeqCst), 0, "held by the rejects");
        rejects.blocking_flush();
        let batch = stream.try_recv().unwrap();
        assert_eq!(batch.len(), 2);
        let row = batch.row(1);
        let text = |f| {
            let mut out = String::new();
            row.get_by_name(f).unwrap().write_text(&mut out);
            out
        };
        assert_eq!(
            [text("stage"), text("reason"), text("at"), text("record")],
            ["csv", "not a number", "log.csv:9", "x"]
        );
        assert_eq!(
            ledger.0.load(Ordering::SeqCst),
            0,
            "held by the error batch"
        );
        drop(batch);
        assert_eq!(ledger.0.load(Ordering::SeqCst), 1);
        // Nothing waiting: a flush sends nothing.
        rejects.blocking_flush();
        assert!(stream.try_recv().is_err());
        // The stream ends with the last rejects; a weak handle does not hold it open.
        let weak = rejects.downgrade();
        assert!(weak.upgrade().is_connected());
        drop(rejects);
        assert!(!weak.upgrade().is_connected());
        assert!(stream.blocking_recv().is_none());
    }

    #[test]
    fn disconnected_rejects_keep_nothing() {
        let rejects = Rejects::disconnected();
        rejects.reject(Rejected {
            reason: "r",
            at: "a",
            record: "x",
        });
        assert!(!rejects.is_connected());
        assert!(rejects.take().is_none());
    }
}
