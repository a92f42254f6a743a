//! Where a restarted run's stages stood: the progress marks (see `ack`) stored with the last
//! committed output, loaded by the source that resumes before it sends anything, and read by the
//! stages they belong to before they handle their first record. One value per run, shared through
//! the run's resources.

use std::collections::HashMap;
use std::sync::Mutex;

/// Progress marks a run resumes from, by stage key path; and whether any source of the run
/// resumes from committed progress at all (then sinks keep what earlier runs wrote).
#[derive(Debug, Default)]
pub struct Resumed(Mutex<HashMap<String, i64>>, std::sync::atomic::AtomicBool);

impl Resumed {
    /// A source of this run continues from progress committed by earlier runs (called when the
    /// source is built; sources are built before sinks).
    pub fn source_resumes(&self) {
        self.1.store(true, std::sync::atomic::Ordering::Release);
    }

    /// True when some source of this run continues from committed progress.
    pub fn any_source_resumes(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that `stage` had emitted everything through `through` (the furthest mark wins).
    pub fn restore(&self, stage: &str, through: i64) {
        let mut marks = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = marks.entry(stage.to_string()).or_insert(through);
        *at = (*at).max(through);
    }

    /// How far `stage` had emitted before this run, if a previous run recorded it.
    pub fn through(&self, stage: &str) -> Option<i64> {
        let marks = self.0.lock().unwrap_or_else(|p| p.into_inner());
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
