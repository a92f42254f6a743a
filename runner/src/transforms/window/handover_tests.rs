//! The hand-over rule of a window shared by a consumer group (docs/scaling.md), as a property:
//! members counting partitions with [`PartialWindow`], each with its own ledger of tickets, a
//! simulated broker that commits a member's partial rows and input offsets together (a
//! transaction), and partitions moving between members (eager rebalances, in which a member
//! hands every partition over and gets some back under new tenures) or members crashing, in any
//! interleaving with reading, counting and committing. The committed partial rows, added up by
//! a [`MergeWindow`], must equal a recount of the input: every window once, with its true count.

use super::aggregate::AggregateOp;
use super::merge::MergeWindow;
use super::partial::PartialWindow;
use super::state::{AggregateSpec, Geometry};
use crate::kafka::options::ORIGIN_FIELDS;
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Schema};
use crate::resume::Resumed;
use crate::sources::checkpoint::{Checkpoints, Partition, Tenures};
use crate::stage::{RunHealth, StageMetrics, Transform};
use proptest::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

const PARTITIONS: usize = 3;
const MEMBERS: usize = 3;
const WINDOW: Millis = 1000;
/// The event time of the last record of every partition: it closes every window before it.
const CLOSING: Millis = 100 * WINDOW;

/// One step of the simulation; member and partition numbers are taken modulo the counts.
#[derive(Clone, Debug)]
enum Step {
    /// A member reads up to `count` records of each partition it owns, as one batch.
    Read { member: usize, count: usize },
    /// A member's partial half takes the oldest batch read.
    Count { member: usize },
    /// A member's partial half looks at its tenures and closes what it can.
    Tick { member: usize },
    /// A member commits its transaction: the partial rows written and the input offsets.
    Commit { member: usize },
    /// A partition moves to another member (an eager rebalance of both members); with
    /// `tick_first`, the old owner's partial half emitted just before it heard of the hand-over.
    Move {
        partition: usize,
        to: usize,
        tick_first: bool,
    },
    /// A member dies: its open transaction and everything it held are lost; its partitions go
    /// to the others and a new member takes its place.
    Crash { member: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..MEMBERS, 1..12usize).prop_map(|(member, count)| Step::Read { member, count }),
        4 => (0..MEMBERS).prop_map(|member| Step::Count { member }),
        2 => (0..MEMBERS).prop_map(|member| Step::Tick { member }),
        2 => (0..MEMBERS).prop_map(|member| Step::Commit { member }),
        1 => (0..PARTITIONS, 0..MEMBERS, any::<bool>())
            .prop_map(|(partition, to, tick_first)| Step::Move { partition, to, tick_first }),
        1 => (0..MEMBERS).prop_map(|member| Step::Crash { member }),
    ]
}

/// Per partition, records as (event time, gender), in time order, the last one at CLOSING.
fn input() -> impl Strategy<Value = Vec<Vec<(Millis, u8)>>> {
    proptest::collection::vec(
        proptest::collection::vec((0..8 * WINDOW, 0..3u8), 5..60).prop_map(|mut records| {
            records.sort_unstable();
            records.push((CLOSING, 0));
            records
        }),
        PARTITIONS,
    )
}

/// A partial row as committed to the partials topic.
#[derive(Clone, Debug)]
struct PartialRow {
    values: Vec<Option<i64>>,
    gender: Option<String>,
    time: Millis,
}

struct Member {
    ledger: Arc<Checkpoints>,
    partial: PartialWindow,
    /// Partitions owned: tenure and the next record to read.
    owned: BTreeMap<usize, (u64, usize)>,
    /// Batches read, not yet through the partial half.
    queue: VecDeque<Batch>,
    /// The partial half's output in the open transaction.
    held: Vec<Batch>,
}

impl Member {
    fn new() -> Member {
        let tenures = Arc::new(Tenures::default());
        let ledger = Checkpoints::sharing(RunHealth::default(), Arc::clone(&tenures));
        let partial = PartialWindow::new(
            geometry(),
            vec!["gender".into()],
            count(),
            0,
            Arc::clone(&tenures),
            "partial".into(),
            Arc::new(StageMetrics::default()),
        );
        Member {
            ledger,
            partial,
            owned: BTreeMap::new(),
            queue: VecDeque::new(),
            held: Vec::new(),
        }
    }
}

