//! Transform `lookup`: enriches each record with the columns of the row of a CSV table whose key
//! column equals one of the record's fields — a lookup join against a static table (province →
//! region, brand id → brand name), as Flink's lookup joins and Vector's enrichment tables do.
//!
//! The table is read whole when the stage is built (at start, and on a live reload that edits the
//! stage), and again when the file changes while the pipeline runs: every `watch` the stage looks
//! at the file's modification time and size, and once a change has held still for one look (so a
//! file being written is not read half-way) it reads the table again and swaps it in between two
//! batches. A table that does not read (a duplicate key, a missing column) or whose columns would
//! change the records' fields is refused with an error in the log, and the old one stays. Keys are compared as text: an integer field `7` finds
//! the row keyed `7`. A key that appears twice in the table is an error at start, naming both
//! lines. A record whose key is not in the table (or is null) keeps its fields and gets nulls
//! (`missing = "null"`, a left join), is left out (`"drop"`, an inner join), or is rejected to
//! `<id>.errors` and counted as invalid (`"error"`).

use crate::record::{Batch, BatchBuilder, FieldRef, Schema};
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, EditRefusal, FieldUse, OptionDoc,
    OptionIssue, Rejects, Stage, StageConfig, StageError, StageKind, StageMetrics, StageResult,
    Transform, adopt_stateless, can_adopt_stateless,
};
use crate::time::DurationSpec;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How often the table file is looked at when `watch` is not set.
const DEFAULT_WATCH: Duration = Duration::from_secs(2);

crate::stage_options! {
    /// Options of the `lookup` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct LookupConfig, documented in OPTIONS {
        path: PathBuf => OptionDoc::of("path", "required", "the table: a CSV file whose first line names its columns"),
        on: String => OptionDoc::of("string", "required", "the record field whose value is looked up"),
        key: Option<String> => OptionDoc::of("string", "the `on` field's name", "the table column it is matched against"),
        fields: Option<Vec<String>> => OptionDoc::of("[string]", "every column but the key", "the table columns added to the record, in this order (a record field of the same name is replaced)"),
        #[serde(default)]
        missing: Missing => OptionDoc::of("\"null\" | \"drop\" | \"error\"", "\"null\"", "a record whose key is not in the table: added fields are null (left join), the record is left out (inner join), or it goes to <id>.errors"),
        watch: Option<DurationSpec> => OptionDoc::of("duration", "\"2s\"", "how often to look whether the table file changed (read again once a change has held for one look); \"0s\": never"),
    }
}

/// What happens to a record whose key is not in the table.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// The added fields are null.
    #[default]
    Null,
    /// The record is left out.
    Drop,
    /// The record is rejected to `<id>.errors`.
    Error,
}

/// The `lookup` transform type.
pub fn factory() -> Builtin<LookupConfig> {
    Builtin::new(
        StageKind::Transform,
        "lookup",
        "Adds the columns of a CSV table's row whose key equals a record field (a lookup join)",
        OPTIONS,
    )
}

impl BuiltinConfig for LookupConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if self.on.is_empty() {
            issues.push(OptionIssue::new("on", "name the record field to look up"));
        }
        if let Some(fields) = &self.fields {
            let mut sorted: Vec<&String> = fields.iter().collect();
            sorted.sort();
            if let Some(twice) = sorted.windows(2).find(|w| w[0] == w[1]) {
                issues.push(OptionIssue::new(
                    "fields",
                    format!("`{}` is listed twice", twice[0]),
                ));
            }
        }
        issues
    }
}

impl LookupConfig {
    fn key_column(&self) -> &str {
        self.key.as_deref().unwrap_or(&self.on)
    }

    /// The columns added to the records, given the table's `header`.
    fn added(&self, header: &[String]) -> Vec<String> {
        added_columns(self.fields.as_deref(), self.key_column(), header)
    }
}

impl StageConfig for LookupConfig {
    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let mut names = crate::stage::union_of_fields(inputs)?;
        let added = match &self.fields {
            Some(fields) => fields.clone(),
            // Without `fields`, the table's header says (when the file can be read now).
            None => self.added(&read_header(&self.path).ok()?),
        };
        for name in added {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Some(names)
    }

    fn fields_read(&self) -> Vec<FieldUse> {
        vec![FieldUse {
            key: "on".into(),
            name: self.on.clone(),
            at: 0,
            input: None,
        }]
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let stamp = FileStamp::of(&self.path);
        let table = Table::read(&self.path, self.key_column(), self.fields.as_deref())?;
        let added = self.added(&table.header);
        let watch = self.watch.map_or(DEFAULT_WATCH, |w| w.0);
        Ok(Stage::Transform(Box::new(Lookup {
            on: self.on.clone(),
            key: self.key_column().to_string(),
            table,
            added,
            source: TableFile {
                path: self.path.clone(),
                fields: self.fields.clone(),
                watch: (!watch.is_zero()).then_some(watch),
                read: stamp,
                changing: None,
                label: cx.path.clone(),
            },
            missing: self.missing,
            rejects: cx.rejects.clone(),
            metrics: Arc::clone(&cx.metrics),
            plan: None,
            key_text: String::new(),
        })))
    }
}

