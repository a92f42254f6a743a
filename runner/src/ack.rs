//! End-to-end acknowledgement: a source that can resume (Kafka) hands each batch it reads a
//! *ticket*; the ticket travels with the batch and with everything derived from it (filtered and
//! re-shaped batches, fan-out copies, the window results it was counted into) and is settled when
//! the last of those is gone. A sink lets go of a batch only once it has delivered it, so "settled"
//! means "delivered everywhere". The source's [`Ledger`] then commits the highest offset below which
//! every ticket has settled.
//!
//! A ticket settles as *failed* when it is explicitly marked (a sink could not deliver), when it is
//! let go while the thread is unwinding from a panic, or when the run has failed (then batches are
//! dropped unread). A ledger never commits past a failed ticket, so a restart reads those records
//! again: delivery is at least once.
//!
//! Kafka transactions fit the same path: a transactional sink would keep tickets until its
//! transaction commits, and the ledger would hand the offsets to that transaction instead of
//! committing them itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where a source learns that the tickets it handed out have settled.
pub trait Ledger: Send + Sync {
    /// Ticket `seq` has settled: every batch carrying it was delivered (`delivered`) or at least
    /// one was lost (`!delivered`).
    fn settle(&self, seq: u64, delivered: bool);
}

/// One ticket: settles with its ledger when the last holder lets go.
struct Ticket {
    seq: u64,
    failed: AtomicBool,
    ledger: Arc<dyn Ledger>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let delivered = !self.failed.load(Ordering::Acquire) && !std::thread::panicking();
        self.ledger.settle(self.seq, delivered);
    }
}

/// The tickets a batch carries (none for sources that cannot resume, which costs nothing).
#[derive(Clone, Default)]
pub struct Acks(Vec<Arc<Ticket>>);

impl Acks {
    /// A fresh ticket `seq` that settles with `ledger`.
    pub fn issue(ledger: Arc<dyn Ledger>, seq: u64) -> Acks {
        Acks(vec![Arc::new(Ticket {
            seq,
            failed: AtomicBool::new(false),
            ledger,
        })])
    }

    /// True when the batch carries no ticket.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of tickets held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Takes over every ticket of `other`.
    pub fn absorb(&mut self, other: Acks) {
        if self.0.is_empty() {
            self.0 = other.0;
        } else {
            self.0.extend(other.0);
        }
    }

    /// Marks every ticket as not delivered: its source will not commit past it.
    pub fn fail(&self) {
        for ticket in &self.0 {
            ticket.failed.store(true, Ordering::Release);
        }
    }
}

impl fmt::Debug for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|t| t.seq))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, bool)>>);

    impl Ledger for Recorder {
        fn settle(&self, seq: u64, delivered: bool) {
            self.0.lock().unwrap().push((seq, delivered));
        }
    }

    #[test]
    fn a_ticket_settles_once_when_the_last_copy_goes() {
        let ledger = Arc::new(Recorder::default());
        let acks = Acks::issue(ledger.clone(), 7);
        let copy = acks.clone();
        let mut merged = Acks::default();
        merged.absorb(copy);
        drop(acks);
        assert!(ledger.0.lock().unwrap().is_empty());
        drop(merged);
        assert_eq!(*ledger.0.lock().unwrap(), [(7, true)]);
    }

    #[test]
    fn a_failed_or_panicked_ticket_settles_undelivered() {
        let ledger = Arc::new(Recorder::default());
        let failed = Acks::issue(ledger.clone(), 1);
        failed.fail();
        drop(failed);
        let held = Acks::issue(ledger.clone(), 2);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = held;
            panic!("boom");
        }));
        assert_eq!(*ledger.0.lock().unwrap(), [(1, false), (2, false)]);
    }
}
