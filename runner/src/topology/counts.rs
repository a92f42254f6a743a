//! What each stage did in a run, as the run reports it at its end: records in and out, drops by
//! reason, bytes; and the warning for a stage that dropped a large share of its input.

use crate::stage::{DropReason, StageKind};

/// Per-stage counts at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageCounts {
    /// Key path.
    pub path: String,
    /// Role of the stage.
    pub kind: StageKind,
    /// Records in.
    pub received: u64,
    /// Records out.
    pub emitted: u64,
    /// Records or rows dropped as bad or late.
    pub dropped: u64,
    /// Of those, how many for each reason (in the order of [`DropReason::ALL`]).
    pub dropped_by: [u64; DropReason::ALL.len()],
    /// Bytes a source read from its file or broker.
    pub bytes_read: u64,
    /// Bytes a sink wrote to its file, stdout or topic.
    pub bytes_written: u64,
}

/// The share of its input above which a stage's drops are called out at the end of a run.
pub const HEAVY_DROP_SHARE: f64 = 0.01;

impl StageCounts {
    /// A warning when the stage dropped more than [`HEAVY_DROP_SHARE`] of what it took in (a
    /// source: of what it read), naming each reason with its count and what to look at.
    pub fn heavy_drops(&self) -> Option<String> {
        let taken = match self.kind {
            StageKind::Source => self.emitted + self.dropped,
            StageKind::Transform | StageKind::Sink => self.received,
        };
        if taken == 0 || (self.dropped as f64) <= HEAVY_DROP_SHARE * taken as f64 {
            return None;
        }
        let reasons: Vec<String> = DropReason::ALL
            .iter()
            .zip(self.dropped_by)
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| {
                let look_at = match reason {
                    DropReason::Late => "too late for their windows: see `allowed_lateness`",
                    DropReason::Invalid => "unreadable: see the log or the stage's errors output",
                    DropReason::OutOfRange => {
                        "timestamped too far ahead or outside any window: see `future_tolerance`"
                    }
                };
                format!("{n} {} ({look_at})", reason.name())
            })
            .collect();
        Some(format!(
            "{} dropped {} of {taken} records ({:.1} %): {}",
            self.path,
            self.dropped,
            100.0 * self.dropped as f64 / taken as f64,
            reasons.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{DropReason, StageCounts, StageKind};

    fn source(emitted: u64, out_of_range: u64) -> StageCounts {
        let mut dropped_by = [0; DropReason::ALL.len()];
        dropped_by[DropReason::OutOfRange as usize] = out_of_range;
        StageCounts {
            path: "sources.shoppers".into(),
            kind: StageKind::Source,
            received: 0,
            emitted,
            dropped: out_of_range,
            dropped_by,
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    #[test]
    fn drops_over_one_percent_are_called_out_with_their_reason_and_option() {
        assert_eq!(source(1_000, 0).heavy_drops(), None);
        assert_eq!(
            source(1_000, 10).heavy_drops(),
            None,
            "1 % or less is quiet"
        );
        let warning = source(3_602, 16_398).heavy_drops().unwrap();
        assert!(warning.starts_with("sources.shoppers dropped 16398 of 20000 records (82.0 %)"));
        assert!(warning.contains("16398 out_of_range") && warning.contains("`future_tolerance`"));
    }
}
