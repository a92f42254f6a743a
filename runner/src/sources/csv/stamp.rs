//! Event times of CSV rows: the [`Stamp`] trait the row reader calls, its error, and
//! [`Timestamps`], the source's two ways to stamp a row (replay time, or a field of the row).

use super::config::TimeUnit;
use crate::record::{Millis, Schema};
use crate::time::future_limit;
use std::time::Duration;

/// Why a row gets no event time.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// The time column is not one of the file's columns: the read stops.
    #[error("timestamp_field `{field}` is not a column (columns: {columns})")]
    NoColumn {
        /// The configured field.
        field: String,
        /// The file's columns, comma-separated.
        columns: String,
    },
    /// The row's time is further in the future than `future_tolerance` allows: the row is bad
    /// (it would otherwise close every window and make all later rows late).
    #[error(
        "timestamp_field `{field}` is {ahead:?} or more past the clock ({time} ms); rows more than `future_tolerance` ahead are dropped"
    )]
    InTheFuture {
        /// The configured field.
        field: String,
        /// The row's time, ms since the epoch.
        time: Millis,
        /// The tolerance it exceeds.
        ahead: Duration,
    },
    /// The row's time is not an integer: the row is bad.
    #[error("timestamp_field `{field}` is not an integer: \"{text}\"")]
    NotAnInteger {
        /// The configured field.
        field: String,
        /// The row's value.
        text: String,
    },
}

/// Assigns a row its event time, or says why it cannot.
pub trait Stamp {
    /// Called once the columns are known; an error here stops the read.
    fn on_schema(&mut self, _schema: &Schema) -> Result<(), StampError> {
        Ok(())
    }

    /// The event time of a good row; `field` reads field `i` of the row.
    fn stamp<'r>(&mut self, field: &dyn Fn(usize) -> &'r str) -> Result<Millis, StampError>;
}

/// Where event times come from.
#[derive(Clone, Debug)]
pub enum Timestamps {
    /// Row n is stamped `start_time + n * ms_per_row`.
    Replay {
        start_time: Millis,
        ms_per_row: f64,
        row: u64,
    },
    /// Row n is stamped with its field `name` (column `index` once the columns are known),
    /// in `unit`; a time more than `future_tolerance` past the clock makes the row bad.
    Field {
        name: String,
        index: Option<usize>,
        unit: TimeUnit,
        future_tolerance: Duration,
    },
}

impl Timestamps {
    /// The stamp for a piece of the file read on another thread. Times read from the rows are
    /// final there; a replay time depends on how many rows came before the piece, so the piece
    /// is stamped with each row's place in it and [`Timestamps::restamp_piece`] finishes them.
    pub fn for_piece(&self) -> Timestamps {
        match self {
            Timestamps::Replay { .. } => Timestamps::Replay {
                start_time: 0,
                ms_per_row: 1.0,
                row: 0,
            },
            Timestamps::Field { .. } => self.clone(),
        }
    }

    /// Rows stamped so far (replay time; 0 for times read from the rows).
    pub fn rows_stamped(&self) -> u64 {
        match self {
            Timestamps::Replay { row, .. } => *row,
            Timestamps::Field { .. } => 0,
        }
    }

    /// Finishes the times of a piece stamped by [`Timestamps::for_piece`], taken in file order:
    /// `times` are the piece's kept rows, and `stamped` is how many rows the piece stamped (rows
    /// dropped after stamping, such as rows with invalid UTF-8, used up their place as they do
    /// when the file is read on one thread).
    pub fn restamp_piece<'t>(
        &mut self,
        times: impl Iterator<Item = &'t mut [Millis]>,
        stamped: u64,
    ) {
        if let Timestamps::Replay {
            start_time,
            ms_per_row,
            row,
        } = self
        {
            for time in times.flatten() {
                let place = u64::try_from(*time).unwrap_or(0);
                *time = replay_time(*start_time, *ms_per_row, *row + place);
            }
            *row += stamped;
        }
    }
}

impl Stamp for Timestamps {
    fn on_schema(&mut self, schema: &Schema) -> Result<(), StampError> {
        if let Timestamps::Field { name, index, .. } = self {
            *index = schema.index_of(name);
            if index.is_none() {
                return Err(StampError::NoColumn {
                    field: name.clone(),
                    columns: schema.names().collect::<Vec<_>>().join(", "),
                });
            }
        }
        Ok(())
    }

    fn stamp<'r>(&mut self, field: &dyn Fn(usize) -> &'r str) -> Result<Millis, StampError> {
        match self {
            Timestamps::Replay {
                start_time,
                ms_per_row,
                row,
            } => {
                let t = replay_time(*start_time, *ms_per_row, *row);
                *row += 1;
                Ok(t)
            }
            Timestamps::Field {
                name,
                index,
                unit,
                future_tolerance,
            } => {
                let i = index.ok_or_else(|| StampError::NoColumn {
                    field: name.clone(),
                    columns: String::new(),
                })?;
                let text = field(i).trim();
                let value: i64 = text.parse().map_err(|_| StampError::NotAnInteger {
                    field: name.clone(),
                    text: text.to_string(),
                })?;
                let time = match unit {
                    TimeUnit::Ms => value,
                    TimeUnit::S => value.saturating_mul(1000),
                };
                if time > future_limit(*future_tolerance) {
                    return Err(StampError::InTheFuture {
                        field: name.clone(),
                        time,
                        ahead: *future_tolerance,
                    });
                }
                Ok(time)
            }
        }
    }
}

/// The replay time of good row `row` (0-based).
fn replay_time(start_time: Millis, ms_per_row: f64, row: u64) -> Millis {
    start_time.saturating_add((row as f64 * ms_per_row) as Millis)
}
