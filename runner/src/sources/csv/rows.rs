//! Reads CSV rows into batches: detects the header, names the columns, and sets aside bad rows
//! (wrong number of fields, invalid UTF-8, cut over-long lines) with their line numbers.

use super::guard::GuardedInput;
use crate::record::{BatchBuilder, Millis, Schema};
use std::io::{self, BufRead};
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

/// A CSV file being read.
pub struct CsvRows<R> {
    reader: csv::Reader<GuardedInput<R>>,
    record: csv::ByteRecord,
    options: ReadOptions,
    schema: Option<Arc<Schema>>,
    header: Option<csv::ByteRecord>,
    /// Repeated header lines skipped so far.
    pub repeated_headers: u64,
}

impl<R: BufRead> CsvRows<R> {
    /// Starts reading `input`; `bytes_read` tracks progress through it.
    pub fn new(
        input: R,
        options: ReadOptions,
        bytes_read: Arc<std::sync::atomic::AtomicU64>,
    ) -> io::Result<Self> {
        let guarded = GuardedInput::new(input, options.max_line_bytes, bytes_read)?;
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter)
            .quoting(options.quoting)
            .buffer_capacity(256 * 1024)
            .from_reader(guarded);
        Ok(CsvRows {
            reader,
            record: csv::ByteRecord::new(),
            options,
            schema: None,
            header: None,
            repeated_headers: 0,
        })
    }

    /// Reads up to `max_rows` good rows into `out` (a builder is created once the schema is
    /// known), appending bad rows to `bad`. Returns the number of good rows read; fewer than
    /// `max_rows` means the end of the file.
    pub fn read_rows(
        &mut self,
        out: &mut Option<BatchBuilder>,
        max_rows: usize,
        stamp: &mut impl Stamp,
        bad: &mut Vec<BadRow>,
    ) -> io::Result<usize> {
        let mut good = 0;
        while good < max_rows {
            if !self.reader.read_byte_record(&mut self.record)? {
                break;
            }
            // The reader's record offsets can sit on skipped terminators (a CRLF's `\n`, blank
            // lines), but the byte before the next record is always this record's last content
            // byte or its first terminator byte; count back over newlines inside quoted fields.
            let end = self.reader.position().byte().saturating_sub(1);
            let guard = self.reader.get_mut();
            let last_line = guard.line_at(end);
            let embedded = memchr::memchr_iter(b'\n', self.record.as_slice()).count() as u64;
            let line = last_line.saturating_sub(embedded).max(1);
            let cut = guard.take_cut_lines_before(line, last_line + 1);
            let text = match std::str::from_utf8(self.record.as_slice()) {
                Ok(text) if !cut => text,
                Ok(_) => {
                    bad.push(BadRow {
                        line,
                        reason: format!(
                            "line longer than max_line_bytes ({} bytes)",
                            self.options.max_line_bytes
                        ),
                    });
                    continue;
                }
                Err(e) => {
                    bad.push(BadRow {
                        line,
                        reason: format!(
                            "invalid UTF-8 (byte {} of the row's text); if the file is GBK-encoded, convert it with `iconv -f GBK -t UTF-8`",
                            e.valid_up_to() + 1
                        ),
                    });
                    continue;
                }
            };
            if self.record.len() == 1 && text.is_empty() {
                continue; // a blank line
            }
            let width = match &self.schema {
                Some(schema) => schema.len(),
                None => {
                    let is_header = self.detect_header(text);
                    let schema = Arc::new(self.name_columns(is_header.then_some(text)));
                    stamp
                        .on_schema(&schema)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let width = schema.len();
                    self.schema = Some(schema);
                    if is_header {
                        self.header = Some(self.record.clone());
                        continue;
                    }
                    width
                }
            };
            if self.header.as_ref().is_some_and(|h| {
                h.len() == self.record.len() && h.as_slice() == self.record.as_slice()
            }) {
                self.repeated_headers += 1;
                continue;
            }
            if self.record.len() != width {
                bad.push(BadRow {
                    line,
                    reason: format!("expected {width} fields, found {}", self.record.len()),
                });
                continue;
            }
            let record = &self.record;
            let field = |i: usize| record.range(i).map_or("", |r| &text[r]);
            let time = match stamp.stamp(&field) {
                Ok(t) => t,
                Err(reason) => {
                    bad.push(BadRow { line, reason });
                    continue;
                }
            };
            let schema = &self.schema;
            let builder = out.get_or_insert_with(|| {
                let schema = Arc::clone(schema.as_ref().expect("set with the first row"));
                BatchBuilder::with_capacity(schema, max_rows)
            });
            // Fields are sub-slices of the record's text; their offsets are pointer differences.
            let base = text.as_ptr() as usize;
            let fields = record.iter().map(|f| {
                let start = f.as_ptr() as usize - base;
                start..start + f.len()
            });
            builder.push_str_row(text, fields, time);
            good += 1;
        }
        Ok(good)
    }

    fn detect_header(&self, _text: &str) -> bool {
        match self.options.header {
            HeaderMode::Present => true,
            HeaderMode::Absent => false,
            HeaderMode::Auto => looks_like_header(&self.record),
        }
    }

    fn name_columns(&self, header_text: Option<&str>) -> Schema {
        if let Some(columns) = &self.options.columns {
            return Schema::new(columns);
        }
        if let Some(text) = header_text {
            let names =
                (0..self.record.len()).map(|i| self.record.range(i).map_or("", |r| text[r].trim()));
            return Schema::new(names);
        }
        if self.record.len() == USER_LOG_COLUMNS.len() {
            return Schema::new(USER_LOG_COLUMNS);
        }
        Schema::new((1..=self.record.len()).map(|i| format!("field_{i}")))
    }
}