/// The columns a table with `header` adds: `fields`, or every column but the `key` column.
fn added_columns(fields: Option<&[String]>, key: &str, header: &[String]) -> Vec<String> {
    match fields {
        Some(fields) => fields.to_vec(),
        None => header.iter().filter(|c| *c != key).cloned().collect(),
    }
}

/// The first line of the CSV file at `path`: its column names.
fn read_header(path: &Path) -> Result<Vec<String>, StageError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| table_error(path, e))?;
    let header = reader.headers().map_err(|e| table_error(path, e))?;
    Ok(header.iter().map(str::to_string).collect())
}

fn table_error(path: &Path, e: csv::Error) -> StageError {
    StageError::Input(format!("lookup table {}: {e}", path.display()))
}

/// A table read into memory: the added columns' values of each row, by key.
struct Table {
    header: Vec<String>,
    /// Row number (in `values`) by key.
    rows: HashMap<Box<str>, usize>,
    /// The added columns of each row, `columns.len()` values per row.
    values: Vec<Box<str>>,
    /// How many columns each row holds in `values`.
    width: usize,
}

impl Table {
    /// Reads the table at `path`, keyed by column `key`, keeping columns `fields` (or every column
    /// but the key).
    fn read(path: &Path, key: &str, fields: Option<&[String]>) -> Result<Table, StageError> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| table_error(path, e))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| table_error(path, e))?
            .iter()
            .map(str::to_string)
            .collect();
        let position = |name: &str| {
            header.iter().position(|c| c == name).ok_or_else(|| {
                StageError::Input(format!(
                    "lookup table {}: no column `{name}` (its columns: {})",
                    path.display(),
                    header.join(", ")
                ))
            })
        };
        let key_at = position(key)?;
        let kept: Vec<usize> = match fields {
            Some(fields) => fields
                .iter()
                .map(|f| position(f))
                .collect::<Result<_, _>>()?,
            None => (0..header.len()).filter(|&i| i != key_at).collect(),
        };
        let mut rows: HashMap<Box<str>, usize> = HashMap::new();
        let mut lines: Vec<u64> = Vec::new();
        let mut values = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| table_error(path, e))?;
            let line = record.position().map_or(0, |p| p.line());
            let key = record.get(key_at).unwrap_or_default();
            if let Some(&first) = rows.get(key) {
                return Err(StageError::Input(format!(
                    "lookup table {}: key `{key}` is on line {} and again on line {line}; a key \
                     must name one row",
                    path.display(),
                    lines[first]
                )));
            }
            rows.insert(key.into(), lines.len());
            lines.push(line);
            values.extend(
                kept.iter()
                    .map(|&i| Box::from(record.get(i).unwrap_or_default())),
            );
        }
        Ok(Table {
            header,
            rows,
            values,
            width: kept.len(),
        })
    }

    /// The added values of the row keyed `key`.
    fn row(&self, key: &str) -> Option<&[Box<str>]> {
        let at = *self.rows.get(key)?;
        Some(&self.values[at * self.width..(at + 1) * self.width])
    }
}

/// When a file was last modified, and its size: a change to either is a change of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl FileStamp {
    /// The file's stamp now; `None` when it cannot be looked at (gone, no permission).
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        })
    }
}

/// The table's file, watched for changes.
struct TableFile {
    path: PathBuf,
    fields: Option<Vec<String>>,
    /// How often to look; `None`: never.
    watch: Option<Duration>,
    /// The stamp of the file as last read (or refused).
    read: Option<FileStamp>,
    /// A stamp seen that differs from `read`, waiting to hold still for one look.
    changing: Option<FileStamp>,
    label: String,
}

struct Lookup {
    on: String,
    /// The table column matched.
    key: String,
    table: Table,
    added: Vec<String>,
    source: TableFile,
    missing: Missing,
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
    plan: Option<Plan>,
    /// The text of a non-text key, reused from record to record.
    key_text: String,
}

/// For one input schema: the output schema, where each output field comes from, and where the
/// key is.
struct Plan {
    input: Arc<Schema>,
    output: Arc<Schema>,
    sources: Vec<Source>,
    key: Option<usize>,
}

/// Where an output field comes from.
#[derive(Clone, Copy)]
enum Source {
    Input(usize),
    Table(usize),
}

