//! A resumable source's ledger: which positions may be committed. Every batch the source sends gets
//! a ticket that records, per partition it read from (a Kafka partition, or the one "partition" of
//! a file), the position after its last record. Tickets
//! settle in any order; the commit point only moves over the longest prefix of settled,
//! delivered tickets (Benthos calls this the checkpoint limit), so nothing is committed while an
//! earlier record may still be lost.
//!
//! A source in a consumer group owns its partitions only for a while: [`Checkpoints::revoke`]
//! forgets a partition's commit point, and positions of tickets issued before it are never
//! committed afterwards (another member resumes the partition from the group's commit point, and
//! a late, smaller offset from here would rewind it). Each grant of a partition is a new
//! *tenure*; a ticket's positions count only within the tenure they were read in.
//!
//! Tenures are numbered by the run's [`Tenures`], which stages that hold records per partition
//! (a window's partial results) consult: while a tenure is being handed over they drop what they
//! hold of it and *abandon* its tickets (see [`Ledger::abandon`]); the ledger does not commit past
//! an abandoned ticket, and once its tenure has ended forgets it.

use crate::ack::{Acks, Ledger};
use crate::kafka::transaction::{CommitPoint, Offsets};
use crate::stage::RunHealth;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A topic and partition.
pub type Partition = (Arc<str>, i32);

/// The run's tenures: each grant of a partition to a group member gets a number unique in the
/// process, *current* until the member starts handing the partition over. A run resource, shared
/// by the sources that number them and the stages that hold records per tenure.
#[derive(Debug)]
pub struct Tenures {
    next: AtomicU64,
    state: Mutex<TenureSets>,
}

#[derive(Debug, Default)]
struct TenureSets {
    current: HashSet<u64>,
    /// Read to the end of their partition with nothing new (see the kafka source's idleness).
    idle: HashSet<u64>,
}

impl Default for Tenures {
    fn default() -> Self {
        Tenures {
            // 0 stands for "owned for good" (a source that assigned itself its partitions).
            next: AtomicU64::new(1),
            state: Mutex::default(),
        }
    }
}

impl Tenures {
    fn sets(&self) -> std::sync::MutexGuard<'_, TenureSets> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new current tenure.
    pub fn begin(&self) -> u64 {
        let tenure = self.next.fetch_add(1, Ordering::Relaxed);
        self.sets().current.insert(tenure);
        tenure
    }

    /// These tenures are being handed over (or are over): no longer current.
    pub fn end(&self, tenures: impl IntoIterator<Item = u64>) {
        let mut sets = self.sets();
        for tenure in tenures {
            sets.current.remove(&tenure);
            sets.idle.remove(&tenure);
        }
    }

    /// True while `tenure` is current.
    pub fn is_current(&self, tenure: u64) -> bool {
        tenure == 0 || self.sets().current.contains(&tenure)
    }

    /// Notes whether `tenure`'s partition has been read to its end with nothing new.
    pub fn set_idle(&self, tenure: u64, idle: bool) {
        let mut sets = self.sets();
        if idle && sets.current.contains(&tenure) {
            sets.idle.insert(tenure);
        } else {
            sets.idle.remove(&tenure);
        }
    }

    /// True when `tenure`'s partition was last reported read to its end.
    pub fn is_idle(&self, tenure: u64) -> bool {
        self.sets().idle.contains(&tenure)
    }
}

/// Offsets handed out and how far they may be committed.
#[derive(Debug)]
pub struct Checkpoints {
    state: Mutex<State>,
    health: RunHealth,
    tenures: Arc<Tenures>,
}

#[derive(Debug, Default)]
struct State {
    /// Ticket number of `pending[0]`.
    first: u64,
    pending: VecDeque<Pending>,
    /// The commit point: per partition, the offset to resume from.
    committable: HashMap<Partition, i64>,
    /// True when `committable` moved since it was last taken.
    moved: bool,
    /// A ticket settled undelivered: the commit point stays where it is for good.
    stuck: bool,
    /// Group members only: the partitions owned now, each with its tenure. `None`: every
    /// partition read is owned for good (the source assigned itself its partitions).
    owned: Option<HashMap<Partition, u64>>,
    /// Tenures some of whose records were dropped uncounted (see `Settled::Delivered`): no
    /// position read in them is committed any more.
    given_up: HashSet<u64>,
}

/// How a ticket settled.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Settled {
    /// Delivered, except the records read in these tenures (ended), which were dropped for the
    /// partitions' next owners: their positions are never committed here, nor any later
    /// position in those tenures.
    Delivered {
        except: Vec<u64>,
    },
    Failed,
    Abandoned,
}

