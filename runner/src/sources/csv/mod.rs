//! Source `csv`: replays a CSV file at a fixed rate or as fast as possible.
//!
//! Every row gets an event time: by default the *replay time* (`start_time` + row number /
//! `event_rate`), so windows over a replay come out the same whether it runs at 10 rows/s or flat
//! out; or, with `timestamp_field`, a time read from the row. Bad rows are logged with file and
//! line, counted as dropped, and skipped.
//!
//! Resuming: when a `kafka` sink of the run writes in transactions, the number of good rows
//! delivered is committed in them (as this stage's progress mark); a restarted run reads those rows
//! again, unsent and unpaced, and goes on from there, so each row reaches the topic exactly once.
//! Without such a sink the file is replayed from the start.

mod config;
mod guard;
mod header;
mod pace;
mod parallel;
mod rows;
mod stamp;

pub use config::{AutoBool, CsvConfig, OPTIONS, Rate, TimeUnit, factory};
pub use header::HeaderMode;
pub use rows::{BadRow, ReadError, ReadOptions};
pub use stamp::Timestamps;

/// Reads `bytes` as a whole file, as the source does, in batches of at most `batch_rows`: the
/// number of good rows, and the bad ones. For the fuzz targets and tools that hold a file in
/// memory.
pub fn read_bytes(
    bytes: &[u8],
    options: ReadOptions,
    mut timestamps: Timestamps,
    batch_rows: usize,
) -> Result<(usize, Vec<BadRow>), ReadError> {
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut rows =
        CsvRows::new(std::io::Cursor::new(bytes), options, read).map_err(ReadError::from)?;
    let (mut good, mut bad) = (0, Vec::new());
    loop {
        let batch = rows.read_batch(batch_rows.max(1), &mut timestamps, &mut bad)?;
        good += batch.batch.as_ref().map_or(0, crate::record::Batch::len);
        if batch.at_end {
            return Ok((good, bad));
        }
    }
}

use super::checkpoint::{Checkpoints, Partition};
use crate::kafka::transaction::{CommitPoint, Offsets, Transactions, Transactor};
use crate::progress;
use crate::record::Millis;
use crate::resume::Resumed;
use crate::stage::DropReason;
use crate::stage::{
    BuildContext, Rejected, Rejects, Source, SourceContext, Stage, StageConfig, StageError,
    StageMetrics, StageResult,
};
use crate::time::now_millis;
use async_trait::async_trait;
use pace::Pace;
use parallel::{Cell, Cutting, ParallelRows};
use rows::{CsvRows, ReadBatch};
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// How many bad rows are logged one by one before only the count is kept.
const BAD_ROWS_LOGGED: u64 = 20;

impl StageConfig for CsvConfig {
    fn output_fields(&self, _inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        self.columns.clone()
    }

