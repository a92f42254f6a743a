//! The first half of a window shared by a consumer group (docs/scaling.md): each member counts
//! the partitions the group gave it, *per partition*, and emits per partition and window a
//! partial result, followed by a progress row "this partition is complete through T". The second
//! half ([`super::merge`]) adds up the partials of every partition of the input topic.
//!
//! Records come from a kafka source with `with_origin = true`: `_partition`, `_tenure` (this
//! member's grant of that partition) and `_partitions` (the topic's count). Each tenure keeps its
//! own windows and closes them on its own watermark (its latest event time minus
//! `allowed_lateness`), so a partial is a function of that partition's records from the offset
//! the tenure started at, whatever the other partitions do. A tenure that is no longer current
//! (its partition is being handed over) is dropped: its open windows unemitted and its records
//! that arrive later skipped, their tickets given up for that tenure
//! ([`Acks::abandon_tenure`]), so their offsets are not committed and the next owner counts
//! those records; the other partitions' records in the same tickets commit as usual.
//!
//! A partition read to its end with nothing new (idle) closes through the newest event time of
//! this member's partitions, so it does not hold the merged windows back.
//!
//! Output rows: `window_start`, `window_end`, `_from_partition`, `_of_partitions`, `_through`,
//! the group fields, the aggregates. A partial row has `_through` empty; a progress row has only
//! `_from_partition`, `_of_partitions` and `_through`. One call's rows go out as one batch, so a
//! transactional sink writes a partial and its progress row in one transaction.

use super::state::{AggregateSpec, Geometry, WindowState};
use crate::ack::Acks;
use crate::kafka::options::ORIGIN_FIELDS;
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Schema};
use crate::sources::checkpoint::Tenures;
use crate::stage::DropReason;
use crate::stage::{StageError, StageMetrics, StageResult, Transform};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The fields a partial row has between the window bounds and the group fields.
pub const PARTIAL_FIELDS: [&str; 3] = ["_from_partition", "_of_partitions", "_through"];

/// How often tenures are checked for hand-overs and idleness.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// One tenure's windows.
struct Tenure {
    partition: i64,
    partitions: i64,
    state: WindowState,
    /// Latest event time of its records.
    latest: Option<Millis>,
    /// The `_through` of its last progress row.
    reported: Millis,
}

/// The running first half.
pub struct PartialWindow {
    geometry: Geometry,
    group_by: Vec<String>,
    aggregates: Vec<AggregateSpec>,
    lateness: Millis,
    tenures: Arc<Tenures>,
    by_tenure: HashMap<u64, Tenure>,
    /// Positions of `_partition`, `_tenure`, `_partitions` in the schema flowing in.
    origin: Option<(Arc<Schema>, [usize; 3])>,
    output_schema: Arc<Schema>,
    /// Records of tenures already handed over, dropped.
    bygone_rows: u64,
    label: String,
    metrics: Arc<StageMetrics>,
}

impl PartialWindow {
    /// The first half of a window with these settings; `tenures` is the run's registry.
    pub fn new(
        geometry: Geometry,
        group_by: Vec<String>,
        aggregates: Vec<AggregateSpec>,
        lateness: Millis,
        tenures: Arc<Tenures>,
        label: String,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        let names = ["window_start", "window_end"]
            .into_iter()
            .chain(PARTIAL_FIELDS)
            .map(str::to_string)
            .chain(group_by.iter().cloned())
            .chain(aggregates.iter().map(|a| a.name.clone()));
        PartialWindow {
            geometry,
            output_schema: Arc::new(Schema::new(names)),
            group_by,
            aggregates,
            lateness,
            tenures,
            by_tenure: HashMap::new(),
            origin: None,
            bygone_rows: 0,
            label,
            metrics,
        }
    }

    fn origin_of(&mut self, schema: &Arc<Schema>) -> Result<[usize; 3], StageError> {
        if let Some((known, at)) = &self.origin
            && Arc::ptr_eq(known, schema)
        {
            return Ok(*at);
        }
        let mut at = [0; 3];
        for (slot, name) in at.iter_mut().zip(ORIGIN_FIELDS) {
            *slot = schema.index_of(name).ok_or_else(|| {
                StageError::Input(format!(
                    "{}: a window shared by a consumer group needs each record's `{name}`; its \
                     input must come straight from a kafka source with `with_origin = true`",
                    self.label
                ))
            })?;
        }
        self.origin = Some((Arc::clone(schema), at));
        Ok(at)
    }

    /// Drops the tenures that are no longer current, abandoning what they held.
    fn drop_bygone(&mut self) {
        let tenures = &self.tenures;
        self.by_tenure.retain(|tenure, held| {
            let current = tenures.is_current(*tenure);
            if !current {
                let windows = held.state.abandon_with(|acks| acks.abandon_tenure(*tenure));
                tracing::debug!(
                    "dropped tenure {tenure} of partition {} ({windows} open windows): its next \
                     owner counts them",
                    held.partition
                );
            }
            current
        });
    }

