//! The second half of a window shared by a consumer group (docs/scaling.md): reads the partial
//! results of [`super::partial`] from the group's partials topic (one partition, so one member
//! merges at a time) and emits a window once every partition of the input topic is complete
//! through its end — the same records a single process would emit.
//!
//! Per input partition it keeps how far that partition is complete (the furthest `_through` of
//! its progress rows). A partial of a window the partition is already complete through is a
//! repeat (the partition's next owner read some of its records again) and is dropped: the first
//! one was written, in one transaction, with the progress row that completed it. Windows emitted
//! carry a progress mark, committed with the output, from which a member taking the partials
//! over continues (see `resume`).
//!
//! The partials are added up in a [`WindowState`] whose windows are one `slide` long (each
//! partial row falls into exactly its own window), closed `size - slide` late so a window closes
//! when the partitions are complete through its real end.

use super::aggregate::AggregateOp;
use super::partial::PARTIAL_FIELDS;
use super::state::{AggregateSpec, Geometry, WindowState};
use crate::ack::Acks;
use crate::kafka::options::ORIGIN_FIELDS;
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Schema};
use crate::resume::Resumed;
use crate::sources::checkpoint::Tenures;
use crate::stage::DropReason;
use crate::stage::{StageError, StageMetrics, StageResult, Transform};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often the tenure of the partials partition is checked.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// Positions of the fields the merge reads, for one input schema.
#[derive(Clone, Copy)]
struct Fields {
    start: usize,
    from_partition: usize,
    of_partitions: usize,
    through: usize,
    tenure: usize,
}

/// The running second half.
pub struct MergeWindow {
    size: Millis,
    slide: Millis,
    group_by: Vec<String>,
    aggregates: Vec<AggregateSpec>,
    state: WindowState,
    /// The tenure of the partials partition this member merges for (None: not merging).
    tenure: Option<u64>,
    /// Per input partition, how far it is complete.
    complete: HashMap<i64, Millis>,
    /// How many partitions the input topic has.
    partitions: i64,
    /// Tickets of progress rows, each with its `_through`: let go once windows are emitted so far.
    progress_acks: Vec<(Millis, Acks)>,
    /// Every window ending at or before this has been emitted (by this member in this tenure
    /// or, from the committed marks, another).
    emitted_through: Millis,
    /// The furthest `emitted_through` so far: the output watermark never goes back, even when a
    /// new tenure goes on from committed marks behind what this member had emitted.
    announced_through: Millis,
    tenures: Arc<Tenures>,
    resumed: Arc<Resumed>,
    mark: Arc<str>,
    fields: Option<(Arc<Schema>, Fields)>,
    output_schema: Arc<Schema>,
    repeats: u64,
    label: String,
    metrics: Arc<StageMetrics>,
}