    fn marks_progress(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let meta =
            std::fs::metadata(&self.path).map_err(|e| StageError::io("open", &self.path, e))?;
        if meta.is_dir() {
            return Err(StageError::Input(format!(
                "{} is a directory, not a CSV file",
                self.path.display()
            )));
        }
        let event_rate = self.event_rate.unwrap_or(match self.rate {
            Rate::PerSecond(r) => r,
            Rate::Max => 1000.0,
        });
        let start_time_from_clock = self.start_time.is_none() && self.timestamp_field.is_none();
        let start_time = self
            .start_time
            .map_or_else(|| now_millis() / 1000 * 1000, |t| t.0);
        let timestamps = match &self.timestamp_field {
            Some(field) => Timestamps::Field {
                name: field.clone(),
                index: None,
                unit: self.timestamp_unit,
                future_tolerance: self.future_tolerance.0,
            },
            None => Timestamps::Replay {
                start_time,
                ms_per_row: 1000.0 / event_rate,
                row: 0,
            },
        };
        // The position kept as its progress is a row number of this file (and, for a replay,
        // the rows' stamps follow from the event rate). The path as written: a project moved
        // elsewhere keeps its progress.
        let file = &self.path;
        let meaning = match &timestamps {
            Timestamps::Replay { .. } => {
                format!("file={} event_rate={event_rate}/s", file.display())
            }
            Timestamps::Field { .. } => format!("file={}", file.display()),
        };
        cx.resources.get::<Resumed>().declare(&cx.path, meaning);
        let progress = match self.progress {
            AutoBool::Auto => progress::stderr_is_terminal(),
            AutoBool::Yes => true,
            AutoBool::No => false,
        };
        Ok(Stage::Source(Box::new(CsvSource {
            path: self.path.clone(),
            label: cx.path.clone(),
            options: ReadOptions {
                header: match self.header {
                    AutoBool::Auto => HeaderMode::Auto,
                    AutoBool::Yes => HeaderMode::Present,
                    AutoBool::No => HeaderMode::Absent,
                },
                columns: self.columns.clone(),
                delimiter: self.delimiter.as_bytes()[0],
                quoting: self.quoting,
                max_line_bytes: self.max_line_bytes,
            },
            rate: self.rate,
            repeat: self.r#loop,
            batch_size: self.batch_size,
            timestamps,
            start_time_from_clock,
            progress,
            file_len: meta.len(),
            // By default one core is left to the stages downstream: on two cores a second parser
            // only takes CPU from the window (measured in BENCHMARKS.md).
            parallelism: self.parallelism.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }),
            transactions: cx.resources.get::<Transactions>(),
            resumed: cx.resources.get::<Resumed>(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
        })))
    }
}

struct CsvSource {
    path: PathBuf,
    label: String,
    options: ReadOptions,
    rate: Rate,
    repeat: bool,
    batch_size: usize,
    timestamps: Timestamps,
    /// The replay's first event time was taken from the clock (no `start_time` in the file): a
    /// resumed run must take the earlier run's, kept as a progress mark, or it would stamp the
    /// rows it reads again with other times.
    start_time_from_clock: bool,
    progress: bool,
    file_len: u64,
    /// Threads parsing the file when it is read flat out.
    parallelism: usize,
    transactions: Arc<Transactions>,
    /// Told, before anything is sent, when this run continues from a committed position (so
    /// file sinks keep what earlier runs wrote).
    resumed: Arc<Resumed>,
    metrics: Arc<StageMetrics>,
    /// Where bad rows go (`<id>.errors`), with the tickets of the cell they were read in.
    rejects: Rejects,
}

/// The file's rows, read on this thread or on several.
enum Rows {
    OneThread(CsvRows<BufReader<File>>),
    Parallel(ParallelRows),
}

impl Rows {
    /// The next `max_rows` good rows (fewer only at the end), in one or more batches.
    fn read_cell(
        &mut self,
        max_rows: usize,
        stamp: &mut Timestamps,
        bad: &mut Vec<BadRow>,
    ) -> Result<Cell, ReadError> {
        match self {
            Rows::OneThread(rows) => {
                let ReadBatch { batch, at_end } = rows.read_batch(max_rows, stamp, bad)?;
                Ok(Cell {
                    parts: batch.into_iter().collect(),
                    at_end,
                })
            }
            Rows::Parallel(rows) => rows.read_cell(max_rows, stamp, bad),
        }
    }

    fn repeated_headers(&self) -> u64 {
        match self {
            Rows::OneThread(rows) => rows.repeated_headers,
            Rows::Parallel(rows) => rows.repeated_headers(),
        }
    }
}

/// The suffix of the progress mark that keeps a clock-stamped replay's first event time.
const START_TIME_MARK: &str = "@start_time";

/// A progress mark that never moves: handed to the transactor once, committed with the first
/// transaction.
struct ConstantMark {
    value: i64,
    taken: AtomicBool,
}

impl ConstantMark {
    fn new(value: i64) -> ConstantMark {
        ConstantMark {
            value,
            taken: AtomicBool::new(false),
        }
    }
}

impl CommitPoint for ConstantMark {
    fn take_commit(&self) -> Option<Offsets> {
        if self.taken.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(vec![((Arc::from(START_TIME_MARK), 0), self.value)])
    }
}