    /// Closes each tenure's windows as far as its watermark allows and emits the partials and
    /// progress rows, all in one batch.
    fn emit(&mut self, out: &mut Vec<Batch>) {
        let newest = self.by_tenure.values().filter_map(|t| t.latest).max();
        let mut builder: Option<BatchBuilder> = None;
        let mut acks = Acks::default();
        let mut closed = Vec::new();
        let mut tenures: Vec<u64> = self.by_tenure.keys().copied().collect();
        tenures.sort_unstable();
        for id in tenures {
            let idle = self.tenures.is_idle(id);
            let held = self.by_tenure.get_mut(&id).expect("listed above");
            let latest = if idle { newest } else { held.latest };
            let Some(latest) = latest else { continue };
            let through = latest.saturating_sub(self.lateness);
            closed.clear();
            held.state.close_through(through, &mut closed);
            let slide = self.geometry.slide;
            let crossed = through.div_euclid(slide) > held.reported.div_euclid(slide);
            if closed.is_empty() && !crossed {
                continue;
            }
            let b = builder.get_or_insert_with(|| {
                BatchBuilder::with_capacity(Arc::clone(&self.output_schema), 16)
            });
            for mut batch in closed.drain(..) {
                acks.absorb(batch.take_acks());
                let width = batch.schema().len();
                for row in batch.rows() {
                    b.push(row.get(0));
                    b.push(row.get(1));
                    b.push(FieldRef::Int(held.partition));
                    b.push(FieldRef::Int(held.partitions));
                    b.push(FieldRef::Null);
                    for field in 2..width {
                        b.push(row.get(field));
                    }
                    b.end_row(row.event_time());
                }
            }
            b.push(FieldRef::Null);
            b.push(FieldRef::Null);
            b.push(FieldRef::Int(held.partition));
            b.push(FieldRef::Int(held.partitions));
            b.push(FieldRef::Int(through));
            for _ in 0..self.group_by.len() + self.aggregates.len() {
                b.push(FieldRef::Null);
            }
            b.end_row(through);
            held.reported = through;
        }
        if let Some(b) = builder {
            out.push(b.build().with_acks(acks));
        }
    }
}

impl Transform for PartialWindow {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        self.drop_bygone();
        let [partition_at, tenure_at, partitions_at] = self.origin_of(batch.schema())?;
        let acks = batch.take_acks();
        // Per tenure: the span of event times its rows had in this batch.
        let mut spans: HashMap<u64, (Millis, Millis)> = HashMap::new();
        let mut bygone: Vec<u64> = Vec::new();
        for row in batch.rows() {
            let int = |at: usize| match row.get(at) {
                FieldRef::Int(i) => i,
                _ => -1,
            };
            let tenure = u64::try_from(int(tenure_at)).unwrap_or(u64::MAX);
            if !self.tenures.is_current(tenure) {
                self.bygone_rows += 1;
                if !bygone.contains(&tenure) {
                    bygone.push(tenure);
                }
                continue;
            }
            let held = self.by_tenure.entry(tenure).or_insert_with(|| Tenure {
                partition: int(partition_at),
                partitions: int(partitions_at),
                state: WindowState::new(
                    self.geometry,
                    self.group_by.clone(),
                    self.aggregates.clone(),
                ),
                latest: None,
                reported: Millis::MIN,
            });
            let t = row.event_time();
            held.state.add(row, t);
            held.latest = Some(held.latest.map_or(t, |l| l.max(t)));
            let span = spans.entry(tenure).or_insert((t, t));
            span.0 = span.0.min(t);
            span.1 = span.1.max(t);
        }
        // Rows of a partition being handed over are left to its next owner: their positions
        // must not be committed as if they had been counted.
        for tenure in bygone {
            acks.abandon_tenure(tenure);
        }
        for (tenure, (earliest, latest)) in spans {
            if let Some(held) = self.by_tenure.get_mut(&tenure) {
                held.state.hold(acks.clone(), earliest, latest);
            }
        }
        drop(acks);
        self.emit(out);
        Ok(())
    }

    fn output_watermark(&self, _input: Millis) -> Millis {
        // Partials are not in event-time order across partitions; the merge orders them.
        Millis::MIN
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(CHECK_INTERVAL)
    }

    fn tick(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.drop_bygone();
        self.emit(out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        // The input ended (not a rebalance): every tenure is complete as far as it was read.
        self.drop_bygone();
        for held in self.by_tenure.values_mut() {
            held.latest = held.latest.map(|_| Millis::MAX);
        }
        self.emit(out);
        self.finished();
        Ok(())
    }

    fn stop(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        // Stopped before the input ended: what is open is counted again by whoever reads these
        // partitions next.
        let mut windows = 0;
        for held in self.by_tenure.values_mut() {
            windows += held.state.abandon();
        }
        if windows > 0 {
            tracing::info!(
                "{}: stopping with {windows} open partial windows; their records stay \
                 uncommitted and are counted by the next reader",
                self.label
            );
        }
        self.finished();
        Ok(())
    }
}

impl PartialWindow {
    fn finished(&mut self) {
        let late: u64 = self.by_tenure.values().map(|t| t.state.late_rows).sum();
        if late > 0 {
            self.metrics.add_dropped(DropReason::Late, late);
            tracing::warn!(
                "{}: dropped {late} late rows (their windows had closed for their partition)",
                self.label
            );
        }
        if self.bygone_rows > 0 {
            tracing::debug!(
                "{}: {} rows of partitions handed over were left to their next owner",
                self.label,
                self.bygone_rows
            );
        }
    }
}
