//! Reads CSV rows into batches: detects the header, names the columns, and sets aside bad rows
//! (wrong number of fields, invalid UTF-8, cut over-long lines) with their line numbers.
//!
//! The parser (`csv-core`) writes each row's unescaped fields straight into the arena of the
//! batch being built, so a row's bytes are copied once. UTF-8 is checked once per batch over the
//! whole arena; only when that fails are rows checked one by one to find the bad ones.

use super::guard::GuardedInput;
use crate::record::{Batch, Millis, Schema, Value};
use std::io::{self, BufRead, Read};
use std::sync::Arc;

/// The user_log.csv columns, used for header-less files whose rows have 11 fields.
pub const USER_LOG_COLUMNS: [&str; 11] = [
    "user_id",
    "item_id",
    "cat_id",
    "merchant_id",
    "brand_id",
    "month",
    "day",
    "action",
    "age_range",
    "gender",
    "province",
];

/// Bytes read from the file per refill.
const READ_BUFFER: usize = 256 * 1024;

/// Whether the first row is a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMode {
    /// Decide from the first row: a header has only non-empty, distinct, non-numeric fields.
    Auto,
    /// The first row is a header.
    Present,
    /// There is no header.
    Absent,
}

/// How to read the file.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Header handling.
    pub header: HeaderMode,
    /// Column names that override the header or name a header-less file.
    pub columns: Option<Vec<String>>,
    /// Field separator.
    pub delimiter: u8,
    /// Whether `"` quotes fields.
    pub quoting: bool,
    /// Longest physical line accepted, in bytes.
    pub max_line_bytes: u64,
}

/// A row that was set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line where the row starts.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// Assigns a row its event time, or says why it cannot.
pub trait Stamp {
    /// Called once the columns are known; an error here stops the read.
    fn on_schema(&mut self, _schema: &Schema) -> Result<(), String> {
        Ok(())
    }

    /// The event time of a good row; `field` reads field `i` of the row.
    fn stamp<'r>(&mut self, field: &dyn Fn(usize) -> &'r str) -> Result<Millis, String>;
}

/// A byte buffer that stays initialized up to its length, so the parser can write into its spare
/// part; `used` bytes hold data.
struct Arena {
    bytes: Vec<u8>,
    used: usize,
}

impl Arena {
    fn with_capacity(bytes: usize) -> Arena {
        Arena {
            bytes: vec![0; bytes.max(256)],
            used: 0,
        }
    }

    /// The unused part, grown when it is small.
    fn spare(&mut self) -> &mut [u8] {
        if self.bytes.len() - self.used < 256 {
            let grow = self.bytes.len().max(4096);
            self.bytes.resize(self.bytes.len() + grow, 0);
        }
        &mut self.bytes[self.used..]
    }

    fn data(&self) -> &[u8] {
        &self.bytes[..self.used]
    }

    fn into_vec(mut self) -> Vec<u8> {
        self.bytes.truncate(self.used);
        self.bytes
    }
}

/// The header row as read: its bytes and field ends.
struct Header {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// A CSV file being read.
pub struct CsvRows<R> {
    input: GuardedInput<R>,
    parser: csv_core::Reader,
    buffer: Box<[u8]>,
    buffer_start: usize,
    buffer_end: usize,
    input_done: bool,
    /// Bytes of the guarded input the parser has consumed.
    consumed: u64,
    ends: Vec<usize>,
    options: ReadOptions,
    schema: Option<Arc<Schema>>,
    header: Option<Header>,
    /// Repeated header lines skipped so far.
    pub repeated_headers: u64,
}

/// One batch read from the file.
pub struct ReadBatch {
    /// The good rows, if any.
    pub batch: Option<Batch>,
    /// True when the file has no more rows.
    pub at_end: bool,
}

impl<R: BufRead> CsvRows<R> {
    /// Starts reading `input`; `bytes_read` tracks progress through it.
    pub fn new(
        input: R,
        options: ReadOptions,
        bytes_read: Arc<std::sync::atomic::AtomicU64>,
    ) -> io::Result<Self> {
        let input = GuardedInput::new(input, options.max_line_bytes, bytes_read)?;
        let parser = csv_core::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .quoting(options.quoting)
            .build();
        Ok(CsvRows {
            input,
            parser,
            buffer: vec![0; READ_BUFFER].into_boxed_slice(),
            buffer_start: 0,
            buffer_end: 0,
            input_done: false,
            consumed: 0,
            ends: vec![0; 64],
            options,
            schema: None,
            header: None,
            repeated_headers: 0,
        })
    }