#[derive(Debug)]
struct Pending {
    /// Per partition: where reading resumes after this ticket's records, and the tenure they were
    /// read in.
    resume_at: Vec<(Partition, i64, u64)>,
    settled: Option<Settled>,
}

impl Checkpoints {
    /// An empty ledger for a run with `health`, numbering its tenures itself.
    pub fn new(health: RunHealth) -> Arc<Self> {
        Self::sharing(health, Arc::default())
    }

    /// An empty ledger numbering its tenures in the run's `tenures`.
    pub fn sharing(health: RunHealth, tenures: Arc<Tenures>) -> Arc<Self> {
        Arc::new(Checkpoints {
            state: Mutex::new(State::default()),
            health,
            tenures,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ticket for a batch after which reading resumes at `resume_at` (per partition).
    /// Positions in partitions not owned (see [`revoke`](Self::revoke)) are left out.
    pub fn issue(self: &Arc<Self>, resume_at: Vec<(Partition, i64)>) -> Acks {
        let mut state = self.state();
        let seq = state.first + state.pending.len() as u64;
        let resume_at = resume_at
            .into_iter()
            .filter_map(|(partition, offset)| {
                let tenure = match &state.owned {
                    None => 0,
                    Some(owned) => *owned.get(&partition)?,
                };
                Some((partition, offset, tenure))
            })
            .collect();
        state.pending.push_back(Pending {
            resume_at,
            settled: None,
        });
        drop(state);
        Acks::issue(Arc::clone(self) as Arc<dyn Ledger>, seq)
    }

    /// The source now owns `partitions` (a consumer group granted them): a new tenure each,
    /// returned in the same order.
    pub fn grant(&self, partitions: &[Partition]) -> Vec<u64> {
        let mut state = self.state();
        let owned = state.owned.get_or_insert_with(HashMap::new);
        partitions
            .iter()
            .map(|partition| {
                let tenure = self.tenures.begin();
                if let Some(old) = owned.insert(partition.clone(), tenure) {
                    self.tenures.end([old]);
                }
                tenure
            })
            .collect()
    }

    /// The source starts handing `partitions` over: their tenures stop being current, so stages
    /// holding records of them drop those and abandon their tickets. The commit point stays
    /// until [`revoke`](Self::revoke).
    pub fn hand_over(&self, partitions: &[Partition]) {
        let state = self.state();
        if let Some(owned) = &state.owned {
            self.tenures
                .end(partitions.iter().filter_map(|p| owned.get(p).copied()));
        }
    }

    /// The source gives `partitions` up: their commit points are forgotten, and positions in them
    /// from tickets issued so far are never committed.
    pub fn revoke(&self, partitions: &[Partition]) {
        let mut state = self.state();
        state.advance();
        let owned = state.owned.get_or_insert_with(HashMap::new);
        let ended: Vec<u64> = partitions.iter().filter_map(|p| owned.remove(p)).collect();
        for tenure in &ended {
            state.given_up.remove(tenure);
        }
        self.tenures.end(ended);
        for partition in partitions {
            state.committable.remove(partition);
        }
        state.advance();
    }

    /// The tenure `partition` is read in now, if this source owns it.
    pub fn tenure_of(&self, partition: &Partition) -> Option<u64> {
        match &self.state().owned {
            None => Some(0),
            Some(owned) => owned.get(partition).copied(),
        }
    }

    /// Tickets not yet settled (once none are, the commit point is as far as it will get).
    pub fn outstanding(&self) -> usize {
        let mut state = self.state();
        state.advance();
        state.pending.iter().filter(|p| p.settled.is_none()).count()
    }

    /// True when some ticket settled undelivered.
    pub fn is_stuck(&self) -> bool {
        self.state().stuck
    }

    /// The point last taken could not be committed: the next [`take_commit`](Self::take_commit)
    /// returns the commit point again even if it has not moved.
    pub fn commit_failed(&self) {
        self.state().moved = true;
    }

    /// The commit point, if it moved since the last call (or its commit failed).
    pub fn take_commit(&self) -> Option<Vec<(Partition, i64)>> {
        let mut state = self.state();
        state.advance();
        if !state.moved {
            return None;
        }
        state.moved = false;
        Some(
            state
                .committable
                .iter()
                .map(|(p, o)| (p.clone(), *o))
                .collect(),
        )
    }
}

impl State {
    /// True when no position of `pending` is in a partition's current tenure.
    fn all_bygone(&self, pending: &Pending) -> bool {
        pending
            .resume_at
            .iter()
            .all(|(partition, _, tenure)| match &self.owned {
                None => false,
                Some(owned) => owned.get(partition) != Some(tenure),
            })
    }

    /// Folds the delivered prefix of tickets into the commit point. A ticket given up or lost
    /// whose positions all belong to tenures that have ended is passed over: its partitions are
    /// read again by their next owner.
    fn advance(&mut self) {
        while let Some(front) = self.pending.front() {
            let bygone = || self.all_bygone(front);
            match &front.settled {
                Some(Settled::Abandoned | Settled::Failed) if bygone() => {
                    self.pending.pop_front();
                    self.first += 1;
                }
                Some(Settled::Delivered { .. }) if !self.stuck => {
                    let done = self.pending.pop_front().expect("front exists");
                    self.first += 1;
                    if let Some(Settled::Delivered { except }) = done.settled {
                        self.given_up.extend(except);
                    }
                    for (partition, offset, tenure) in done.resume_at {
                        let current = match &self.owned {
                            None => true,
                            Some(owned) => owned.get(&partition) == Some(&tenure),
                        };
                        if current && !self.given_up.contains(&tenure) {
                            let at = self.committable.entry(partition).or_insert(offset);
                            *at = (*at).max(offset);
                        }
                    }
                    self.moved = true;
                }
                Some(Settled::Abandoned) => return,
                Some(Settled::Failed) => {
                    // Every cause says so where it happens: a stage's error fails the run, and
                    // a window stopping with open windows says it leaves their records to the
                    // next run (a normal Ctrl-C, where a warning here was noise).
                    if !self.stuck {
                        tracing::debug!(
                            "records were not delivered; their offsets will not be committed \
                             (the next run reads them again)"
                        );
                    }
                    self.stuck = true;
                    return;
                }
                _ => return,
            }
        }
    }
}

impl CommitPoint for Checkpoints {
    fn take_commit(&self) -> Option<Offsets> {
        Checkpoints::take_commit(self)
    }
}

impl Checkpoints {
    fn record(&self, seq: u64, settled: Settled) {
        let mut state = self.state();
        let Some(index) = seq.checked_sub(state.first) else {
            return;
        };
        if let Some(p) = state.pending.get_mut(index as usize) {
            p.settled = Some(settled);
        }
    }
}

impl Ledger for Checkpoints {
    fn settle(&self, seq: u64, delivered: bool) {
        let delivered = delivered && !self.health.has_failed();
        self.record(
            seq,
            if delivered {
                Settled::Delivered { except: Vec::new() }
            } else {
                Settled::Failed
            },
        );
    }

    fn abandon(&self, seq: u64) {
        self.record(seq, Settled::Abandoned);
    }

    fn abandon_tenures(&self, seq: u64, tenures: &[u64]) {
        let settled = if self.health.has_failed() {
            Settled::Failed
        } else {
            Settled::Delivered {
                except: tenures.to_vec(),
            }
        };
        self.record(seq, settled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: i64) -> Vec<(Partition, i64)> {
        vec![((Arc::from("t"), 0), offset)]
    }

    #[test]
    fn commits_only_the_delivered_prefix() {
        let ledger = Checkpoints::new(RunHealth::default());
        let first = ledger.issue(at(10));
        let second = ledger.issue(at(20));
        let third = ledger.issue(at(30));
        drop(second);
        assert_eq!(ledger.take_commit(), None, "the first is still out");
        drop(first);
        assert_eq!(ledger.take_commit(), Some(at(20)));
        assert_eq!(ledger.take_commit(), None, "nothing moved since");
        assert_eq!(ledger.outstanding(), 1);
        drop(third);
        assert_eq!(ledger.take_commit(), Some(at(30)));
        assert_eq!(ledger.outstanding(), 0);
    }

    #[test]
    fn a_failed_commit_is_offered_again() {
        let ledger = Checkpoints::new(RunHealth::default());
        drop(ledger.issue(at(10)));
        assert_eq!(ledger.take_commit(), Some(at(10)));
        assert_eq!(ledger.take_commit(), None);
        ledger.commit_failed();
        assert_eq!(
            ledger.take_commit(),
            Some(at(10)),
            "retried though it did not move"
        );
        assert_eq!(ledger.take_commit(), None);
    }

    #[test]
    fn an_undelivered_ticket_stops_the_commit_point() {
        let health = RunHealth::default();
        let ledger = Checkpoints::new(health.clone());
        let first = ledger.issue(at(10));
        let lost = ledger.issue(at(20));
        let after = ledger.issue(at(30));
        drop(first);
        lost.fail();
        drop(lost);
        drop(after);
        assert_eq!(ledger.take_commit(), Some(at(10)));
        assert!(ledger.is_stuck());
        let late = ledger.issue(at(40));
        health.fail();
        drop(late);
        assert_eq!(ledger.take_commit(), None);
    }

    fn in_partition(partition: i32, offset: i64) -> Vec<(Partition, i64)> {
        vec![((Arc::from("t"), partition), offset)]
    }

    #[test]
    fn a_revoked_partition_is_never_committed_from_an_earlier_tenure() {
        let ledger = Checkpoints::new(RunHealth::default());
        let p0: Partition = (Arc::from("t"), 0);
        let p1: Partition = (Arc::from("t"), 1);
        ledger.grant(&[p0.clone(), p1.clone()]);
        drop(ledger.issue(in_partition(0, 5)));
        let read_before = ledger.issue(in_partition(1, 50));
        assert_eq!(ledger.take_commit(), Some(in_partition(0, 5)));
        ledger.revoke(std::slice::from_ref(&p1));
        ledger.grant(std::slice::from_ref(&p1));
        drop(read_before);
        assert_eq!(
            ledger.take_commit(),
            Some(in_partition(0, 5)),
            "the position read before the revocation must not come back"
        );
        drop(ledger.issue(in_partition(1, 80)));
        let mut point = ledger.take_commit().expect("moved");
        point.sort();
        assert_eq!(point, vec![(p0, 5), (p1, 80)]);
        ledger.revoke(&[(Arc::from("t"), 0)]);
        drop(ledger.issue(in_partition(0, 9)));
        assert_eq!(
            ledger.take_commit(),
            Some(in_partition(1, 80)),
            "no longer owned"
        );
    }

    #[test]
    fn an_abandoned_ticket_holds_the_commit_point_until_its_tenure_ends() {
        let tenures = Arc::new(Tenures::default());
        let ledger = Checkpoints::sharing(RunHealth::default(), Arc::clone(&tenures));
        let p0: Partition = (Arc::from("t"), 0);
        let first = ledger.grant(std::slice::from_ref(&p0))[0];
        assert!(tenures.is_current(first));
        drop(ledger.issue(in_partition(0, 5)));
        let held = ledger.issue(in_partition(0, 10));
        let after = ledger.issue(in_partition(0, 20));
        assert_eq!(ledger.take_commit(), Some(in_partition(0, 5)));
        ledger.hand_over(std::slice::from_ref(&p0));
        assert!(
            !tenures.is_current(first),
            "handing over ends the tenure's currency"
        );
        held.abandon();
        drop(held);
        drop(after);
        assert_eq!(ledger.outstanding(), 0, "nothing is left to wait for");
        assert_eq!(
            ledger.take_commit(),
            None,
            "the delivered ticket behind the abandoned one must not move the commit point"
        );
        assert!(!ledger.is_stuck(), "abandoning is not a failure");
        ledger.revoke(std::slice::from_ref(&p0));
        let second = ledger.grant(std::slice::from_ref(&p0))[0];
        assert_ne!(first, second);
        drop(ledger.issue(in_partition(0, 7)));
        assert_eq!(
            ledger.take_commit(),
            Some(in_partition(0, 7)),
            "after the tenure ended, the next one commits on its own"
        );
    }

    #[test]
    fn records_dropped_for_an_ending_tenure_are_never_committed_while_the_others_are() {
        let tenures = Arc::new(Tenures::default());
        let ledger = Checkpoints::sharing(RunHealth::default(), Arc::clone(&tenures));
        let p0: Partition = (Arc::from("t"), 0);
        let p1: Partition = (Arc::from("t"), 1);
        let granted = ledger.grant(&[p0.clone(), p1.clone()]);
        let (t0, t1) = (granted[0], granted[1]);
        drop(ledger.issue(vec![(p0.clone(), 5), (p1.clone(), 50)]));
        let mut point = ledger.take_commit().expect("moved");
        point.sort();
        assert_eq!(point, vec![(p0.clone(), 5), (p1.clone(), 50)]);
        // p0 is being handed over; a batch with records of both partitions comes through a
        // stage that drops p0's (its tenure ended) and counts p1's.
        ledger.hand_over(std::slice::from_ref(&p0));
        let mixed = ledger.issue(vec![(p0.clone(), 9), (p1.clone(), 60)]);
        mixed.abandon_tenure(t0);
        drop(mixed);
        // A later batch of p0 counted by a stage that did not see the tenure end in time.
        drop(ledger.issue(vec![(p0.clone(), 12)]));
        let mut point = ledger.take_commit().expect("p1 moved");
        point.sort();
        assert_eq!(
            point,
            vec![(p0.clone(), 5), (p1.clone(), 60)],
            "p0 stays before the dropped records; p1 moves on"
        );
        assert_eq!(ledger.outstanding(), 0);
        assert!(!ledger.is_stuck());
        ledger.revoke(std::slice::from_ref(&p0));
        drop(ledger.issue(vec![(p1.clone(), 70)]));
        assert_eq!(ledger.take_commit(), Some(vec![(p1, 70)]));
        assert!(tenures.is_current(t1));
    }
}