fn geometry() -> Geometry {
    Geometry {
        size: WINDOW,
        slide: WINDOW,
    }
}

fn count() -> Vec<AggregateSpec> {
    vec![AggregateSpec {
        op: AggregateOp::Count,
        field: None,
        name: "count".into(),
    }]
}

fn key(partition: usize) -> Partition {
    (Arc::from("events"), partition as i32)
}

struct World {
    input: Vec<Vec<(Millis, u8)>>,
    /// The group's committed offset per partition.
    committed: Vec<usize>,
    members: Vec<Member>,
    /// The committed partials topic.
    partials: Vec<PartialRow>,
    input_schema: Arc<Schema>,
}

impl World {
    fn new(input: Vec<Vec<(Millis, u8)>>) -> World {
        let mut world = World {
            input,
            committed: vec![0; PARTITIONS],
            members: (0..MEMBERS).map(|_| Member::new()).collect(),
            partials: Vec::new(),
            input_schema: Arc::new(Schema::new(std::iter::once("gender").chain(ORIGIN_FIELDS))),
        };
        for partition in 0..PARTITIONS {
            world.grant(partition % MEMBERS, &[partition]);
        }
        world
    }

    fn owner(&self, partition: usize) -> Option<usize> {
        (0..MEMBERS).find(|m| self.members[*m].owned.contains_key(&partition))
    }

    /// `member` gets `partitions`, each from the committed offset.
    fn grant(&mut self, member: usize, partitions: &[usize]) {
        let keys: Vec<Partition> = partitions.iter().map(|p| key(*p)).collect();
        let tenures = self.members[member].ledger.grant(&keys);
        for (partition, tenure) in partitions.iter().zip(tenures) {
            let start = self.committed[*partition];
            self.members[member]
                .owned
                .insert(*partition, (tenure, start));
        }
    }

    fn read(&mut self, member: usize, count: usize) {
        let m = &mut self.members[member];
        let mut builder = BatchBuilder::with_capacity(Arc::clone(&self.input_schema), 16);
        let mut resume_at = Vec::new();
        for (partition, (tenure, next)) in m.owned.iter_mut() {
            let records = &self.input[*partition];
            let end = (*next + count).min(records.len());
            for &(time, gender) in &records[*next..end] {
                builder.push(FieldRef::Str(&gender.to_string()));
                builder.push(FieldRef::Int(*partition as i64));
                builder.push(FieldRef::Int(*tenure as i64));
                builder.push(FieldRef::Int(PARTITIONS as i64));
                builder.end_row(time);
            }
            if end > *next {
                *next = end;
                resume_at.push((key(*partition), end as i64));
            }
        }
        if !resume_at.is_empty() {
            let acks = m.ledger.issue(resume_at);
            m.queue.push_back(builder.build().with_acks(acks));
        }
    }

    fn count(&mut self, member: usize) {
        let m = &mut self.members[member];
        if let Some(batch) = m.queue.pop_front() {
            let mut out = Vec::new();
            m.partial.process(batch, &mut out).unwrap();
            m.held.extend(out);
        }
    }

    fn tick(&mut self, member: usize) {
        let m = &mut self.members[member];
        let mut out = Vec::new();
        m.partial.tick(&mut out).unwrap();
        m.held.extend(out);
    }

    /// The transactor's commit: the written rows' tickets settle as it begins, then the offsets
    /// the ledger allows go into the same transaction.
    fn commit(&mut self, member: usize) {
        let m = &mut self.members[member];
        let mut rows = Vec::new();
        for batch in m.held.drain(..) {
            for row in batch.rows() {
                let int = |at: usize| match row.get(at) {
                    FieldRef::Int(i) => Some(i),
                    _ => None,
                };
                rows.push(PartialRow {
                    values: (0..5).map(int).chain([int(6)]).collect(),
                    gender: match row.get(5) {
                        FieldRef::Str(s) => Some(s.to_string()),
                        _ => None,
                    },
                    time: row.event_time(),
                });
            }
        }
        if let Some(point) = m.ledger.take_commit() {
            for ((_, partition), offset) in point {
                let at = &mut self.committed[partition as usize];
                *at = offset as usize;
            }
        }
        self.partials.extend(rows);
    }