    /// Parses the next record into `arena`. Returns its number of fields (their ends, relative to
    /// the record's start, are in `self.ends`), or `None` at the end of the input.
    fn next_record(&mut self, arena: &mut Arena) -> io::Result<Option<usize>> {
        let mut fields = 0;
        loop {
            if self.buffer_start == self.buffer_end && !self.input_done {
                self.buffer_start = 0;
                self.buffer_end = self.input.read(&mut self.buffer)?;
                self.input_done = self.buffer_end == 0;
            }
            let input = &self.buffer[self.buffer_start..self.buffer_end];
            let (result, read, written, ended) =
                self.parser
                    .read_record(input, arena.spare(), &mut self.ends[fields..]);
            self.buffer_start += read;
            self.consumed += read as u64;
            arena.used += written;
            fields += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty | csv_core::ReadRecordResult::OutputFull => {
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let more = self.ends.len();
                    self.ends.resize(self.ends.len() + more, 0);
                }
                csv_core::ReadRecordResult::Record => return Ok(Some(fields)),
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Reads up to `max_rows` rows. Good rows come back as one batch; bad rows are appended to
    /// `bad` in line order.
    pub fn read_batch(
        &mut self,
        max_rows: usize,
        stamp: &mut impl Stamp,
        bad: &mut Vec<BadRow>,
    ) -> io::Result<ReadBatch> {
        let width_guess = self.schema.as_ref().map_or(16, |s| s.len());
        let mut arena = Arena::with_capacity(max_rows * 48);
        let mut values: Vec<Value> = Vec::with_capacity(max_rows * width_guess);
        let mut times: Vec<Millis> = Vec::with_capacity(max_rows);
        let mut rows: Vec<(usize, u64)> = Vec::with_capacity(max_rows); // (arena start, line)
        let first_bad = bad.len();
        let mut at_end = false;
        while rows.len() < max_rows {
            let start = arena.used;
            let Some(fields) = self.next_record(&mut arena)? else {
                at_end = true;
                break;
            };
            let row = &arena.data()[start..];
            let last_line = self.input.line_at(self.consumed.saturating_sub(1));
            let line = || first_line(row, last_line);
            let verdict = self.check_row(row, fields, last_line, stamp);
            match verdict {
                Ok(RowVerdict::Keep(time)) => {
                    let ends = &self.ends[..fields];
                    values.extend(ends.iter().enumerate().map(|(i, &end)| {
                        let field_start = if i == 0 { 0 } else { ends[i - 1] };
                        Value::Str {
                            start: (start + field_start) as u32,
                            len: (end - field_start) as u32,
                        }
                    }));
                    times.push(time);
                    rows.push((start, last_line));
                    continue;
                }
                Ok(RowVerdict::Skip) => {}
                Err(RowError::Bad(reason)) => bad.push(BadRow {
                    line: line(),
                    reason,
                }),
                Err(RowError::Fatal(message)) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, message));
                }
            }
            arena.used = start; // drop the row's bytes
        }
        let batch = self.finish_batch(arena, values, times, &rows, bad);
        bad[first_bad..].sort_by_key(|b| b.line);
        Ok(ReadBatch { batch, at_end })
    }

    /// Decides what to do with one parsed row that ends on line `last_line`.
    fn check_row(
        &mut self,
        row: &[u8],
        fields: usize,
        last_line: u64,
        stamp: &mut impl Stamp,
    ) -> Result<RowVerdict, RowError> {
        if self.input.has_cut_lines()
            && self
                .input
                .take_cut_lines_before(first_line(row, last_line), last_line + 1)
        {
            return Err(RowError::Bad(format!(
                "line longer than max_line_bytes ({} bytes)",
                self.options.max_line_bytes
            )));
        }
        if fields == 1 && row.is_empty() {
            return Ok(RowVerdict::Skip); // a blank line
        }
        let ends = &self.ends[..fields];
        let width = match &self.schema {
            Some(schema) => schema.len(),
            None => {
                // The first row decides the columns, so it is checked on its own.
                let text = std::str::from_utf8(row).map_err(|e| RowError::Bad(utf8_reason(e)))?;
                let is_header = match self.options.header {
                    HeaderMode::Present => true,
                    HeaderMode::Absent => false,
                    HeaderMode::Auto => looks_like_header(text, ends),
                };
                let schema = Arc::new(self.name_columns(text, ends, is_header));
                stamp.on_schema(&schema).map_err(RowError::Fatal)?;
                let width = schema.len();
                self.schema = Some(schema);
                if is_header {
                    self.header = Some(Header {
                        bytes: row.to_vec(),
                        ends: ends.to_vec(),
                    });
                    return Ok(RowVerdict::Skip);
                }
                width
            }
        };
        if self
            .header
            .as_ref()
            .is_some_and(|h| h.bytes == row && h.ends == ends)
        {
            self.repeated_headers += 1;
            return Ok(RowVerdict::Skip);
        }
        if fields != width {
            return Err(RowError::Bad(format!(
                "expected {width} fields, found {fields}"
            )));
        }
        let field = |i: usize| {
            let start = if i == 0 { 0 } else { ends[i - 1] };
            std::str::from_utf8(&row[start..ends[i]]).unwrap_or_default()
        };
        stamp
            .stamp(&field)
            .map(RowVerdict::Keep)
            .map_err(RowError::Bad)
    }

