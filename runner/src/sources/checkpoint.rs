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

use crate::ack::{Acks, Ledger};
use crate::kafka::transaction::{CommitPoint, Offsets};
use crate::stage::RunHealth;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A topic and partition.
pub type Partition = (Arc<str>, i32);

/// Offsets handed out and how far they may be committed.
#[derive(Debug)]
pub struct Checkpoints {
    state: Mutex<State>,
    health: RunHealth,
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
    /// The tenure the next grant gets.
    next_tenure: u64,
}

#[derive(Debug)]
struct Pending {
    /// Per partition: where reading resumes after this ticket's records, and the tenure they were
    /// read in.
    resume_at: Vec<(Partition, i64, u64)>,
    settled: Option<bool>,
}

impl Checkpoints {
    /// An empty ledger for a run with `health`.
    pub fn new(health: RunHealth) -> Arc<Self> {
        Arc::new(Checkpoints {
            state: Mutex::new(State::default()),
            health,
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

    /// The source now owns `partitions` (a consumer group granted them): a new tenure each.
    pub fn grant(&self, partitions: &[Partition]) {
        let mut state = self.state();
        let tenure = state.next_tenure;
        state.next_tenure += 1;
        let owned = state.owned.get_or_insert_with(HashMap::new);
        for partition in partitions {
            owned.insert(partition.clone(), tenure);
        }
    }

    /// The source gives `partitions` up: their commit points are forgotten, and positions in them
    /// from tickets issued so far are never committed.
    pub fn revoke(&self, partitions: &[Partition]) {
        let mut state = self.state();
        state.advance();
        let owned = state.owned.get_or_insert_with(HashMap::new);
        for partition in partitions {
            owned.remove(partition);
        }
        for partition in partitions {
            state.committable.remove(partition);
        }
    }

    /// Tickets not yet settled or not yet folded into the commit point.
    pub fn outstanding(&self) -> usize {
        let mut state = self.state();
        state.advance();
        state.pending.len()
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
    /// Folds the delivered prefix of tickets into the commit point.
    fn advance(&mut self) {
        while let Some(front) = self.pending.front() {
            match front.settled {
                Some(true) if !self.stuck => {
                    let done = self.pending.pop_front().expect("front exists");
                    self.first += 1;
                    for (partition, offset, tenure) in done.resume_at {
                        let current = match &self.owned {
                            None => true,
                            Some(owned) => owned.get(&partition) == Some(&tenure),
                        };
                        if current {
                            let at = self.committable.entry(partition).or_insert(offset);
                            *at = (*at).max(offset);
                        }
                    }
                    self.moved = true;
                }
                Some(false) => {
                    if !self.stuck {
                        tracing::warn!(
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

impl Ledger for Checkpoints {
    fn settle(&self, seq: u64, delivered: bool) {
        let delivered = delivered && !self.health.has_failed();
        let mut state = self.state();
        let Some(index) = seq.checked_sub(state.first) else {
            return;
        };
        if let Some(p) = state.pending.get_mut(index as usize) {
            p.settled = Some(delivered);
        }
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
}
