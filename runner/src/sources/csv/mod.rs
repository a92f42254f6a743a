//! Source `csv`: replays a CSV file at a fixed rate or as fast as possible.
//!
//! Every row gets an event time: by default the *replay time* (`start_time` + row number /
//! `event_rate`), so windows over a replay come out the same whether it runs at 10 rows/s or flat
//! out; or, with `timestamp_field`, a time read from the row. Bad rows are logged with file and
//! line, counted as dropped, and skipped.

mod guard;
mod rows;

pub use rows::USER_LOG_COLUMNS;

use crate::config::pipeline::StageKind;
use crate::progress;
use crate::record::Millis;
use crate::registry::{BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, StageConfig};
use crate::stage::{Source, SourceContext, Stage, StageError, StageMetrics, StageResult};
use crate::time::{TimePoint, now_millis};
use async_trait::async_trait;
use rows::{BadRow, CsvRows, HeaderMode, ReadOptions, Stamp};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many bad rows are logged one by one before only the count is kept.
const BAD_ROWS_LOGGED: u64 = 20;

/// Options of the `csv` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    path: PathBuf,
    #[serde(default)]
    header: AutoBool,
    columns: Option<Vec<String>>,
    #[serde(default = "default_delimiter")]
    delimiter: String,
    #[serde(default = "default_true")]
    quoting: bool,
    #[serde(default)]
    rate: Rate,
    event_rate: Option<f64>,
    start_time: Option<TimePoint>,
    timestamp_field: Option<String>,
    #[serde(default)]
    timestamp_unit: TimeUnit,
    #[serde(default, rename = "loop")]
    repeat: bool,
    #[serde(default = "default_max_line_bytes")]
    max_line_bytes: u64,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    #[serde(default)]
    progress: AutoBool,
}

fn default_delimiter() -> String {
    ",".into()
}
fn default_true() -> bool {
    true
}
fn default_max_line_bytes() -> u64 {
    1 << 20
}
fn default_batch_size() -> usize {
    2048
}

/// The documented options, for `weir list`.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "path",
        ty: "string",
        default: "required",
        doc: "CSV file to read (relative to the current directory)",
    },
    OptionDoc {
        name: "rate",
        ty: "number | \"max\"",
        default: "\"max\"",
        doc: "rows per second to replay at, or as fast as possible",
    },
    OptionDoc {
        name: "event_rate",
        ty: "number",
        default: "rate, or 1000 when rate is \"max\"",
        doc: "rows per second of event time: row n is stamped start_time + n/event_rate",
    },
    OptionDoc {
        name: "start_time",
        ty: "epoch ms | RFC 3339",
        default: "now, rounded down to the second",
        doc: "event time of the first row",
    },
    OptionDoc {
        name: "timestamp_field",
        ty: "string",
        default: "none",
        doc: "take each row's event time from this column instead (integer)",
    },
    OptionDoc {
        name: "timestamp_unit",
        ty: "\"ms\" | \"s\"",
        default: "\"ms\"",
        doc: "unit of timestamp_field",
    },
    OptionDoc {
        name: "header",
        ty: "bool | \"auto\"",
        default: "\"auto\"",
        doc: "whether the first row names the columns (auto: it does if no field is empty or numeric)",
    },
    OptionDoc {
        name: "columns",
        ty: "[string]",
        default: "header, or the 11 user_log columns for 11-field rows, else field_1..N",
        doc: "column names",
    },
    OptionDoc {
        name: "delimiter",
        ty: "string (1 byte)",
        default: "\",\"",
        doc: "field separator",
    },
    OptionDoc {
        name: "quoting",
        ty: "bool",
        default: "true",
        doc: "whether \" quotes fields",
    },
    OptionDoc {
        name: "loop",
        ty: "bool",
        default: "false",
        doc: "start over at the end of the file (event time keeps advancing)",
    },
    OptionDoc {
        name: "max_line_bytes",
        ty: "integer",
        default: "1048576",
        doc: "longer lines are reported as bad rows",
    },
    OptionDoc {
        name: "batch_size",
        ty: "integer",
        default: "2048",
        doc: "most rows per batch",
    },
    OptionDoc {
        name: "progress",
        ty: "bool | \"auto\"",
        default: "\"auto\"",
        doc: "progress bar on stderr (auto: when stderr is a terminal)",
    },
];

/// The `csv` source type.
pub fn factory() -> Builtin<CsvConfig> {
    Builtin::new(
        StageKind::Source,
        "csv",
        "Reads rows from a CSV file, at a fixed rate or as fast as possible",
        OPTIONS,
    )
}

/// `true`, `false` or `"auto"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AutoBool {
    /// Decide from the situation.
    #[default]
    Auto,
    /// Yes.
    Yes,
    /// No.
    No,
}

