//! Transform `window`: tumbling or sliding windows over event time or processing time, grouped by
//! fields, with count / sum / min / max / avg.
//!
//! Event time: the engine's watermark (per input, the latest event time seen; the smallest of
//! those over the open inputs) minus `allowed_lateness` closes every window that ends at or
//! before it. A row whose windows have all closed is late: it is dropped and counted. At the end
//! of the input every open window closes.
//! Processing time: rows are stamped with their arrival time and windows close on the clock.
//!
//! Output rows: `window_start`, `window_end` (epoch ms), the `group_by` fields, then one field per
//! aggregate; event time `window_end - 1`. All rows of one window are in one batch, groups in a
//! stable order.
//!
//! Restarts: every output batch carries a progress mark "emitted every window ending at or before
//! T" (see `ack`). A run that resumes from a transaction holding such a mark (see `resume`) counts
//! rows of those windows as replayed instead of emitting the windows a second time, partially.
//! When the run is stopped before its input ends, windows holding records that the next run reads
//! again are not emitted: their offsets stay uncommitted and the next run counts them whole.

mod aggregate;
mod config;
mod distinct;
mod groups;
mod merge;
mod partial;
mod session;
mod state;

pub use aggregate::AggregateOp;
pub use config::{AggregateConfig, OPTIONS, SharedPart, TimeMode, WindowConfig, factory};
pub use partial::PARTIAL_FIELDS;
pub use session::{SESSION_OPTIONS, SessionConfig, session_factory};

use crate::ack::Acks;
use crate::record::json::row_json;
use crate::record::{Batch, Millis, Row};
use crate::resume::Resumed;
use crate::sources::checkpoint::Tenures;
use crate::stage::{
    BuildContext, Parallel, Stage, StageConfig, StageError, StageMetrics, StageResult, Transform,
};
use crate::stage::{DropReason, EditRefusal, Rejected, Rejects};
use crate::time::{DurationSpec, now_millis};
use state::{AggregateSpec, Geometry, Placement, WindowState};
use std::sync::Arc;
use std::time::Duration;

impl StageConfig for WindowConfig {
    fn output_fields(&self, _inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        if self.part.is_some() {
            return None;
        }
        let mut names: Vec<String> = ["window_start", "window_end"].map(String::from).into();
        names.extend(self.group_by.iter().cloned());
        names.extend(self.aggregates.iter().map(|a| a.output_name()));
        Some(names)
    }

    fn marks_progress(&self) -> bool {
        true
    }

    fn keeps_state(&self) -> bool {
        // Each half of a shared window is built to see only a share of the input.
        self.part.is_none()
    }

