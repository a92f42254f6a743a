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
//! Kafka transactions fit the same path: a transactional sink keeps tickets until its transaction
//! is about to commit, and the offsets the ledger then allows go into that transaction.
//!
//! A batch also carries *progress marks*: a stateful stage that has emitted everything up to a
//! point (a window: every window ending at or before time `t`) marks its output with that point.
//! A transactional sink stores the marks of what it wrote in the same transaction, so a restarted
//! stage knows which of the records it reads again were already accounted for.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Where a source learns that the tickets it handed out have settled.
pub trait Ledger: Send + Sync {
    /// Ticket `seq` has settled: every batch carrying it was delivered (`delivered`) or at least
    /// one was lost (`!delivered`).
    fn settle(&self, seq: u64, delivered: bool);

    /// Ticket `seq` was given up on purpose: its records were dropped because another process
    /// reads them again (a consumer-group member handing its partitions over), so they must not
    /// be committed here, and nothing failed. A ledger that cannot tell this apart counts it as
    /// undelivered.
    fn abandon(&self, seq: u64) {
        self.settle(seq, false);
    }

    /// Ticket `seq` settled, but the records it covers that were read in the consumer-group
    /// `tenures` (each ended: the member is handing those partitions over) were dropped
    /// uncounted, so those positions must not be committed here; the rest were delivered. A
    /// ledger that cannot tell this apart gives the whole ticket up.
    fn abandon_tenures(&self, seq: u64, tenures: &[u64]) {
        let _ = tenures;
        self.abandon(seq);
    }
}

/// One ticket: settles with its ledger when the last holder lets go.
struct Ticket {
    seq: u64,
    failed: AtomicBool,
    abandoned: AtomicBool,
    /// Tenures whose records in this ticket were dropped (see [`Acks::abandon_tenure`]).
    abandoned_tenures: Mutex<Vec<u64>>,
    ledger: Arc<dyn Ledger>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let tenures = std::mem::take(
            &mut *self
                .abandoned_tenures
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if std::thread::panicking() || self.failed.load(Ordering::Acquire) {
            self.ledger.settle(self.seq, false);
        } else if self.abandoned.load(Ordering::Acquire) {
            self.ledger.abandon(self.seq);
        } else if !tenures.is_empty() {
            self.ledger.abandon_tenures(self.seq, &tenures);
        } else {
            self.ledger.settle(self.seq, true);
        }
    }
}

/// A stage's progress: the stage (its key path) has emitted everything up to `through`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The stage's key path, e.g. `transforms.per_second`.
    pub stage: Arc<str>,
    /// How far it has emitted (for a window: every window ending at or before this).
    pub through: i64,
}

/// The tickets a batch carries (none for sources that cannot resume, which costs nothing), and
/// the progress marks of the stages it came through.
#[derive(Clone, Default)]
pub struct Acks {
    tickets: Vec<Arc<Ticket>>,
    marks: Vec<Mark>,
}

impl Acks {
    /// A fresh ticket `seq` that settles with `ledger`.
    pub fn issue(ledger: Arc<dyn Ledger>, seq: u64) -> Acks {
        Acks {
            tickets: vec![Arc::new(Ticket {
                seq,
                failed: AtomicBool::new(false),
                abandoned: AtomicBool::new(false),
                abandoned_tenures: Mutex::new(Vec::new()),
                ledger,
            })],
            marks: Vec::new(),
        }
    }

    /// True when the batch carries no ticket.
    pub fn is_empty(&self) -> bool {
        self.tickets.is_empty()
    }

    /// True when it carries neither a ticket nor a progress mark (marks travel without tickets
    /// from a source that has no transaction to keep them).
    pub fn carries_nothing(&self) -> bool {
        self.tickets.is_empty() && self.marks.is_empty()
    }

    /// Number of tickets held.
    pub fn len(&self) -> usize {
        self.tickets.len()
    }

    /// Takes over every ticket and mark of `other`.
    pub fn absorb(&mut self, other: Acks) {
        if self.tickets.is_empty() {
            self.tickets = other.tickets;
        } else {
            self.tickets.extend(other.tickets);
        }
        for mark in other.marks {
            self.mark(mark.stage, mark.through);
        }
    }

    /// Records that `stage` has emitted everything through `through` (keeps the furthest mark
    /// per stage).
    pub fn mark(&mut self, stage: Arc<str>, through: i64) {
        match self.marks.iter_mut().find(|m| m.stage == stage) {
            Some(mark) => mark.through = mark.through.max(through),
            None => self.marks.push(Mark { stage, through }),
        }
    }

    /// Sets the progress mark of `stage` to `through` if it carries one, whatever it was (for
    /// a stage that hands on only part of what its instances marked).
    pub fn replace_mark(&mut self, stage: &str, through: i64) {
        if let Some(mark) = self.marks.iter_mut().find(|m| &*m.stage == stage) {
            mark.through = through;
        }
    }