impl MergeWindow {
    /// The merging half of a window with these settings; `mark` is the stage's progress mark.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        geometry: Geometry,
        group_by: Vec<String>,
        aggregates: Vec<AggregateSpec>,
        tenures: Arc<Tenures>,
        resumed: Arc<Resumed>,
        mark: Arc<str>,
        label: String,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        let state = merging_state(geometry.slide, &group_by, &aggregates);
        let output_schema = Arc::clone(state.output_schema());
        MergeWindow {
            size: geometry.size,
            slide: geometry.slide,
            group_by,
            aggregates,
            state,
            tenure: None,
            complete: HashMap::new(),
            partitions: 0,
            progress_acks: Vec::new(),
            emitted_through: Millis::MIN,
            announced_through: Millis::MIN,
            tenures,
            resumed,
            mark,
            fields: None,
            output_schema,
            repeats: 0,
            label,
            metrics,
        }
    }

    fn fields_of(&mut self, schema: &Arc<Schema>) -> Result<Fields, StageError> {
        if let Some((known, fields)) = &self.fields
            && Arc::ptr_eq(known, schema)
        {
            return Ok(*fields);
        }
        let find = |name: &str| {
            schema.index_of(name).ok_or_else(|| {
                StageError::Input(format!(
                    "{}: merging partial windows needs the field `{name}` (the input must be the \
                     group's partials topic, read with `with_origin = true`)",
                    self.label
                ))
            })
        };
        let fields = Fields {
            start: find("window_start")?,
            from_partition: find(PARTIAL_FIELDS[0])?,
            of_partitions: find(PARTIAL_FIELDS[1])?,
            through: find(PARTIAL_FIELDS[2])?,
            tenure: find(ORIGIN_FIELDS[1])?,
        };
        self.fields = Some((Arc::clone(schema), fields));
        Ok(fields)
    }

    /// Starts merging anew for tenure `tenure` of the partials partition: what a previous tenure
    /// held is given up, and windows the committed marks say were emitted are not emitted again.
    fn take_over(&mut self, tenure: u64) {
        let dropped = self.state.abandon();
        for (_, acks) in self.progress_acks.drain(..) {
            acks.abandon();
        }
        self.complete.clear();
        self.partitions = 0;
        self.tenure = Some(tenure);
        // Go on from the committed marks (read again when the partials partition was granted),
        // not from what this member emitted under an earlier tenure: that may never have been
        // committed — its transaction is aborted when the broker refuses its offsets because the
        // group moved on — and the partials of those windows are read again now.
        self.emitted_through = self.resumed.through(&self.mark).unwrap_or(Millis::MIN);
        self.state = merging_state(self.slide, &self.group_by, &self.aggregates);
        self.state.resume(self.merge_point(self.emitted_through));
        tracing::info!(
            "{}: merging (tenure {tenure}), continuing after the windows emitted through {} \
             ({dropped} windows of an earlier tenure dropped)",
            self.label,
            self.emitted_through
        );
    }

    /// The closing point of the one-slide windows for a real closing point `through`.
    fn merge_point(&self, through: Millis) -> Millis {
        through.saturating_sub(self.size - self.slide)
    }

    /// Gives up the current tenure if the partials partition was handed over.
    fn check_tenure(&mut self) {
        if let Some(tenure) = self.tenure
            && !self.tenures.is_current(tenure)
        {
            let dropped = self.state.abandon();
            for (_, acks) in self.progress_acks.drain(..) {
                acks.abandon();
            }
            self.tenure = None;
            tracing::info!(
                "{}: handed the merging over ({dropped} open windows left to the next merger)",
                self.label
            );
        }
    }

    /// How far every partition of the input topic is complete, once all have reported.
    fn all_complete_through(&self) -> Option<Millis> {
        if self.partitions <= 0 {
            return None;
        }
        (0..self.partitions)
            .map(|p| self.complete.get(&p).copied())
            .min()
            .flatten()
    }

    /// Emits every window the partitions are complete through, with the progress tickets that
    /// are then settled.
    fn emit(&mut self, out: &mut Vec<Batch>) {
        let Some(through) = self.all_complete_through() else {
            return;
        };
        if through <= self.emitted_through {
            return;
        }
        let mut closed = Vec::new();
        self.state
            .close_through(self.merge_point(through), &mut closed);
        self.emitted_through = through;
        self.announced_through = self.announced_through.max(through);
        let mut acks = Acks::default();
        self.progress_acks.retain(|(at, held)| {
            let settled = *at <= through;
            if settled {
                acks.absorb(held.clone());
            }
            !settled
        });
        let mut batches: Vec<Batch> = closed
            .into_iter()
            .map(|batch| self.real_bounds(batch))
            .collect();
        match batches.last_mut() {
            Some(last) => {
                let mut held = last.take_acks();
                held.absorb(acks);
                held.mark(Arc::clone(&self.mark), through);
                last.attach_acks(held);
            }
            None => drop(acks),
        }
        out.extend(batches);
    }

    /// `batch` (windows one slide long) with each window's real end.
    fn real_bounds(&self, mut batch: Batch) -> Batch {
        if self.size == self.slide {
            return batch;
        }
        let acks = batch.take_acks();
        let mut b = BatchBuilder::with_capacity(Arc::clone(&self.output_schema), batch.len());
        for row in batch.rows() {
            let start = match row.get(0) {
                FieldRef::Int(s) => s,
                _ => continue,
            };
            let end = start.saturating_add(self.size);
            b.push(FieldRef::Int(start));
            b.push(FieldRef::Int(end));
            for field in 2..batch.schema().len() {
                b.push(row.get(field));
            }
            b.end_row(end - 1);
        }
        b.build().with_acks(acks)
    }
}