/// A header row has only non-empty, distinct fields that do not parse as numbers.
fn looks_like_header(record: &csv::ByteRecord) -> bool {
    let fields: Vec<&[u8]> = record.iter().collect();
    let all_names = fields.iter().all(|f| {
        let f = std::str::from_utf8(f).unwrap_or("").trim();
        !f.is_empty() && f.parse::<f64>().is_err()
    });
    let distinct = fields
        .iter()
        .enumerate()
        .all(|(i, f)| !fields[..i].contains(f));
    all_names && distinct
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Batch, FieldRef};

    struct Counter(i64);
    impl Stamp for Counter {
        fn stamp<'r>(&mut self, _field: &dyn Fn(usize) -> &'r str) -> Result<Millis, String> {
            self.0 += 1;
            Ok(self.0)
        }
    }

    fn options(header: HeaderMode) -> ReadOptions {
        ReadOptions {
            header,
            columns: None,
            delimiter: b',',
            quoting: true,
            max_line_bytes: 64,
        }
    }

    fn read_all(input: &[u8], options: ReadOptions) -> (Option<Batch>, Vec<BadRow>, u64) {
        let mut rows = CsvRows::new(input, options, Arc::default()).unwrap();
        let mut out = None;
        let mut bad = Vec::new();
        rows.read_rows(&mut out, 1000, &mut Counter(0), &mut bad)
            .unwrap();
        (out.map(BatchBuilder::build), bad, rows.repeated_headers)
    }

    fn column(batch: &Batch, name: &str) -> Vec<String> {
        let i = batch.schema().index_of(name).unwrap();
        batch
            .rows()
            .map(|r| match r.get(i) {
                FieldRef::Str(s) => s.to_string(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn header_with_bom_and_crlf_is_detected() {
        let (batch, bad, _) = read_all(
            b"\xEF\xBB\xBFname,n\r\nx,1\r\ny,2",
            options(HeaderMode::Auto),
        );
        let batch = batch.unwrap();
        assert!(bad.is_empty());
        assert_eq!(batch.schema().names().collect::<Vec<_>>(), ["name", "n"]);
        assert_eq!(column(&batch, "name"), ["x", "y"]);
        assert_eq!(column(&batch, "n"), ["1", "2"]);
    }

    #[test]
    fn headerless_user_log_gets_the_standard_columns() {
        let row = "328862,406349,1280,2700,5476,11,11,0,0,1,四川\n";
        let (batch, _, _) = read_all(row.repeat(3).as_bytes(), options(HeaderMode::Auto));
        let batch = batch.unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(column(&batch, "gender"), ["1", "1", "1"]);
        assert_eq!(column(&batch, "province"), ["四川", "四川", "四川"]);
    }

    #[test]
    fn other_headerless_files_get_numbered_columns() {
        let (batch, _, _) = read_all(b"1,2\n3,4\n", options(HeaderMode::Auto));
        assert_eq!(
            batch.unwrap().schema().names().collect::<Vec<_>>(),
            ["field_1", "field_2"]
        );
        let (batch, _, _) = read_all(b"a,b\nc,d\n", options(HeaderMode::Absent));
        assert_eq!(batch.unwrap().len(), 2);
    }

    #[test]
    fn bad_rows_are_set_aside_with_line_numbers() {
        let long = "z".repeat(100);
        let input = format!("a,b\n1,2\n1,2,3\n\u{FF}\n{long},1\n3,\"4\"\n\n5,6");
        let mut bytes = input.into_bytes();
        // Replace the placeholder with a GBK byte pair (not UTF-8).
        let at = bytes
            .windows(2)
            .position(|w| w == "\u{FF}".as_bytes())
            .unwrap();
        bytes.splice(at..at + 2, [0xC4, 0xE3, b',', b'x']);
        let (batch, bad, _) = read_all(&bytes, options(HeaderMode::Auto));
        let batch = batch.unwrap();
        assert_eq!(column(&batch, "a"), ["1", "3", "5"]);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(
            bad[0],
            BadRow {
                line: 3,
                reason: "expected 2 fields, found 3".into()
            }
        );
        assert_eq!(bad[1].line, 4);
        assert!(bad[1].reason.contains("invalid UTF-8"));
        assert_eq!(bad[2].line, 5);
        assert!(bad[2].reason.contains("longer than max_line_bytes"));
    }

    #[test]
    fn line_numbers_survive_crlf_blank_lines_and_quoted_newlines() {
        let input = b"a,b\r\n1,2\r\n\r\n1\r\n\n\n\"x\ny\",2,3\n4,5\n6\n";
        let (batch, bad, _) = read_all(input, options(HeaderMode::Auto));
        assert_eq!(batch.unwrap().len(), 2);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 7, 10], "{bad:?}");
    }

    #[test]
    fn repeated_headers_are_skipped_not_counted_bad() {
        let (batch, bad, repeated) = read_all(b"a,b\n1,2\na,b\n3,4\n", options(HeaderMode::Auto));
        assert_eq!(batch.unwrap().len(), 2);
        assert!(bad.is_empty());
        assert_eq!(repeated, 1);
    }

    #[test]
    fn configured_columns_rename_and_header_can_be_forced() {
        let mut o = options(HeaderMode::Present);
        o.columns = Some(vec!["x".into(), "y".into()]);
        let (batch, _, _) = read_all(b"1,2\n3,4\n", o);
        let batch = batch.unwrap();
        assert_eq!(column(&batch, "x"), ["3"]);
    }

    #[test]
    fn empty_input_gives_no_rows() {
        let (batch, bad, _) = read_all(b"", options(HeaderMode::Auto));
        assert!(batch.is_none());
        assert!(bad.is_empty());
    }
}