impl<'de> Deserialize<'de> for AutoBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AutoBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<AutoBool, E> {
                Ok(if v { AutoBool::Yes } else { AutoBool::No })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AutoBool, E> {
                match v {
                    "auto" => Ok(AutoBool::Auto),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Rows per second, or as fast as possible.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Rate {
    /// As fast as possible.
    #[default]
    Max,
    /// This many rows per second.
    PerSecond(f64),
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("rows per second (a number) or \"max\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                Ok(Rate::PerSecond(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate::PerSecond(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rate, E> {
                Ok(Rate::PerSecond(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                match v {
                    "max" => Ok(Rate::Max),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Unit of a timestamp column.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Milliseconds since the epoch.
    #[default]
    Ms,
    /// Seconds since the epoch.
    S,
}

impl BuiltinConfig for CsvConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if let Rate::PerSecond(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            issues.push(
                OptionIssue::new("rate", format!("rate must be above 0, found {r}"))
                    .hint("use \"max\" to read as fast as possible"),
            );
        }
        if let Some(r) = self.event_rate
            && !(r.is_finite() && r > 0.0)
        {
            issues.push(OptionIssue::new(
                "event_rate",
                format!("event_rate must be above 0, found {r}"),
            ));
        }
        if self.timestamp_field.is_some()
            && (self.event_rate.is_some() || self.start_time.is_some())
        {
            let key = if self.event_rate.is_some() {
                "event_rate"
            } else {
                "start_time"
            };
            issues.push(
                OptionIssue::new(key, "cannot be combined with timestamp_field")
                    .hint("event times come either from a column or from the replay clock"),
            );
        }
        if self.delimiter.len() != 1 {
            issues.push(
                OptionIssue::new(
                    "delimiter",
                    format!("delimiter must be one byte, found \"{}\"", self.delimiter),
                )
                .hint("for tab-separated files write delimiter = \"\\t\""),
            );
        }
        if !(1..=1 << 20).contains(&self.batch_size) {
            issues.push(OptionIssue::new(
                "batch_size",
                format!(
                    "batch_size must be between 1 and 1048576, found {}",
                    self.batch_size
                ),
            ));
        }
        if self.max_line_bytes < 16 {
            issues.push(OptionIssue::new(
                "max_line_bytes",
                "max_line_bytes must be at least 16",
            ));
        }
        if let Some(columns) = &self.columns {
            if columns.is_empty() {
                issues.push(OptionIssue::new("columns", "columns is empty"));
            }
            for (i, c) in columns.iter().enumerate() {
                if columns[..i].contains(c) {
                    issues.push(OptionIssue::new(
                        format!("columns[{i}]"),
                        format!("column `{c}` is named twice"),
                    ));
                }
            }
            if let Some(t) = &self.timestamp_field
                && !columns.contains(t)
            {
                issues.push(OptionIssue::new(
                    "timestamp_field",
                    format!("`{t}` is not one of the columns"),
                ));
            }
        }
        issues
    }

    fn warnings(&self) -> Vec<OptionIssue> {
        if self.path.exists() {
            Vec::new()
        } else {
            vec![
                OptionIssue::new(
                    "path",
                    format!("{} does not exist (yet)", self.path.display()),
                )
                .hint("relative paths are taken from the directory weir runs in"),
            ]
        }
    }
}

impl StageConfig for CsvConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let meta = std::fs::metadata(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        if meta.is_dir() {
            return Err(format!("{} is a directory, not a CSV file", self.path.display()).into());
        }
        let event_rate = self.event_rate.unwrap_or(match self.rate {
            Rate::PerSecond(r) => r,
            Rate::Max => 1000.0,
        });
        let start_time = self
            .start_time
            .map_or_else(|| now_millis() / 1000 * 1000, |t| t.0);
        let timestamps = match &self.timestamp_field {
            Some(field) => Timestamps::Field {
                name: field.clone(),
                index: None,
                unit: self.timestamp_unit,
            },
            None => Timestamps::Replay {
                start_time,
                ms_per_row: 1000.0 / event_rate,
                row: 0,
            },
        };
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
            repeat: self.repeat,
            batch_size: self.batch_size,
            timestamps,
            progress,
            file_len: meta.len(),
            metrics: Arc::clone(&cx.metrics),
        })))
    }
}

/// Where event times come from.
enum Timestamps {
    /// Row n is stamped `start_time + n * ms_per_row`.
    Replay {
        start_time: Millis,
        ms_per_row: f64,
        row: u64,
    },
    Field {
        name: String,
        index: Option<usize>,
        unit: TimeUnit,
    },
}