    /// An eager rebalance moving `partition` to `to`: the old owner hands every partition over
    /// (waits for what it read to be delivered, commits) and gets back all but `partition`.
    fn move_partition(&mut self, partition: usize, to: usize, tick_first: bool) {
        let Some(from) = self.owner(partition) else {
            return;
        };
        if from == to {
            return;
        }
        let all: Vec<usize> = self.members[from].owned.keys().copied().collect();
        let keys: Vec<Partition> = all.iter().map(|p| key(*p)).collect();
        if tick_first {
            self.tick(from);
        }
        self.members[from].ledger.hand_over(&keys);
        while !self.members[from].queue.is_empty() {
            self.count(from);
        }
        self.tick(from);
        self.commit(from);
        assert_eq!(
            self.members[from].ledger.outstanding(),
            0,
            "a hand-over waits for every ticket to settle"
        );
        self.members[from].ledger.revoke(&keys);
        self.members[from].owned.clear();
        let keep: Vec<usize> = all.into_iter().filter(|p| *p != partition).collect();
        self.grant(from, &keep);
        self.grant(to, &[partition]);
    }

    fn crash(&mut self, member: usize) {
        let dead = std::mem::replace(&mut self.members[member], Member::new());
        let orphans: Vec<usize> = dead.owned.keys().copied().collect();
        drop(dead);
        for (i, partition) in orphans.into_iter().enumerate() {
            self.grant((member + 1 + i) % MEMBERS, &[partition]);
        }
    }

    /// Everything read, counted and committed.
    fn drain(&mut self) {
        for member in 0..MEMBERS {
            self.read(member, usize::MAX / 2);
            while !self.members[member].queue.is_empty() {
                self.count(member);
            }
            self.tick(member);
            self.commit(member);
        }
    }

