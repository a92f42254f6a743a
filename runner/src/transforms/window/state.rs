//! Open windows and their groups: which windows a row falls in, the per-group accumulators, and
//! closing windows in order as the watermark passes their end.

use super::aggregate::{AggregateOp, Fed};
use super::groups::{Groups, OpenWindows, POOL_SIZE, decode_key, encode_key};
use crate::ack::Acks;
use crate::record::{BatchBuilder, FieldRef, Millis, Row, Schema};
use std::sync::Arc;

/// Window geometry: `size` long, a new one every `slide` (tumbling when equal), aligned to the
/// epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Window length in ms.
    pub size: Millis,
    /// Distance between window starts in ms.
    pub slide: Millis,
}

impl Geometry {
    /// Starts of the windows that contain time `t`, latest first: those whose start and end
    /// (`start + size`) are both representable. Near the ends of the `i64` range a time can
    /// have fewer windows than usual, or none; nothing here overflows.
    pub fn starts(self, t: Millis) -> impl Iterator<Item = Millis> {
        let (size, slide) = (self.size, self.slide);
        let last = t.div_euclid(slide).checked_mul(slide);
        (0..)
            .map_while(move |k: i64| last?.checked_sub(k.checked_mul(slide)?))
            .take_while(move |&s| t.checked_sub(s).is_some_and(|distance| distance < size))
            .filter(move |&s| s.checked_add(size).is_some())
    }

    /// The end of the window starting at `start`, for a start [`starts`](Self::starts) gave.
    pub fn end(self, start: Millis) -> Millis {
        start.saturating_add(self.size)
    }
}

/// One aggregate as configured, with its input field resolved per schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateSpec {
    /// The function.
    pub op: AggregateOp,
    /// The field it reads, if any.
    pub field: Option<String>,
    /// Output field name.
    pub name: String,
}

/// Field positions for the schema currently flowing in.
#[derive(Debug)]
struct Resolved {
    schema: Arc<Schema>,
    group_fields: Vec<Option<usize>>,
    aggregate_fields: Vec<Option<usize>>,
}

/// Where [`WindowState::add`] put a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Counted in at least one open window.
    Counted,
    /// Every window it belongs to has closed; the last of them ended at `last_end`.
    Late {
        /// The end of the latest window the row belongs to.
        last_end: Millis,
    },
    /// Its windows were emitted by an earlier run (read again after a restart).
    Replayed,
    /// No window of its time fits in the time range.
    OutOfRange,
}

/// All open windows.
#[derive(Debug)]
pub struct WindowState {
    geometry: Geometry,
    group_by: Vec<String>,
    aggregates: Vec<AggregateSpec>,
    output_schema: Arc<Schema>,
    open: OpenWindows,
    pool: Vec<Groups>,
    /// Every window ending at or before this has been emitted.
    closed_through: Millis,
    /// Every window ending at or before this was emitted by an earlier run (see `resume`).
    resumed_through: Millis,
    resolved: Option<Resolved>,
    key_scratch: Vec<u8>,
    slot_scratch: Vec<u32>,
    /// Rows dropped because every window they belong to had closed.
    pub late_rows: u64,
    /// Rows read again after a restart whose windows an earlier run had already emitted.
    pub replayed_rows: u64,
    /// Rows dropped because their time has no window whose start and end fit in an `i64`
    /// (times within one window size of the ends of the range).
    pub out_of_range_rows: u64,
    /// Values left out of numeric aggregates because they were not numbers.
    pub non_numeric_values: u64,
    /// Group-by or aggregate fields missing from an input schema (reported once each).
    pub missing_fields: Vec<String>,
}

impl WindowState {
    /// Empty state.
    pub fn new(geometry: Geometry, group_by: Vec<String>, aggregates: Vec<AggregateSpec>) -> Self {
        let names = ["window_start", "window_end"]
            .into_iter()
            .map(str::to_string)
            .chain(group_by.iter().cloned())
            .chain(aggregates.iter().map(|a| a.name.clone()));
        WindowState {
            geometry,
            output_schema: Arc::new(Schema::new(names)),
            group_by,
            aggregates,
            open: OpenWindows::default(),
            pool: Vec::new(),
            closed_through: Millis::MIN,
            resumed_through: Millis::MIN,
            resolved: None,
            key_scratch: Vec::with_capacity(64),
            slot_scratch: Vec::new(),
            late_rows: 0,
            replayed_rows: 0,
            out_of_range_rows: 0,
            non_numeric_values: 0,
            missing_fields: Vec::new(),
        }
    }