impl Lookup {
    /// Looks at the table file; reads it again once a change has held still since the last look.
    fn look_at_the_file(&mut self) {
        let now = FileStamp::of(&self.source.path);
        if now.is_none() || now == self.source.read {
            self.source.changing = None;
            return;
        }
        if self.source.changing != now {
            // Changed since the last look: it may still be being written.
            self.source.changing = now;
            return;
        }
        self.source.changing = None;
        self.source.read = now;
        let path = &self.source.path;
        let table = match Table::read(path, &self.key, self.source.fields.as_deref()) {
            Ok(table) => table,
            Err(e) => {
                tracing::error!(
                    "{}: the changed table is not used, the one read before stays: {e}",
                    self.source.label
                );
                return;
            }
        };
        let added = added_columns(self.source.fields.as_deref(), &self.key, &table.header);
        if added != self.added {
            tracing::error!(
                "{}: the changed table {} adds the columns {} where the records got {}; it is not \
                 used (the records' fields would change under the stages after this one): \
                 restart, or set `fields`",
                self.source.label,
                path.display(),
                added.join(", "),
                self.added.join(", ")
            );
            return;
        }
        tracing::info!(
            "{}: table {} read again: {} rows",
            self.source.label,
            path.display(),
            table.rows.len()
        );
        self.table = table;
    }

    fn plan_for(&self, input: &Arc<Schema>) -> Plan {
        let mut names: Vec<String> = input.names().map(str::to_string).collect();
        let mut sources: Vec<Source> = (0..names.len()).map(Source::Input).collect();
        for (column, name) in self.added.iter().enumerate() {
            match names.iter().position(|n| n == name) {
                Some(at) => sources[at] = Source::Table(column),
                None => {
                    names.push(name.clone());
                    sources.push(Source::Table(column));
                }
            }
        }
        Plan {
            input: Arc::clone(input),
            output: Arc::new(Schema::new(names.iter().map(String::as_str))),
            sources,
            key: input.index_of(&self.on),
        }
    }
}

impl Transform for Lookup {
    // Holds nothing between batches but the table, which an edit re-reads.
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), EditRefusal> {
        can_adopt_stateless::<Self>(edited)
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        adopt_stateless(self, edited);
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.source.watch
    }

    fn tick(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        self.look_at_the_file();
        Ok(())
    }

    fn process(&mut self, mut batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        if !matches!(&self.plan, Some(p) if Arc::ptr_eq(&p.input, batch.schema())) {
            self.plan = Some(self.plan_for(batch.schema()));
        }
        let Some(plan) = self.plan.as_ref() else {
            return Ok(());
        };
        let mut builder = BatchBuilder::with_capacity(Arc::clone(&plan.output), batch.len());
        let mut unmatched: Vec<(usize, String)> = Vec::new();
        for (index, row) in batch.rows().enumerate() {
            let key = match plan.key.map(|k| row.get(k)) {
                Some(FieldRef::Str(s)) => Some(s),
                Some(FieldRef::Int(n)) => {
                    self.key_text.clear();
                    let _ = write!(self.key_text, "{n}");
                    Some(self.key_text.as_str())
                }
                Some(FieldRef::Float(x)) => {
                    self.key_text.clear();
                    let _ = write!(self.key_text, "{x}");
                    Some(self.key_text.as_str())
                }
                Some(FieldRef::Bool(b)) => Some(if b { "true" } else { "false" }),
                Some(FieldRef::Null) | None => None,
            };
            let found = key.and_then(|k| self.table.row(k));
            if found.is_none() {
                match self.missing {
                    Missing::Null => {}
                    Missing::Drop => continue,
                    Missing::Error => {
                        let reason = match key {
                            Some(k) => {
                                format!("lookup: no row with {} = `{k}` in the table", self.key)
                            }
                            None => format!("lookup: the record has no `{}`", self.on),
                        };
                        unmatched.push((index, reason));
                        continue;
                    }
                }
            }
            for source in &plan.sources {
                builder.push(match *source {
                    Source::Input(i) => row.get(i),
                    Source::Table(column) => {
                        found.map_or(FieldRef::Null, |values| FieldRef::Str(&values[column]))
                    }
                });
            }
            builder.end_row(row.event_time());
        }
        if !unmatched.is_empty() {
            self.metrics
                .add_dropped(DropReason::Invalid, unmatched.len() as u64);
            let rows: Vec<(usize, &str)> =
                unmatched.iter().map(|(i, r)| (*i, r.as_str())).collect();
            self.rejects.reject_rows(&batch, &rows);
        }
        let enriched = builder.build().with_acks(batch.take_acks());
        if !enriched.is_empty() {
            out.push(enriched);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