    /// The committed partial rows, added up by a merging half.
    fn merged(&self) -> BTreeMap<(Millis, String), Vec<i64>> {
        let tenures = Arc::new(Tenures::default());
        let mut merge = MergeWindow::new(
            geometry(),
            vec!["gender".into()],
            count(),
            tenures,
            Arc::new(Resumed::default()),
            Arc::from("transforms.w"),
            "merge".into(),
            Arc::new(StageMetrics::default()),
        );
        let schema = Arc::new(Schema::new(
            [
                "window_start",
                "window_end",
                "_from_partition",
                "_of_partitions",
                "_through",
                "gender",
                "count",
            ]
            .into_iter()
            .chain(ORIGIN_FIELDS),
        ));
        let mut out = Vec::new();
        for chunk in self.partials.chunks(7) {
            let mut builder = BatchBuilder::with_capacity(Arc::clone(&schema), chunk.len());
            for row in chunk {
                let int = |v: Option<i64>| v.map_or(FieldRef::Null, FieldRef::Int);
                for value in &row.values[..5] {
                    builder.push(int(*value));
                }
                builder.push(row.gender.as_deref().map_or(FieldRef::Null, FieldRef::Str));
                builder.push(int(row.values[5]));
                // The partials topic's one partition, owned for good (tenure 0).
                builder.push(FieldRef::Int(0));
                builder.push(FieldRef::Int(0));
                builder.push(FieldRef::Int(1));
                builder.end_row(row.time);
            }
            merge.process(builder.build(), &mut out).unwrap();
        }
        let mut merged: BTreeMap<(Millis, String), Vec<i64>> = BTreeMap::new();
        for batch in &out {
            for row in batch.rows() {
                let (FieldRef::Int(start), FieldRef::Str(gender), FieldRef::Int(n)) =
                    (row.get(0), row.get(2), row.get(3))
                else {
                    panic!("unexpected merged row");
                };
                merged
                    .entry((start, gender.to_string()))
                    .or_default()
                    .push(n);
            }
        }
        merged
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the order of reads, counts, commits, hand-overs and crashes, the merged
    /// windows are the recount: each window that closes once, with its true count per gender.
    #[test]
    fn partials_merged_across_any_hand_overs_and_crashes_equal_the_recount(
        input in input(),
        steps in proptest::collection::vec(step(), 0..120),
    ) {
        let mut expected: BTreeMap<(Millis, String), i64> = BTreeMap::new();
        for records in &input {
            for &(time, gender) in records {
                let start = time.div_euclid(WINDOW) * WINDOW;
                if start + WINDOW <= CLOSING {
                    *expected.entry((start, gender.to_string())).or_default() += 1;
                }
            }
        }
        let mut world = World::new(input);
        for step in steps {
            match step {
                Step::Read { member, count } => world.read(member, count),
                Step::Count { member } => world.count(member),
                Step::Tick { member } => world.tick(member),
                Step::Commit { member } => world.commit(member),
                Step::Move { partition, to, tick_first } => {
                    world.move_partition(partition, to, tick_first)
                }
                Step::Crash { member } => world.crash(member),
            }
        }
        world.drain();
        let merged = world.merged();
        let got: BTreeMap<(Millis, String), i64> = merged
            .iter()
            .map(|(k, counts)| (k.clone(), counts.iter().sum()))
            .collect();
        let repeated: Vec<_> = merged.iter().filter(|(_, c)| c.len() > 1).collect();
        prop_assert!(repeated.is_empty(), "windows emitted more than once: {:?}", repeated);
        prop_assert_eq!(got, expected);
    }
}

/// A merger whose transaction is aborted (the group moved on and the broker refused its
/// offsets) and which is then given the partials partition again must emit again what it had
/// emitted in that transaction: it goes on from the committed marks, not from what it did in
/// memory. Seen in `tests/shared_window.rs` under churn: one window (all genders) never written.
#[test]
fn a_merger_given_the_partials_again_goes_on_from_the_committed_marks_not_its_own() {
    let tenures = Arc::new(Tenures::default());
    let resumed = Arc::new(Resumed::default());
    let mut merge = MergeWindow::new(
        geometry(),
        vec!["gender".into()],
        count(),
        Arc::clone(&tenures),
        Arc::clone(&resumed),
        Arc::from("transforms.w"),
        "merge".into(),
        Arc::new(StageMetrics::default()),
    );
    let schema = Arc::new(Schema::new(
        [
            "window_start",
            "window_end",
            "_from_partition",
            "_of_partitions",
            "_through",
            "gender",
            "count",
        ]
        .into_iter()
        .chain(ORIGIN_FIELDS),
    ));
    // One partition's partial for window [0, WINDOW) and its progress row, read in `tenure`.
    let partials = |tenure: u64| {
        let mut b = BatchBuilder::with_capacity(Arc::clone(&schema), 2);
        for (start, end, through, gender, n) in [
            (Some(0), Some(WINDOW), None, Some("1"), Some(5)),
            (None, None, Some(WINDOW + 4), None, None),
        ] {
            let int = |v: Option<i64>| v.map_or(FieldRef::Null, FieldRef::Int);
            for value in [int(start), int(end), FieldRef::Int(0), FieldRef::Int(1)] {
                b.push(value);
            }
            b.push(int(through));
            b.push(gender.map_or(FieldRef::Null, FieldRef::Str));
            b.push(int(n));
            for origin in [0, tenure as i64, 1] {
                b.push(FieldRef::Int(origin));
            }
            b.end_row(end.unwrap_or(WINDOW + 4));
        }
        b.build()
    };
    let emitted = |out: &Vec<Batch>| out.iter().map(Batch::len).sum::<usize>();
    let first = tenures.begin();
    let mut out = Vec::new();
    merge.process(partials(first), &mut out).unwrap();
    assert_eq!(
        emitted(&out),
        1,
        "the window is emitted in the first tenure"
    );
    // Its transaction is aborted; the partition goes elsewhere and comes back. Nothing was
    // committed: the marks still say nothing, and the partials are read again.
    tenures.end([first]);
    let again = tenures.begin();
    out.clear();
    merge.process(partials(again), &mut out).unwrap();
    assert_eq!(
        emitted(&out),
        1,
        "the window is emitted again: its first emission was never committed"
    );
    assert!(resumed.through("transforms.w").is_none());
}
