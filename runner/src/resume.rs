//! Where a restarted run's stages stood: the progress marks (see `ack`) stored with the last
//! committed output, loaded by the source that resumes before it sends anything, and read by the
//! stages they belong to before they handle their first record. One value per run, shared through
//! the run's resources.

use std::collections::HashMap;
use std::sync::Mutex;

/// Progress marks a run resumes from, by stage key path.
#[derive(Debug, Default)]
pub struct Resumed(Mutex<HashMap<String, i64>>);

impl Resumed {
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