/// Empty state that adds up partials: windows one `slide` long, each aggregate fed the partial
/// values of its own output field (counts are summed).
fn merging_state(slide: Millis, group_by: &[String], aggregates: &[AggregateSpec]) -> WindowState {
    let merging = aggregates
        .iter()
        .map(|a| AggregateSpec {
            op: match a.op {
                AggregateOp::Count => AggregateOp::Sum,
                other => other,
            },
            field: Some(a.name.clone()),
            name: a.name.clone(),
        })
        .collect();
    WindowState::new(Geometry { size: slide, slide }, group_by.to_vec(), merging)
}

impl Transform for MergeWindow {
    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        self.check_tenure();
        let fields = self.fields_of(batch.schema())?;
        let acks = batch.take_acks();
        let int = |f: FieldRef<'_>| match f {
            FieldRef::Int(i) => Some(i),
            _ => None,
        };
        let mut span: Option<(Millis, Millis)> = None;
        let mut progress_through: Option<Millis> = None;
        let mut bygone: Vec<u64> = Vec::new();
        for row in batch.rows() {
            let Some(tenure) = int(row.get(fields.tenure)).and_then(|t| u64::try_from(t).ok())
            else {
                continue;
            };
            if !self.tenures.is_current(tenure) {
                // Handed over: the next merger reads this row again.
                if !bygone.contains(&tenure) {
                    bygone.push(tenure);
                }
                continue;
            }
            if self.tenure != Some(tenure) {
                self.take_over(tenure);
            }
            let (Some(partition), Some(partitions)) = (
                int(row.get(fields.from_partition)),
                int(row.get(fields.of_partitions)),
            ) else {
                continue;
            };
            self.partitions = self.partitions.max(partitions);
            if let Some(through) = int(row.get(fields.through)) {
                let at = self.complete.entry(partition).or_insert(through);
                *at = (*at).max(through);
                progress_through = Some(progress_through.map_or(through, |t| t.max(through)));
                continue;
            }
            let Some(start) = int(row.get(fields.start)) else {
                continue;
            };
            let end = start.saturating_add(self.size);
            if end <= self.emitted_through
                || self.complete.get(&partition).is_some_and(|c| end <= *c)
            {
                self.repeats += 1;
                continue;
            }
            self.state.add(row, start);
            span = Some(span.map_or((start, start), |(a, b)| (a.min(start), b.max(start))));
        }
        for tenure in bygone {
            acks.abandon_tenure(tenure);
        }
        if let Some((earliest, latest)) = span {
            self.state.hold(acks.clone(), earliest, latest);
        }
        if let Some(through) = progress_through {
            self.progress_acks.push((through, acks));
        }
        self.emit(out);
        Ok(())
    }

    fn output_watermark(&self, _input: Millis) -> Millis {
        self.announced_through.saturating_sub(1)
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(CHECK_INTERVAL)
    }

    fn tick(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        self.check_tenure();
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.emit(out);
        self.stop(out)
    }

    fn stop(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        let left = self.state.abandon();
        for (_, acks) in self.progress_acks.drain(..) {
            acks.abandon();
        }
        if left > 0 {
            tracing::info!(
                "{}: stopping with {left} windows not complete in every partition; the next \
                 merger emits them",
                self.label
            );
        }
        if self.repeats > 0 {
            tracing::debug!(
                "{}: {} partial rows were repeats of partials already merged",
                self.label,
                self.repeats
            );
        }
        if self.state.late_rows > 0 {
            self.metrics
                .add_dropped(DropReason::Late, self.state.late_rows);
            tracing::warn!(
                "{}: dropped {} partial rows of windows already emitted",
                self.label,
                self.state.late_rows
            );
        }
        Ok(())
    }
}
