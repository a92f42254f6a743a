//! Unit tests of `rows`.

use super::*;
use crate::record::FieldRef;

struct Counter(i64);
impl Stamp for Counter {
    fn stamp<'r>(&mut self, _field: &dyn Fn(usize) -> &'r str) -> Result<Millis, StampError> {
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

/// Reads everything in batches of `per_batch` rows.
fn read_in(input: &[u8], options: ReadOptions, per_batch: usize) -> (Vec<Batch>, Vec<BadRow>, u64) {
    let mut rows = CsvRows::new(input, options, Arc::default()).unwrap();
    let mut batches = Vec::new();
    let mut bad = Vec::new();
    let mut stamp = Counter(0);
    loop {
        let read = rows.read_batch(per_batch, &mut stamp, &mut bad).unwrap();
        batches.extend(read.batch);
        if read.at_end {
            break;
        }
    }
    (batches, bad, rows.repeated_headers)
}

fn read_all(input: &[u8], options: ReadOptions) -> (Option<Batch>, Vec<BadRow>, u64) {
    let (mut batches, bad, repeated) = read_in(input, options, 1000);
    assert!(batches.len() <= 1);
    (batches.pop(), bad, repeated)
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
fn quoted_fields_are_unescaped() {
    let (batch, _, _) = read_all(b"a,b\n\"x,\"\"y\"\"\",2\n", options(HeaderMode::Auto));
    assert_eq!(column(&batch.unwrap(), "a"), ["x,\"y\""]);
}

#[test]
fn headerless_rows_are_numbered_whatever_their_width() {
    // The reader knows no file's columns: eleven fields (the user log's width) get numbers too,
    // and `columns` names them.
    let row = "328862,406349,1280,2700,5476,11,11,0,0,1,四川\n";
    let (batch, _, _) = read_all(row.repeat(3).as_bytes(), options(HeaderMode::Auto));
    let batch = batch.unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(column(&batch, "field_10"), ["1", "1", "1"]);
    assert_eq!(column(&batch, "field_11"), ["四川", "四川", "四川"]);
    let mut named = options(HeaderMode::Auto);
    named.columns = Some(
        (1..=11)
            .map(|i| {
                if i == 10 {
                    "gender".into()
                } else {
                    format!("c{i}")
                }
            })
            .collect(),
    );
    let (batch, _, _) = read_all(row.repeat(2).as_bytes(), named);
    assert_eq!(column(&batch.unwrap(), "gender"), ["1", "1"]);
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

fn quirky_input() -> Vec<u8> {
    let long = "z".repeat(100);
    let mut bytes = format!("a,b\n1,2\n1,2,3\n\u{FF}\n{long},1\n3,\"4\"\n\n5,6").into_bytes();
    // Replace the placeholder with a GBK byte pair (not UTF-8).
    let at = bytes
        .windows(2)
        .position(|w| w == "\u{FF}".as_bytes())
        .unwrap();
    bytes.splice(at..at + 2, [0xC4, 0xE3, b',', b'x']);
    bytes
}

#[test]
fn bad_rows_are_set_aside_with_line_numbers() {
    for per_batch in [1, 2, 1000] {
        let (batches, bad, _) = read_in(&quirky_input(), options(HeaderMode::Auto), per_batch);
        let good: Vec<String> = batches.iter().flat_map(|b| column(b, "a")).collect();
        assert_eq!(good, ["1", "3", "5"], "batches of {per_batch}");
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(
            bad[0],
            BadRow {
                line: 3,
                reason: "expected 2 fields, found 3".into(),
                text: "1,2,3".into(),
            }
        );
        assert_eq!(bad[1].line, 4);
        assert!(bad[1].reason.contains("invalid UTF-8"));
        assert_eq!(bad[1].text, "\u{FFFD}\u{FFFD},x");
        assert_eq!(bad[2].line, 5);
        assert!(bad[2].reason.contains("longer than max_line_bytes"));
    }
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
fn invalid_utf8_split_across_rows_is_caught() {
    // Row 2 ends with the first two bytes of a three-byte character, row 3 starts with its
    // last byte: the concatenation is valid UTF-8, each row is not.
    let input = b"a,b\n1,x\xE5\xA4\n\x9A,2\n3,4\n";
    let (batch, bad, _) = read_all(input, options(HeaderMode::Auto));
    assert_eq!(column(&batch.unwrap(), "a"), ["3"]);
    assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
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