impl Stamp for Timestamps {
    fn on_schema(&mut self, schema: &crate::record::Schema) -> Result<(), String> {
        if let Timestamps::Field { name, index, .. } = self {
            *index = schema.index_of(name);
            if index.is_none() {
                return Err(format!(
                    "timestamp_field `{name}` is not a column (columns: {})",
                    schema.names().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Ok(())
    }

    fn stamp<'r>(&mut self, field: &dyn Fn(usize) -> &'r str) -> Result<Millis, String> {
        match self {
            Timestamps::Replay {
                start_time,
                ms_per_row,
                row,
            } => {
                let t = *start_time + (*row as f64 * *ms_per_row) as Millis;
                *row += 1;
                Ok(t)
            }
            Timestamps::Field { name, index, unit } => {
                let i = index.ok_or_else(|| format!("no column `{name}` for timestamp_field"))?;
                let text = field(i).trim();
                let value: i64 = text.parse().map_err(|_| {
                    format!("timestamp_field `{name}` is not an integer: \"{text}\"")
                })?;
                Ok(match unit {
                    TimeUnit::Ms => value,
                    TimeUnit::S => value.saturating_mul(1000),
                })
            }
        }
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
    progress: bool,
    file_len: u64,
    metrics: Arc<StageMetrics>,
}

#[async_trait]
impl Source for CsvSource {
    async fn run(self: Box<Self>, cx: SourceContext) -> StageResult {
        // File reading and pacing block; keep them off the async workers.
        match tokio::task::spawn_blocking(move || self.replay(cx)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(StageError::new(format!(
                "panicked: {}",
                crate::panic_message(e.into_panic())
            ))),
            Err(e) => Err(StageError::new(e.to_string())),
        }
    }
}

impl CsvSource {
    fn replay(mut self, mut cx: SourceContext) -> StageResult {
        let pace = Pace::new(self.rate, self.batch_size);
        let mut bad_total = 0u64;
        let mut emitted = 0u64;
        loop {
            let before = emitted;
            let (stopped, bad) = self.one_pass(&mut cx, &pace, &mut emitted)?;
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
        emitted: &mut u64,
    ) -> StageResult<(bool, u64)> {
        let file = File::open(&self.path)
            .map_err(|e| format!("cannot open {}: {e}", self.path.display()))?;
        let bytes_read = Arc::new(AtomicU64::new(0));
        let input = BufReader::with_capacity(256 * 1024, file);
        let mut rows = CsvRows::new(input, self.options.clone(), Arc::clone(&bytes_read))
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let bar = self
            .progress
            .then(|| progress::file_bar(&self.label, self.file_len));
        let mut bad = Vec::new();
        let mut bad_count = 0u64;
        loop {
            if cx.shutdown.is_requested() {
                finish_bar(bar);
                return Ok((true, bad_count));
            }
            let want = pace.rows_per_batch();
            let read = rows
                .read_batch(want, &mut self.timestamps, &mut bad)
                .map_err(|e| format!("{}: {e}", self.path.display()))?;
            bad_count += self.report_bad(&mut bad, bad_count);
            let got = read.batch.as_ref().map_or(0, |b| b.len() as u64);
            if let Some(bar) = &bar {
                bar.set_position(bytes_read.load(Ordering::Relaxed));
                bar.set_message(format!("{} rows, {} bad", *emitted + got, bad_count));
            }
            if let Some(batch) = read.batch {
                if !pace.wait_for(*emitted + got - 1, &cx.shutdown) {
                    finish_bar(bar);
                    return Ok((true, bad_count));
                }
                *emitted += got;
                if cx.output.blocking_send(batch).is_err() {
                    finish_bar(bar);
                    return Ok((true, bad_count));
                }
            }
            if read.at_end {
                break;
            }
        }
        if rows.repeated_headers > 0 {
            tracing::info!(
                "{}: skipped {} repeated header lines",
                self.label,
                rows.repeated_headers
            );
        }
        finish_bar(bar);
        Ok((false, bad_count))
    }

    /// Logs bad rows (the first few one by one), counts them as dropped, and empties `bad`.
    fn report_bad(&self, bad: &mut Vec<BadRow>, already: u64) -> u64 {
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
        self.metrics.add_dropped(n);
        bad.clear();
        n
    }
}

fn finish_bar(bar: Option<indicatif::ProgressBar>) {
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

/// When each row is due when replaying at a fixed rate.
struct Pace {
    started: Instant,
    rows_per_second: Option<f64>,
    batch_size: usize,
}

impl Pace {
    fn new(rate: Rate, batch_size: usize) -> Pace {
        Pace {
            started: Instant::now(),
            rows_per_second: match rate {
                Rate::Max => None,
                Rate::PerSecond(r) => Some(r),
            },
            batch_size,
        }
    }

    /// Rows per batch: a full batch flat out; about 20 batches a second when paced.
    fn rows_per_batch(&self) -> usize {
        match self.rows_per_second {
            None => self.batch_size,
            Some(r) => ((r / 20.0) as usize).clamp(1, self.batch_size),
        }
    }

    /// Sleeps until row `row` (0-based) is due. Returns false if a stop was requested meanwhile.
    fn wait_for(&self, row: u64, shutdown: &crate::stage::Shutdown) -> bool {
        let Some(rate) = self.rows_per_second else {
            return true;
        };
        let due = self.started + Duration::from_secs_f64(row as f64 / rate);
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
