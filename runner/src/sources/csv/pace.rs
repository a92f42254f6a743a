//! Pacing a csv replay: when each row is due at a fixed rate (`rate`), and how many rows go in a
//! batch.

use super::config::Rate;
use std::time::{Duration, Instant};

/// When each row is due when replaying at a fixed rate.
pub(super) struct Pace {
    started: Instant,
    rows_per_second: Option<f64>,
    batch_size: usize,
    /// Rows before this one are not paced (they were delivered by an earlier run).
    first: u64,
}

impl Pace {
    pub(super) fn new(rate: Rate, batch_size: usize, first: u64) -> Pace {
        Pace {
            first,
            started: Instant::now(),
            rows_per_second: match rate {
                Rate::Max => None,
                Rate::PerSecond(r) => Some(r),
            },
            batch_size,
        }
    }

    /// True when rows go as fast as they can be read (`rate = "max"`).
    pub(super) fn is_flat_out(&self) -> bool {
        self.rows_per_second.is_none()
    }

    /// Rows per batch: a full batch flat out; about 20 batches a second when paced.
    pub(super) fn rows_per_batch(&self) -> usize {
        match self.rows_per_second {
            None => self.batch_size,
            Some(r) => ((r / 20.0) as usize).clamp(1, self.batch_size),
        }
    }

    /// Sleeps until row `row` (0-based) is due. Returns false if a stop was requested meanwhile.
    pub(super) fn wait_for(&self, row: u64, shutdown: &crate::stage::Shutdown) -> bool {
        let Some(rate) = self.rows_per_second else {
            return true;
        };
        let due =
            self.started + Duration::from_secs_f64(row.saturating_sub(self.first) as f64 / rate);
        loop {
            if shutdown.is_requested() {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
    }
}