    /// Validates the batch's text in one pass and builds the batch; when that fails, finds the
    /// rows with invalid UTF-8, reports them and keeps the rest.
    fn finish_batch(
        &self,
        arena: Arena,
        values: Vec<Value>,
        times: Vec<Millis>,
        rows: &[(usize, u64)],
        bad: &mut Vec<BadRow>,
    ) -> Option<Batch> {
        let schema = Arc::clone(self.schema.as_ref()?);
        if rows.is_empty() {
            return None;
        }
        let bytes = arena.into_vec();
        // Valid as a whole and every row starting on a character boundary means every row is
        // valid on its own.
        let valid = simdutf8::basic::from_utf8(&bytes).is_ok()
            && rows
                .iter()
                .all(|&(start, _)| bytes.get(start).is_none_or(|&b| (b as i8) >= -0x40));
        Some(if valid {
            Batch::from_utf8_parts(schema, bytes, values, times)
        } else {
            self.drop_invalid_rows(schema, bytes, values, times, rows, bad)
        })
    }

    /// Rebuilds a batch without its invalid rows (the slow path; rows are checked one by one).
    fn drop_invalid_rows(
        &self,
        schema: Arc<Schema>,
        bytes: Vec<u8>,
        values: Vec<Value>,
        times: Vec<Millis>,
        rows: &[(usize, u64)],
        bad: &mut Vec<BadRow>,
    ) -> Batch {
        let width = schema.len();
        let mut text = String::with_capacity(bytes.len());
        let mut kept_values = Vec::with_capacity(values.len());
        let mut kept_times = Vec::with_capacity(times.len());
        for (k, &(start, last_line)) in rows.iter().enumerate() {
            let end = rows.get(k + 1).map_or(bytes.len(), |&(next, _)| next);
            match std::str::from_utf8(&bytes[start..end]) {
                Ok(row) => {
                    let shift = text.len() as i64 - start as i64;
                    text.push_str(row);
                    kept_values.extend(values[k * width..(k + 1) * width].iter().map(
                        |v| match *v {
                            Value::Str { start, len } => Value::Str {
                                start: (start as i64 + shift) as u32,
                                len,
                            },
                            other => other,
                        },
                    ));
                    kept_times.push(times[k]);
                }
                Err(e) => bad.push(BadRow {
                    line: first_line(&bytes[start..end], last_line),
                    reason: utf8_reason(e),
                }),
            }
        }
        Batch::from_utf8_parts(schema, text.into_bytes(), kept_values, kept_times)
    }

    fn name_columns(&self, text: &str, ends: &[usize], is_header: bool) -> Schema {
        if let Some(columns) = &self.options.columns {
            return Schema::new(columns);
        }
        if is_header {
            return Schema::new(fields(text, ends).map(str::trim));
        }
        if ends.len() == USER_LOG_COLUMNS.len() {
            return Schema::new(USER_LOG_COLUMNS);
        }
        Schema::new((1..=ends.len()).map(|i| format!("field_{i}")))
    }
}

enum RowVerdict {
    Keep(Millis),
    Skip,
}

enum RowError {
    Bad(String),
    Fatal(String),
}

/// The line a row starts on, given the line it ends on. The parser's record boundaries can sit on
/// skipped terminators (a CRLF's `\n`, blank lines), but the byte before the next record is
/// always this record's last content byte or its first terminator byte, so lines are counted
/// from the end, back over newlines inside quoted fields.
fn first_line(row: &[u8], last_line: u64) -> u64 {
    let embedded = memchr::memchr_iter(b'\n', row).count() as u64;
    last_line.saturating_sub(embedded).max(1)
}

fn utf8_reason(e: std::str::Utf8Error) -> String {
    format!(
        "invalid UTF-8 (byte {} of the row's text); if the file is GBK-encoded, convert it with `iconv -f GBK -t UTF-8`",
        e.valid_up_to() + 1
    )
}

/// The fields of a row given its text and field ends.
fn fields<'t>(text: &'t str, ends: &'t [usize]) -> impl Iterator<Item = &'t str> + 't {
    ends.iter().enumerate().map(move |(i, &end)| {
        let start = if i == 0 { 0 } else { ends[i - 1] };
        text.get(start..end).unwrap_or_default()
    })
}

/// A header row has only non-empty, distinct fields that do not parse as numbers.
fn looks_like_header(text: &str, ends: &[usize]) -> bool {
    let names: Vec<&str> = fields(text, ends).map(str::trim).collect();
    let all_names = names
        .iter()
        .all(|f| !f.is_empty() && f.parse::<f64>().is_err());
    let distinct = names
        .iter()
        .enumerate()
        .all(|(i, f)| !names[..i].contains(f));
    all_names && distinct
}

#[cfg(test)]
#[path = "rows_tests.rs"]
mod tests;
