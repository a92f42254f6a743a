//! Reads CSV rows into batches: detects the header, names the columns, and sets aside bad rows
//! (wrong number of fields, invalid UTF-8, cut over-long lines) with their line numbers.
//!
//! The parser (`csv-core`) writes each row's unescaped fields straight into the arena of the
//! batch being built, so a row's bytes are copied once. UTF-8 is checked once per batch over the
//! whole arena; only when that fails are rows checked one by one to find the bad ones.

use super::guard::GuardedInput;
use super::header::{self, HeaderMode};
use super::stamp::{Stamp, StampError};
use crate::record::{Batch, Millis, Schema, Value};
use std::io::{self, BufRead, Read};
use std::sync::Arc;

/// Bytes read from the file per refill.
const READ_BUFFER: usize = 256 * 1024;

/// Bytes copied to the parser at a time from a piece of a file already in memory.
const PIECE_READ_BUFFER: usize = 64 * 1024;

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
    /// Its fields as read, joined by the delimiter (invalid UTF-8 replaced): for its error
    /// record.
    pub text: String,
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
#[derive(Clone, Debug)]
struct Header {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// What the start of a file decided for the rest of it: the columns, and the header line (if the
/// file has one), so that a piece of the file read on its own skips repeated headers the same way.
#[derive(Clone, Debug)]
pub struct Layout {
    schema: Arc<Schema>,
    header: Option<Header>,
}

/// Why a read stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading the file failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The rows cannot be stamped at all (the time column is not a column).
    #[error(transparent)]
    Stamp(StampError),
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

    /// Reads a piece of a file that starts at the beginning of line `first_line`, with the
    /// columns and header the file's start decided (`layout`; without one, the piece decides
    /// them as a whole file would, minus the byte-order mark).
    pub fn continuing(
        input: R,
        options: ReadOptions,
        bytes_read: Arc<std::sync::atomic::AtomicU64>,
        layout: Option<Layout>,
        first_line: u64,
    ) -> Self {
        let input = GuardedInput::continuing(input, options.max_line_bytes, bytes_read, first_line);
        let parser = csv_core::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .quoting(options.quoting)
            .build();
        let (schema, header) = layout.map_or((None, None), |l| (Some(l.schema), l.header));
        CsvRows {
            input,
            parser,
            buffer: vec![0; PIECE_READ_BUFFER].into_boxed_slice(),
            buffer_start: 0,
            buffer_end: 0,
            input_done: false,
            consumed: 0,
            ends: vec![0; 64],
            options,
            schema,
            header,
            repeated_headers: 0,
        }
    }

    /// The columns and header decided so far (none before the first row).
    pub fn layout(&self) -> Option<Layout> {
        Some(Layout {
            schema: Arc::clone(self.schema.as_ref()?),
            header: self.header.clone(),
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

    /// Reads the next `max_rows` good rows (fewer only at the end of the input), as one batch;
    /// bad rows are appended to `bad` in line order.
    pub fn read_batch(
        &mut self,
        max_rows: usize,
        stamp: &mut impl Stamp,
        bad: &mut Vec<BadRow>,
    ) -> Result<ReadBatch, ReadError> {
        let mut parts = Vec::new();
        let mut have = 0;
        // Rows with invalid UTF-8 are found once the batch is read; the batch is then topped up,
        // so that batches end after the same good rows however the file is read.
        loop {
            let read = self.read_some(max_rows - have, stamp, bad)?;
            have += read.batch.as_ref().map_or(0, Batch::len);
            parts.extend(read.batch.filter(|b| !b.is_empty()));
            if read.at_end || have == max_rows {
                return Ok(ReadBatch {
                    batch: Batch::concat(parts),
                    at_end: read.at_end,
                });
            }
        }
    }

    /// Reads up to `max_rows` rows, some of which may turn out to have invalid UTF-8 and be set
    /// aside.
    fn read_some(
        &mut self,
        max_rows: usize,
        stamp: &mut impl Stamp,
        bad: &mut Vec<BadRow>,
    ) -> Result<ReadBatch, ReadError> {
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
                    text: joined(row, &self.ends[..fields], self.options.delimiter),
                }),
                Err(RowError::Fatal(error)) => {
                    return Err(ReadError::Stamp(error));
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
                    HeaderMode::Auto => header::looks_like_header(text, ends),
                };
                let schema = Arc::new(header::column_names(
                    self.options.columns.as_deref(),
                    text,
                    ends,
                    is_header,
                ));
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
            .map_err(|e| RowError::Bad(e.to_string()))
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
                    text: {
                        let ends: Vec<usize> = values[k * width..(k + 1) * width]
                            .iter()
                            .filter_map(|v| match *v {
                                Value::Str { start: at, len } => {
                                    Some(at as usize + len as usize - start)
                                }
                                _ => None,
                            })
                            .collect();
                        joined(&bytes[start..end], &ends, self.options.delimiter)
                    },
                }),
            }
        }
        Batch::from_utf8_parts(schema, text.into_bytes(), kept_values, kept_times)
    }
}

/// A row's fields (`row`, the field ending at each of `ends`) joined by `delimiter`, invalid
/// UTF-8 replaced.
fn joined(row: &[u8], ends: &[usize], delimiter: u8) -> String {
    let mut text = Vec::with_capacity(row.len() + ends.len());
    let mut from = 0;
    for (i, &end) in ends.iter().enumerate() {
        if i > 0 {
            text.push(delimiter);
        }
        text.extend_from_slice(row.get(from..end.min(row.len())).unwrap_or_default());
        from = end;
    }
    String::from_utf8_lossy(&text).into_owned()
}

enum RowVerdict {
    Keep(Millis),
    Skip,
}

enum RowError {
    /// The row is set aside with this reason.
    Bad(String),
    /// The read cannot go on.
    Fatal(StampError),
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

#[cfg(test)]
mod tests;