    fn parallel(&self) -> Option<Parallel> {
        if self.part.is_some() {
            return None;
        }
        let instances = self.instances();
        (instances > 1).then(|| Parallel {
            instances,
            key_fields: self.group_by.clone(),
        })
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let size = self.size.as_millis();
        let geometry = Geometry {
            size,
            slide: self.slide.map_or(size, DurationSpec::as_millis),
        };
        // "Emitted every window ending at or before T" means other windows under another size
        // or slide: a resumed run must have the same.
        cx.resources.get::<Resumed>().declare(
            &cx.path,
            format!("size={}ms slide={}ms", geometry.size, geometry.slide),
        );
        let aggregates = self
            .aggregates
            .iter()
            .map(|a| AggregateSpec {
                op: a.op,
                field: a.field.clone(),
                name: a.output_name(),
            })
            .collect();
        let lateness = self.allowed_lateness.map_or(0, DurationSpec::as_millis);
        match self.part {
            Some(SharedPart::Partial) => {
                return Ok(Stage::Transform(Box::new(partial::PartialWindow::new(
                    geometry,
                    self.group_by.clone(),
                    aggregates,
                    lateness,
                    cx.resources.get::<Tenures>(),
                    cx.path.clone(),
                    Arc::clone(&cx.metrics),
                ))));
            }
            Some(SharedPart::Merge) => {
                return Ok(Stage::Transform(Box::new(merge::MergeWindow::new(
                    geometry,
                    self.group_by.clone(),
                    aggregates,
                    cx.resources.get::<Tenures>(),
                    cx.resources.get::<Resumed>(),
                    Arc::from(cx.path.as_str()),
                    cx.path.clone(),
                    Arc::clone(&cx.metrics),
                ))));
            }
            None => {}
        }
        Ok(Stage::Transform(Box::new(Window {
            state: WindowState::new(geometry, self.group_by.clone(), aggregates),
            mode: self.time,
            lateness,
            tick: Duration::from_millis((geometry.slide as u64 / 4).clamp(10, 100)),
            reported_late: 0,
            reported_replayed: 0,
            reported_out_of_range: 0,
            reported_missing: 0,
            resumed: Some(cx.resources.get::<Resumed>()),
            mark: Arc::from(cx.path.as_str()),
            label: cx.path.clone(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
        })))
    }
}

/// The running window transform.
pub struct Window {
    state: WindowState,
    mode: TimeMode,
    lateness: Millis,
    tick: Duration,
    reported_late: u64,
    reported_replayed: u64,
    reported_out_of_range: u64,
    reported_missing: usize,
    /// Where a restarted run learns how far an earlier one emitted; taken on first use.
    resumed: Option<Arc<Resumed>>,
    /// This stage's name in the progress marks of its output.
    mark: Arc<str>,
    label: String,
    metrics: Arc<StageMetrics>,
    /// Where late and out-of-range rows go (`<id>.errors`).
    rejects: Rejects,
}

impl Window {
    /// Sends a row that was not counted to the errors output (if connected).
    fn reject(&self, placement: Placement, row: &Row<'_>, t: Millis) {
        let reason = match placement {
            Placement::Counted | Placement::Replayed => return,
            Placement::Late { last_end } => format!(
                "late: its last window ended at {last_end}, and windows ending at or before {} \
                 had closed (allowed_lateness {} ms)",
                self.state.closed_through(),
                self.lateness
            ),
            Placement::OutOfRange => {
                "its time is too close to the ends of the time range for any window".to_string()
            }
        };
        self.rejects.reject(Rejected {
            reason: &reason,
            at: &format!("event time {t}"),
            record: &row_json(row),
        });
    }

    /// Before the first record or watermark: continues where an earlier run's committed output
    /// ended, if one did.
    fn resume_once(&mut self) {
        if let Some(resumed) = self.resumed.take()
            && let Some(through) = resumed.through(&self.mark)
        {
            tracing::info!(
                "{}: resuming after the windows an earlier run emitted (every window ending at or \
                 before {through})",
                self.label
            );
            self.state.resume(through);
        }
    }

    /// Marks the batches this call produced (from `from` on) with how far windows are emitted.
    fn mark(&self, out: &mut [Batch], from: usize) {
        for batch in &mut out[from..] {
            let mut mark = Acks::default();
            mark.mark(Arc::clone(&self.mark), self.state.closed_through());
            batch.attach_acks(mark);
        }
    }