    /// What of `other`'s configuration differs from this state's in a way the open windows
    /// could not carry over to (their size and slide, grouping or aggregates), if anything.
    pub fn shape_change(&self, other: &WindowState) -> Option<&'static str> {
        if self.geometry != other.geometry {
            Some("size or slide")
        } else if self.group_by != other.group_by {
            Some("group_by")
        } else if self.aggregates != other.aggregates {
            Some("aggregates")
        } else {
            None
        }
    }

    /// Number of windows currently open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Every window ending at or before this has been emitted.
    pub fn closed_through(&self) -> Millis {
        self.closed_through
    }

    /// Continues from an earlier run that emitted every window ending at or before `through`:
    /// rows of those windows are counted as replayed, not added again.
    pub fn resume(&mut self, through: Millis) {
        self.resumed_through = through;
        self.closed_through = self.closed_through.max(through);
    }

    /// Adds `row` at time `t` to every window that contains it and is still open; says where
    /// it went.
    pub fn add(&mut self, row: Row<'_>, t: Millis) -> Placement {
        self.resolve(row.schema());
        let resolved = self.resolved.as_ref().expect("resolved above");
        encode_key(&row, &resolved.group_fields, &mut self.key_scratch);
        let per_slot = self.aggregates.len();
        let mut placed = false;
        let mut latest_end = None;
        for start in self.geometry.starts(t) {
            latest_end.get_or_insert(self.geometry.end(start));
            if self.geometry.end(start) <= self.closed_through {
                continue;
            }
            placed = true;
            let pool = &mut self.pool;
            let groups = self
                .open
                .get_or_insert_with(start, || pool.pop().unwrap_or_default());
            let slot = groups.slot(&self.key_scratch, per_slot) as usize;
            let accumulators = &mut groups.accumulators[slot * per_slot..(slot + 1) * per_slot];
            for ((acc, spec), field) in accumulators
                .iter_mut()
                .zip(&self.aggregates)
                .zip(&resolved.aggregate_fields)
            {
                let value = match (&spec.field, field) {
                    (None, _) => None,
                    (Some(_), Some(i)) => Some(row.get(*i)),
                    (Some(_), None) => Some(FieldRef::Null),
                };
                if acc.feed(spec.op, value) == Fed::NotNumeric {
                    self.non_numeric_values += 1;
                }
            }
        }
        match latest_end {
            None => {
                self.out_of_range_rows += 1;
                Placement::OutOfRange
            }
            Some(_) if placed => Placement::Counted,
            Some(end) if end <= self.resumed_through => {
                self.replayed_rows += 1;
                Placement::Replayed
            }
            Some(end) => {
                self.late_rows += 1;
                Placement::Late { last_end: end }
            }
        }
    }

    /// Keeps the delivery tickets of a batch whose rows fell between `earliest` and `latest` in
    /// every open window of that span, so each window's result carries the tickets of the records
    /// it counted (a window holding a ticket it does not need only delays a commit).
    pub fn hold(&mut self, acks: Acks, earliest: Millis, latest: Millis) {
        if acks.carries_nothing() {
            return;
        }
        let from = earliest.saturating_sub(self.geometry.size);
        for groups in self.open.starting_within(from, latest) {
            groups.acks.absorb(acks.clone());
        }
    }

    /// Emits, in order, every open window that ends at or before `watermark`.
    pub fn close_through(&mut self, watermark: Millis, out: &mut Vec<crate::record::Batch>) {
        if watermark > self.closed_through {
            self.closed_through = watermark;
        }
        let geometry = self.geometry;
        let mut builder: Option<BatchBuilder> = None;
        let mut acks = Acks::default();
        while let Some(first) = self.open.first_start() {
            if geometry.end(first) > watermark {
                break;
            }
            let Some((start, mut groups)) = self.open.pop_first() else {
                break;
            };
            let b = builder.get_or_insert_with(|| {
                BatchBuilder::with_capacity(Arc::clone(&self.output_schema), 16)
            });
            emit_window(
                start,
                geometry.end(start),
                &groups,
                &self.aggregates,
                &mut self.slot_scratch,
                b,
            );
            acks.absorb(std::mem::take(&mut groups.acks));
            if self.pool.len() < POOL_SIZE {
                groups.clear();
                self.pool.push(groups);
            }
        }
        if let Some(b) = builder {
            out.push(b.build().with_acks(acks));
        }
    }

    /// Emits every open window (end of input); afterwards every window ending at or before the
    /// last one emitted counts as closed.
    pub fn close_all(&mut self, out: &mut Vec<crate::record::Batch>) {
        let geometry = self.geometry;
        if let Some(last_end) = self.open.last_start().map(|s| geometry.end(s)) {
            self.close_through(last_end, out);
        }
    }

    /// The run stops before its input ended: a window holding records that a restart reads
    /// again (they carry tickets) is dropped unemitted, its tickets marked undelivered so their
    /// offsets are not committed and the next run counts the whole window; a window of records
    /// nobody can read again is emitted as it is. Returns how many windows were left.
    pub fn stop(&mut self, out: &mut Vec<crate::record::Batch>) -> usize {
        let resumable: Vec<Millis> = self
            .open
            .iter()
            .filter(|(_, groups)| !groups.acks.is_empty())
            .map(|(start, _)| *start)
            .collect();
        for start in &resumable {
            if let Some(mut groups) = self.open.remove(*start) {
                groups.acks.fail();
                groups.clear();
            }
        }
        self.close_all(out);
        resumable.len()
    }

    /// Drops every open window unemitted and gives up the tickets it held (another process
    /// counts those records: see `Acks::abandon`). Returns how many windows there were.
    pub fn abandon(&mut self) -> usize {
        self.abandon_with(Acks::abandon)
    }

    /// As [`abandon`](Self::abandon), giving each window's tickets up with `give_up` (e.g. only
    /// the records of one consumer-group tenure, [`Acks::abandon_tenure`]).
    pub fn abandon_with(&mut self, give_up: impl Fn(&Acks)) -> usize {
        let starts: Vec<Millis> = self.open.iter().map(|(start, _)| *start).collect();
        for start in &starts {
            if let Some(mut groups) = self.open.remove(*start) {
                give_up(&groups.acks);
                groups.clear();
            }
        }
        starts.len()
    }

    /// The names of the output fields: `window_start`, `window_end`, the groups, the aggregates.
    pub fn output_schema(&self) -> &Arc<Schema> {
        &self.output_schema
    }

    fn resolve(&mut self, schema: &Arc<Schema>) {
        if matches!(&self.resolved, Some(r) if Arc::ptr_eq(&r.schema, schema)) {
            return;
        }
        let mut lookup = |name: &str| {
            let i = schema.index_of(name);
            if i.is_none() && !self.missing_fields.iter().any(|m| m == name) {
                self.missing_fields.push(name.to_string());
            }
            i
        };
        let group_fields = self.group_by.iter().map(|g| lookup(g)).collect();
        let aggregate_fields = self
            .aggregates
            .iter()
            .map(|a| a.field.as_deref().and_then(&mut lookup))
            .collect();
        self.resolved = Some(Resolved {
            schema: Arc::clone(schema),
            group_fields,
            aggregate_fields,
        });
    }
}