    /// The progress marks carried.
    pub fn marks(&self) -> &[Mark] {
        &self.marks
    }

    /// Gives every ticket up (see [`Ledger::abandon`]): for a stage that drops records another
    /// process reads again. A failure still wins.
    pub fn abandon(&self) {
        for ticket in &self.tickets {
            ticket.abandoned.store(true, Ordering::Release);
        }
    }

    /// Gives up the records of consumer-group tenure `tenure` in every ticket (see
    /// [`Ledger::abandon_tenures`]): for a stage that drops the records of a partition being
    /// handed over, which its next owner reads again. The other records' positions still count
    /// as delivered once the tickets settle.
    pub fn abandon_tenure(&self, tenure: u64) {
        for ticket in &self.tickets {
            let mut tenures = ticket
                .abandoned_tenures
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !tenures.contains(&tenure) {
                tenures.push(tenure);
            }
        }
    }

    /// Marks every ticket as not delivered: its source will not commit past it.
    pub fn fail(&self) {
        for ticket in &self.tickets {
            ticket.failed.store(true, Ordering::Release);
        }
    }

    /// A handle that can mark these tickets undelivered later without holding them (so it
    /// does not delay their settling): for whoever hands the batch on and must fail it if the
    /// receiver reports an error while still holding it.
    pub fn on_failure(&self) -> FailureHandle {
        FailureHandle(self.tickets.iter().map(Arc::downgrade).collect())
    }
}

/// See [`Acks::on_failure`].
pub struct FailureHandle(Vec<std::sync::Weak<Ticket>>);

impl FailureHandle {
    /// Marks every ticket still held somewhere as not delivered.
    pub fn fail(&self) {
        for ticket in self.0.iter().filter_map(std::sync::Weak::upgrade) {
            ticket.failed.store(true, Ordering::Release);
        }
    }
}

impl fmt::Debug for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acks")
            .field(
                "tickets",
                &self.tickets.iter().map(|t| t.seq).collect::<Vec<_>>(),
            )
            .field("marks", &self.marks)
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
    fn marks_merge_to_the_furthest_per_stage() {
        let mut acks = Acks::default();
        acks.mark(Arc::from("w"), 5);
        let mut other = Acks::default();
        other.mark(Arc::from("w"), 9);
        other.mark(Arc::from("v"), 1);
        acks.absorb(other);
        let mut older = Acks::default();
        older.mark(Arc::from("w"), 3);
        acks.absorb(older);
        assert_eq!(
            acks.marks(),
            [
                Mark {
                    stage: Arc::from("w"),
                    through: 9
                },
                Mark {
                    stage: Arc::from("v"),
                    through: 1
                }
            ]
        );
    }

    #[derive(Default)]
    struct Abandons(Mutex<Vec<(u64, &'static str)>>);

    impl Ledger for Abandons {
        fn settle(&self, seq: u64, delivered: bool) {
            let outcome = if delivered { "delivered" } else { "failed" };
            self.0.lock().unwrap().push((seq, outcome));
        }

        fn abandon(&self, seq: u64) {
            self.0.lock().unwrap().push((seq, "abandoned"));
        }
    }

    #[test]
    fn an_abandoned_ticket_settles_as_abandoned_unless_it_also_failed() {
        let ledger = Arc::new(Abandons::default());
        let given_up = Acks::issue(ledger.clone(), 1);
        given_up.abandon();
        drop(given_up);
        let both = Acks::issue(ledger.clone(), 2);
        both.abandon();
        both.fail();
        drop(both);
        assert_eq!(*ledger.0.lock().unwrap(), [(1, "abandoned"), (2, "failed")]);
    }

    #[derive(Default)]
    struct TenureAbandons(Mutex<Vec<(u64, Vec<u64>)>>);

    impl Ledger for TenureAbandons {
        fn settle(&self, seq: u64, delivered: bool) {
            self.0
                .lock()
                .unwrap()
                .push((seq, vec![u64::from(delivered)]));
        }

        fn abandon_tenures(&self, seq: u64, tenures: &[u64]) {
            self.0.lock().unwrap().push((seq, tenures.to_vec()));
        }
    }

    #[test]
    fn a_ticket_given_up_for_some_tenures_reports_them_once_when_it_settles() {
        let ledger = Arc::new(TenureAbandons::default());
        let acks = Acks::issue(ledger.clone(), 3);
        let copy = acks.clone();
        acks.abandon_tenure(7);
        copy.abandon_tenure(9);
        copy.abandon_tenure(7);
        drop(acks);
        assert!(ledger.0.lock().unwrap().is_empty(), "a copy still holds it");
        drop(copy);
        assert_eq!(*ledger.0.lock().unwrap(), [(3, vec![7, 9])]);
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
