//! Where a restarted run's stages stood: the progress marks (see `ack`) stored with the last
//! committed output, loaded by the source that resumes before it sends anything, and read by the
//! stages they belong to before they handle their first record. One value per run, shared through
//! the run's resources.
//!
//! A mark means something only under the options it was made with (a window's "emitted through
//! T" under its size and slide, a csv source's row count in its file): each marking stage
//! *declares* that meaning here when it is built, the marks are stored with it, and a run whose
//! meaning differs from the stored one refuses to start instead of mixing the two. A run told to
//! start over (`weir run --reset`) ignores what earlier runs committed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Progress marks a run resumes from, by stage key path; whether any source of the run resumes
/// from committed progress at all (then sinks keep what earlier runs wrote); the meanings this
/// run's marking stages declared; and whether the run starts over.
#[derive(Debug, Default)]
pub struct Resumed {
    marks: Mutex<HashMap<String, i64>>,
    any_source_resumes: AtomicBool,
    meanings: Mutex<BTreeMap<String, String>>,
    start_over: AtomicBool,
    sink_keeps_marks: AtomicBool,
}

impl Resumed {
    /// This run ignores the progress earlier runs committed: its sources read from the
    /// beginning and its first commit replaces the stored marks (`weir run --reset`).
    pub fn start_over(&self) {
        self.start_over.store(true, Ordering::Release);
    }

    /// True when this run starts over (see [`start_over`](Self::start_over)).
    pub fn starts_over(&self) -> bool {
        self.start_over.load(Ordering::Acquire)
    }

    /// `stage`'s marks mean something only under `meaning` (its options that decide what a
    /// mark stands for, as text); called when the stage is built.
    pub fn declare(&self, stage: &str, meaning: String) {
        self.meanings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stage.to_string(), meaning);
    }

    /// The meanings declared so far, by stage.
    pub fn meanings(&self) -> BTreeMap<String, String> {
        self.meanings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A source of this run continues from progress committed by earlier runs (called when the
    /// source is built; sources are built before sinks).
    pub fn source_resumes(&self) {
        self.any_source_resumes.store(true, Ordering::Release);
    }

    /// A sink of this run stores the progress marks its batches carry itself, outside any Kafka
    /// transaction (`postgres`; called when it is built).
    pub fn sink_keeps_marks(&self) {
        self.sink_keeps_marks.store(true, Ordering::Release);
    }

    /// True when a sink stores marks itself: then a source with no transaction to keep its own
    /// marks in sends them along with its batches.
    pub fn marks_travel_to_a_sink(&self) -> bool {
        self.sink_keeps_marks.load(Ordering::Acquire)
    }

    /// True when some source of this run continues from committed progress.
    pub fn any_source_resumes(&self) -> bool {
        self.any_source_resumes.load(Ordering::Acquire)
    }

    /// Records that `stage` had emitted everything through `through` (the furthest mark wins).
    pub fn restore(&self, stage: &str, through: i64) {
        let mut marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        let at = marks.entry(stage.to_string()).or_insert(through);
        *at = (*at).max(through);
    }

    /// How far `stage` had emitted before this run, if a previous run recorded it.
    pub fn through(&self, stage: &str) -> Option<i64> {
        let marks = self.marks.lock().unwrap_or_else(|p| p.into_inner());
        marks.get(stage).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_furthest_mark_per_stage_wins() {
        let resumed = Resumed::default();
        assert_eq!(resumed.through("w"), None);
        resumed.restore("w", 7);
        resumed.restore("w", 3);
        resumed.restore("v", -1);
        assert_eq!(resumed.through("w"), Some(7));
        assert_eq!(resumed.through("v"), Some(-1));
    }
}