    fn report(&mut self) {
        let late = self.state.late_rows - self.reported_late;
        if late > 0 {
            if self.reported_late == 0 {
                tracing::warn!(
                    "{}: dropping late rows (their windows had closed); raise allowed_lateness to keep them",
                    self.label
                );
            }
            self.metrics.add_dropped(DropReason::Late, late);
            self.reported_late = self.state.late_rows;
        }
        let replayed = self.state.replayed_rows - self.reported_replayed;
        if replayed > 0 {
            tracing::debug!(
                "{}: {replayed} rows read again belong to windows an earlier run emitted",
                self.label
            );
            self.reported_replayed = self.state.replayed_rows;
        }
        let out_of_range = self.state.out_of_range_rows - self.reported_out_of_range;
        if out_of_range > 0 {
            if self.reported_out_of_range == 0 {
                tracing::warn!(
                    "{}: dropping rows whose event time is too close to the ends of the time range for any window",
                    self.label
                );
            }
            self.metrics
                .add_dropped(DropReason::OutOfRange, out_of_range);
            self.reported_out_of_range = self.state.out_of_range_rows;
        }
        for name in &self.state.missing_fields[self.reported_missing..] {
            tracing::warn!(
                "{}: input has no field `{name}`; it counts as null",
                self.label
            );
        }
        self.reported_missing = self.state.missing_fields.len();
    }
}

impl Transform for Window {
    fn process(&mut self, mut batch: Batch, _out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        let acks = batch.take_acks();
        let span = match self.mode {
            TimeMode::Event => {
                let rejecting = self.rejects.is_connected();
                for row in batch.rows() {
                    let t = row.event_time();
                    let placement = self.state.add(row, t);
                    if rejecting && placement != Placement::Counted {
                        self.reject(placement, &row, t);
                    }
                }
                // A late row's error record keeps its input's tickets until it is delivered.
                self.rejects.attach(&acks);
                // Only batches with delivery tickets (or marks) need their time span.
                let times = batch.times().iter().copied();
                (!acks.carries_nothing())
                    .then(|| times.clone().min().zip(times.max()))
                    .flatten()
            }
            TimeMode::Processing => {
                let now = now_millis();
                for row in batch.rows() {
                    self.state.add(row, now);
                }
                Some((now, now))
            }
        };
        if let Some((earliest, latest)) = span {
            self.state.hold(acks, earliest, latest);
        }
        self.report();
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        if self.mode == TimeMode::Event {
            let from = out.len();
            self.state
                .close_through(watermark.saturating_sub(self.lateness), out);
            self.mark(out, from);
        }
        Ok(())
    }

    fn output_watermark(&self, input: Millis) -> Millis {
        // Windows still open may end as early as the closing point; their rows are stamped
        // `window_end - 1`.
        input.saturating_sub(self.lateness)
    }

    fn tick_interval(&self) -> Option<Duration> {
        (self.mode == TimeMode::Processing).then_some(self.tick)
    }

    fn tick(&mut self, out: &mut Vec<Batch>) -> StageResult {
        let from = out.len();
        self.state.close_through(now_millis(), out);
        self.mark(out, from);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        let from = out.len();
        self.state.close_all(out);
        self.mark(out, from);
        self.finished()
    }

    fn stop(&mut self, out: &mut Vec<Batch>) -> StageResult {
        // No progress mark: windows emitted here may end after ones left for the next run.
        let left = self.state.stop(out);
        if left > 0 {
            tracing::info!(
                "{}: stopping with {left} open windows; their records stay uncommitted and the \
                 next run counts them",
                self.label
            );
        }
        self.finished()
    }

    // Open windows carry over an edit of what decides when they close (`allowed_lateness`),
    // not of what they are.
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), EditRefusal> {
        let edited: &dyn std::any::Any = edited;
        let Some(edited) = edited.downcast_ref::<Window>() else {
            return Err(EditRefusal::new(
                "it is no longer a plain window (type, shared or parallel)",
            ));
        };
        if edited.mode != self.mode {
            return Err(EditRefusal::new(
                "its `time` changed: the open windows cannot carry over",
            ));
        }
        match self.state.shape_change(&edited.state) {
            Some(what) => Err(EditRefusal::new(format!(
                "its {what} changed: the open windows cannot carry over"
            ))),
            None => Ok(()),
        }
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        let edited: Box<dyn std::any::Any> = edited;
        if let Ok(edited) = edited.downcast::<Window>() {
            self.lateness = edited.lateness;
        }
    }
}

impl Window {
    fn finished(&mut self) -> StageResult {
        self.report();
        if self.state.non_numeric_values > 0 {
            tracing::info!(
                "{}: {} non-numeric values were left out of sum/min/max/avg",
                self.label,
                self.state.non_numeric_values
            );
        }
        debug_assert_eq!(self.state.open_windows(), 0);
        Ok(())
    }
}

#[cfg(test)]
mod handover_tests;
#[cfg(test)]
mod tests;