/// Appends one row per group, groups ordered by key so output is deterministic.
fn emit_window(
    start: Millis,
    end: Millis,
    groups: &Groups,
    aggregates: &[AggregateSpec],
    slots: &mut Vec<u32>,
    out: &mut BatchBuilder,
) {
    slots.clear();
    slots.extend(0..groups.slots());
    slots.sort_unstable_by(|a, b| groups.key(*a).cmp(groups.key(*b)));
    let per_slot = aggregates.len();
    for &slot in slots.iter() {
        let slot = slot as usize;
        out.push(FieldRef::Int(start));
        out.push(FieldRef::Int(end));
        decode_key(groups.key(slot as u32), out);
        for (acc, spec) in groups.accumulators[slot * per_slot..(slot + 1) * per_slot]
            .iter()
            .zip(aggregates)
        {
            out.push(acc.result(spec.op));
        }
        out.end_row(end - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The windows of any time, on the whole `i64` range, are exactly those an independent
        /// count in 128-bit arithmetic finds: aligned to `slide`, containing `t`, with a start
        /// and an end that fit in an `i64`. Nothing overflows.
        #[test]
        fn window_starts_match_a_wide_recount(
            t in proptest::prop_oneof![
                proptest::num::i64::ANY,
                (i64::MIN..i64::MIN + 10_000),
                (i64::MAX - 10_000..=i64::MAX),
                (-10_000i64..10_000),
            ],
            slide in 1i64..5_000,
            windows_per_row in 1i64..20,
        ) {
            let size = slide * windows_per_row;
            let got: Vec<Millis> = Geometry { size, slide }.starts(t).collect();
            let (t, size, slide) = (t as i128, size as i128, slide as i128);
            let fits = |v: i128| (i64::MIN as i128..=i64::MAX as i128).contains(&v);
            let last = t.div_euclid(slide) * slide;
            let want: Vec<Millis> = (0..=windows_per_row as i128)
                .map(|k| last - k * slide)
                .filter(|&s| s <= t && t < s + size && fits(s) && fits(s + size))
                .map(|s| s as Millis)
                .collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn tumbling_and_sliding_window_starts() {
        let tumbling = Geometry {
            size: 1000,
            slide: 1000,
        };
        assert_eq!(tumbling.starts(1500).collect::<Vec<_>>(), [1000]);
        assert_eq!(tumbling.starts(1000).collect::<Vec<_>>(), [1000]);
        assert_eq!(tumbling.starts(-1).collect::<Vec<_>>(), [-1000]);
        let sliding = Geometry {
            size: 1000,
            slide: 250,
        };
        assert_eq!(
            sliding.starts(1100).collect::<Vec<_>>(),
            [1000, 750, 500, 250]
        );
        assert_eq!(
            sliding.starts(1000).collect::<Vec<_>>(),
            [1000, 750, 500, 250]
        );
    }
}