/// Where the source resumes and how it records its position.
struct Position {
    /// Good rows an earlier run already delivered: read again (same stamps) but not sent.
    skip: u64,
    /// The ledger whose settled prefix is the position to commit, when a transaction takes it.
    ledger: Option<Arc<Checkpoints>>,
    partition: Partition,
    /// Without a transaction to keep it: the clock-stamped replay's first event time, carried as
    /// a progress mark on every batch for sinks that store marks themselves (`postgres`).
    start_time_mark: Option<(Arc<str>, Millis)>,
}

#[async_trait]
impl Source for CsvSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> StageResult {
        // With a Kafka sink writing in transactions, the position (good rows delivered) is kept
        // as this stage's progress mark in them, so a restart neither repeats nor loses a row.
        let transactor = self.transactions.first();
        if let Some(transactor) = &transactor {
            transactor.start().await?;
        }
        // File reading and pacing block; keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut source = self;
            let position = source.position(transactor.as_deref(), &cx);
            source.replay(cx, position)
        })
        .await
        .map_err(|e| StageError::joined("the reader thread", e))?
    }
}

impl CsvSource {
    /// The position to resume from and the ledger for the next one (blocking).
    fn position(&mut self, transactor: Option<&Transactor>, cx: &SourceContext) -> Position {
        let partition: Partition = (Arc::from(self.label.as_str()), 0);
        let Some(transactor) = transactor else {
            return Position {
                skip: 0,
                ledger: None,
                partition,
                start_time_mark: self.start_time_without_transactor(),
            };
        };
        let skip = transactor
            .committed_marks()
            .get(&self.label)
            .map_or(0, |&rows| u64::try_from(rows).unwrap_or(0));
        if skip > 0 {
            self.resumed.source_resumes();
            tracing::info!(
                "{}: resuming after the {skip} rows an earlier run delivered",
                self.label
            );
        }
        self.resume_start_time(transactor);
        let ledger = Checkpoints::new(cx.health.clone());
        transactor.register_position(&self.label, Arc::clone(&ledger) as Arc<dyn CommitPoint>);
        Position {
            skip,
            ledger: Some(ledger),
            partition,
            start_time_mark: None,
        }
    }

    /// A replay stamped from the clock, with no transaction to keep its first event time: that
    /// time as a mark for the batches to carry, taken from the marks a sink handed back at start
    /// (a `postgres` sink's) when an earlier run's is there — so rows read again get the times
    /// they had.
    fn start_time_without_transactor(&mut self) -> Option<(Arc<str>, Millis)> {
        let Timestamps::Replay { start_time, .. } = &mut self.timestamps else {
            return None;
        };
        // Only a sink that keeps marks itself would store it: otherwise it would only cost.
        if !self.start_time_from_clock || !self.resumed.marks_travel_to_a_sink() {
            return None;
        }
        let key = format!("{}{START_TIME_MARK}", self.label);
        if let Some(earlier) = self.resumed.through(&key) {
            tracing::info!(
                "{}: stamping rows from {earlier} ms, as the earlier run did",
                self.label
            );
            *start_time = earlier;
        }
        Some((Arc::from(key.as_str()), *start_time))
    }

    /// A replay stamped from the clock keeps its first event time as a progress mark of its own
    /// (`<id>@start_time`), and a resumed run stamps with the earlier run's: the rows it reads
    /// again get the times they had, so the window left open by a stopped run is completed, not
    /// cut short by rows stamped from the new clock.
    fn resume_start_time(&mut self, transactor: &Transactor) {
        let Timestamps::Replay { start_time, .. } = &mut self.timestamps else {
            return;
        };
        if !self.start_time_from_clock {
            return;
        }
        let key = format!("{}{START_TIME_MARK}", self.label);
        if let Some(&earlier) = transactor.committed_marks().get(&key) {
            tracing::info!(
                "{}: stamping rows from {earlier} ms, as the earlier run did",
                self.label
            );
            *start_time = earlier;
        }
        transactor.register_position(&key, Arc::new(ConstantMark::new(*start_time)));
    }

