//! Records that arrive after a stage has decided their event time (a `dedupe`, a `join`): they
//! are dropped, counted as late, and each is sent to `<id>.errors` with the reason when a
//! component reads it; the batch's delivery tickets stay with those errors until they are
//! delivered.

use crate::record::json::row_json;
use crate::record::{Batch, Millis};
use crate::stage::{DropReason, Rejected, Rejects, StageMetrics};

/// What a stage did with every record at or before the point a late record missed.
pub struct Decided<'a> {
    /// The verb: "decided", "paired".
    pub what: &'a str,
    /// Every record at or before this was handled.
    pub through: Millis,
    /// The stage's `allowed_lateness`, in milliseconds.
    pub lateness: Millis,
}

/// Drops rows `late` of `batch` (see the module comment).
pub fn reject_late(
    batch: &Batch,
    late: &[usize],
    decided: &Decided<'_>,
    rejects: &Rejects,
    metrics: &StageMetrics,
) {
    if late.is_empty() {
        return;
    }
    metrics.add_dropped(DropReason::Late, late.len() as u64);
    if rejects.is_connected() {
        let reason = format!(
            "late: records at or before {} were {} already (allowed_lateness {} ms)",
            decided.through, decided.what, decided.lateness
        );
        for &row in late {
            rejects.reject(Rejected {
                reason: &reason,
                at: &format!("event time {}", batch.times()[row]),
                record: &row_json(&batch.row(row)),
            });
        }
    }
    // A late record's error keeps its input's tickets until it is delivered.
    rejects.attach(batch.acks());
}
