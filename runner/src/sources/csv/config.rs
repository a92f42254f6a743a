//! The `csv` source's options: the config struct, its documentation for `weir list`, the
//! value types it accepts (`"auto"` switches, `rate = "max"`) and the checks between options.

use crate::stage::{Builtin, BuiltinConfig, OptionDoc, OptionIssue, StageKind};
use crate::time::{DurationSpec, TimePoint};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;
use std::path::PathBuf;

crate::stage_options! {
    /// Options of the `csv` source.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CsvConfig, documented in OPTIONS {
        path: PathBuf => OptionDoc::of("string", "required", "CSV file to read (relative to the current directory)"),
        #[serde(default)]
        rate: Rate => OptionDoc::of("number | \"max\"", "\"max\"", "rows per second to replay at, or as fast as possible"),
        event_rate: Option<f64> => OptionDoc::of("number", "rate, or 1000 when rate is \"max\"", "rows per second of event time: row n is stamped start_time + n/event_rate"),
        start_time: Option<TimePoint> => OptionDoc::of("epoch ms | RFC 3339", "now, rounded down to the second (a resumed run: the earlier run's)", "event time of the first row"),
        timestamp_field: Option<String> => OptionDoc::of("string", "none", "take each row's event time from this column instead (integer)"),
        #[serde(default)]
        timestamp_unit: TimeUnit => OptionDoc::of("\"ms\" | \"s\"", "\"ms\"", "unit of timestamp_field"),
        #[serde(default = "default_future_tolerance")]
        future_tolerance: DurationSpec => OptionDoc::of("duration", "\"1h\"", "a timestamp_field more than this past the wall clock makes the row bad (dropped, counted, logged) instead of moving the watermark"),
        #[serde(default)]
        header: AutoBool => OptionDoc::of("bool | \"auto\"", "\"auto\"", "whether the first row names the columns (auto: it does if its fields are non-empty, distinct and not numbers)"),
        columns: Option<Vec<String>> => OptionDoc::of("[string]", "the header, else field_1..N", "column names"),
        #[serde(default = "default_delimiter")]
        delimiter: String => OptionDoc::of("string (1 byte)", "\",\"", "field separator"),
        #[serde(default = "default_true")]
        quoting: bool => OptionDoc::of("bool", "true", "whether \" quotes fields"),
        #[serde(default)]
        r#loop: bool => OptionDoc::of("bool", "false", "start over at the end of the file (event time keeps advancing)"),
        #[serde(default = "default_max_line_bytes")]
        max_line_bytes: u64 => OptionDoc::of("integer", "1048576", "longer lines are reported as bad rows"),
        #[serde(default = "default_batch_size")]
        batch_size: usize => OptionDoc::of("integer", "2048", "most rows per batch"),
        parallelism: Option<usize> => OptionDoc::of("integer", "cores - 1", "threads parsing the file when rate = \"max\" (rows keep their order; 1: one thread)"),
        #[serde(default)]
        progress: AutoBool => OptionDoc::of("bool | \"auto\"", "\"auto\"", "progress bar on stderr (auto: when stderr is a terminal)"),
    }
}

fn default_future_tolerance() -> DurationSpec {
    DurationSpec(crate::time::DEFAULT_FUTURE_TOLERANCE)
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
        if self.parallelism.is_some_and(|n| !(1..=256).contains(&n)) {
            issues.push(OptionIssue::new(
                "parallelism",
                format!(
                    "parallelism must be between 1 and 256, found {}",
                    self.parallelism.unwrap_or_default()
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