    fn replay(mut self, mut cx: SourceContext, position: Position) -> StageResult {
        let pace = Pace::new(self.rate, self.batch_size, position.skip);
        let mut bad_total = 0u64;
        let mut emitted = 0u64;
        loop {
            let before = emitted;
            let (stopped, bad) = self.one_pass(&mut cx, &pace, &position, &mut emitted)?;
            bad_total += bad;
            if stopped || !self.repeat {
                break;
            }
            if emitted == before {
                tracing::warn!(
                    "{}: {} has no good rows; not looping",
                    self.label,
                    self.path.display()
                );
                break;
            }
        }
        if bad_total > 0 {
            tracing::warn!(
                "{}: {} bad rows in {} skipped",
                self.label,
                bad_total,
                self.path.display()
            );
        }
        tracing::info!(
            "{}: read {} rows from {}",
            self.label,
            emitted,
            self.path.display()
        );
        Ok(())
    }

    /// Reads the file once. Returns whether the run was stopped and how many rows were bad.
    fn one_pass(
        &mut self,
        cx: &mut SourceContext,
        pace: &Pace,
        position: &Position,
        emitted: &mut u64,
    ) -> StageResult<(bool, u64)> {
        let mut file = File::open(&self.path).map_err(|e| StageError::io("open", &self.path, e))?;
        let bytes_read = Arc::new(AtomicU64::new(0));
        // Parsing on several threads pays when the file is read flat out from its start; paced
        // replays and resumed runs read on one.
        if self.parallelism > 1 && pace.is_flat_out() && position.skip == 0 {
            match ParallelRows::start(
                file,
                self.options.clone(),
                &mut self.timestamps,
                self.batch_size,
                Cutting {
                    parsers: self.parallelism,
                    piece_bytes: parallel::PIECE_BYTES,
                    quoting: self.options.quoting,
                },
                Arc::clone(&bytes_read),
            )
            .map_err(|e| StageError::io("read", &self.path, e))?
            {
                Ok(parallel) => {
                    let rows = Rows::Parallel(parallel);
                    return self.read_rows(cx, pace, position, emitted, rows, &bytes_read);
                }
                Err(unsplit) => file = unsplit,
            }
        }
        let input = BufReader::with_capacity(256 * 1024, file);
        let rows = CsvRows::new(input, self.options.clone(), Arc::clone(&bytes_read))
            .map_err(|e| StageError::io("read", &self.path, e))?;
        self.read_rows(
            cx,
            pace,
            position,
            emitted,
            Rows::OneThread(rows),
            &bytes_read,
        )
    }

    /// Sends the rows of one pass downstream. Returns whether the run was stopped and how many
    /// rows were bad.
    fn read_rows(
        &mut self,
        cx: &mut SourceContext,
        pace: &Pace,
        position: &Position,
        emitted: &mut u64,
        mut rows: Rows,
        bytes_read: &AtomicU64,
    ) -> StageResult<(bool, u64)> {
        let bar = self
            .progress
            .then(|| progress::file_bar(&self.label, self.file_len));
        let mut bad = Vec::new();
        let mut bad_count = 0u64;
        // Bytes of this pass already added to the stage's counters.
        let mut bytes_counted = 0u64;
        // The latest event time sent: the watermark after each cell.
        let mut latest = Millis::MIN;
        cx.output.manual_watermarks();
        loop {
            if cx.shutdown.is_requested() {
                finish_bar(bar);
                return Ok((true, bad_count));
            }
            let mut want = pace.rows_per_batch();
            if *emitted < position.skip {
                // Batches end where the skipped rows do.
                want = want.min(usize::try_from(position.skip - *emitted).unwrap_or(usize::MAX));
            }
            let read = rows
                .read_cell(want, &mut self.timestamps, &mut bad)
                .map_err(|e| match e {
                    ReadError::Io(e) => StageError::io("read", &self.path, e),
                    ReadError::Stamp(stamp) => {
                        StageError::Input(format!("{}: {stamp}", self.path.display()))
                    }
                })?;
            // Rows before the resume point were delivered, their bad rows' error records too
            // (the tickets of a cell settle when both are).
            let resending = *emitted < position.skip;
            let rejected = !bad.is_empty() && !resending;
            bad_count += self.report_bad(&mut bad, bad_count, !resending);
            let got: u64 = read.parts.iter().map(|b| b.len() as u64).sum();
            let bytes_now = bytes_read.load(Ordering::Relaxed);
            self.metrics
                .add_bytes_read(bytes_now.saturating_sub(bytes_counted));
            bytes_counted = bytes_counted.max(bytes_now);
            if let Some(bar) = &bar {
                bar.set_position(bytes_now);
                bar.set_message(format!("{} rows, {} bad", *emitted + got, bad_count));
            }
            if got > 0 {
                if *emitted < position.skip {
                    *emitted += got; // delivered by an earlier run
                    continue;
                }
                if !pace.wait_for(*emitted + got - 1, &cx.shutdown) {
                    finish_bar(bar);
                    return Ok((true, bad_count));
                }
                for mut batch in read.parts {
                    *emitted += batch.len() as u64;
                    latest = batch.times().iter().copied().fold(latest, Millis::max);
                    if let Some(ledger) = &position.ledger {
                        let at = i64::try_from(*emitted).unwrap_or(i64::MAX);
                        batch =
                            batch.with_acks(ledger.issue(vec![(position.partition.clone(), at)]));
                    } else if let Some((key, start_time)) = &position.start_time_mark {
                        let mut acks = batch.take_acks();
                        acks.mark(Arc::clone(key), *start_time);
                        batch.attach_acks(acks);
                    }
                    self.rejects.attach(batch.acks());
                    if cx.output.blocking_send(batch).is_err() {
                        finish_bar(bar);
                        return Ok((true, bad_count));
                    }
                }
                // The watermark goes after the whole cell, where one thread's batch ends.
                if cx.output.blocking_send_watermark(latest).is_err() {
                    finish_bar(bar);
                    return Ok((true, bad_count));
                }
            } else if rejected && let Some(ledger) = &position.ledger {
                // Bad rows only: a ticket of their own keeps later positions from being
                // committed before their error records are delivered.
                let at = i64::try_from(*emitted).unwrap_or(i64::MAX);
                self.rejects
                    .attach(&ledger.issue(vec![(position.partition.clone(), at)]));
            }
            if rejected {
                self.rejects.blocking_flush();
            }
            if read.at_end {
                break;
            }
        }
        if rows.repeated_headers() > 0 {
            tracing::info!(
                "{}: skipped {} repeated header lines",
                self.label,
                rows.repeated_headers()
            );
        }
        finish_bar(bar);
        Ok((false, bad_count))
    }

    /// Logs bad rows (the first few one by one), counts them as dropped, rejects them (when
    /// `reject`: to the errors output, if connected), and empties `bad`.
    fn report_bad(&self, bad: &mut Vec<BadRow>, already: u64, reject: bool) -> u64 {
        if reject && self.rejects.is_connected() {
            for row in bad.iter() {
                self.rejects.reject(Rejected {
                    reason: &row.reason,
                    at: &format!("{}:{}", self.path.display(), row.line),
                    record: &row.text,
                });
            }
        }
        for (i, row) in bad.iter().enumerate() {
            let n = already + i as u64;
            if n < BAD_ROWS_LOGGED {
                tracing::warn!(
                    "{}: {}:{}: bad row skipped: {}",
                    self.label,
                    self.path.display(),
                    row.line,
                    row.reason
                );
            } else if n == BAD_ROWS_LOGGED {
                tracing::warn!(
                    "{}: more bad rows; only their count is reported from here on",
                    self.label
                );
            }
        }
        let n = bad.len() as u64;
        self.metrics.add_dropped(DropReason::Invalid, n);
        bad.clear();
        n
    }
}

fn finish_bar(bar: Option<indicatif::ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}
