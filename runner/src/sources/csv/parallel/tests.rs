//! Unit tests of `parallel`.

use super::*;
use crate::sources::csv::config::TimeUnit;
use crate::sources::csv::header::HeaderMode;
use crate::sources::csv::stamp::Timestamps;
use proptest::prelude::*;
use std::io::Write;

/// The docs that state the piece size state this one.
#[test]
fn the_docs_state_the_piece_size() {
    let size = format!("{} KiB", PIECE_BYTES / 1024);
    for (name, text) in [
        (
            "docs/stages.md",
            include_str!("../../../../../docs/stages.md"),
        ),
        (
            "docs/scaling.md",
            include_str!("../../../../../docs/scaling.md"),
        ),
    ] {
        assert!(text.contains(&size), "{name} does not say {size}");
    }
}

/// Each good row: its fields' text and its event time.
type GoodRows = Vec<(Vec<String>, i64)>;

/// Every good row, the rows per batch, every bad row, repeated headers.
type Read = (GoodRows, Vec<usize>, Vec<BadRow>, u64);

fn collect(
    mut next: impl FnMut(&mut Timestamps, &mut Vec<BadRow>) -> Cell,
    stamp: &mut Timestamps,
) -> (GoodRows, Vec<usize>, Vec<BadRow>) {
    let mut rows = Vec::new();
    let mut sizes = Vec::new();
    let mut bad = Vec::new();
    loop {
        let read = next(stamp, &mut bad);
        let cell: usize = read.parts.iter().map(Batch::len).sum();
        if cell > 0 {
            sizes.push(cell);
        }
        for batch in read.parts {
            for row in batch.rows() {
                let fields = (0..batch.schema().len())
                    .map(|i| String::from_utf8_lossy(row.text_bytes(i).unwrap_or(b"")).into())
                    .collect();
                rows.push((fields, row.event_time()));
            }
        }
        if read.at_end {
            return (rows, sizes, bad);
        }
    }
}

fn one_thread(path: &std::path::Path, options: &ReadOptions, stamp: Timestamps) -> Read {
    let file = BufReader::new(File::open(path).unwrap());
    let mut rows = CsvRows::new(file, options.clone(), Arc::default()).unwrap();
    let mut stamp = stamp;
    let (good, sizes, bad) = collect(|s, b| one_cell(rows.read_batch(7, s, b)), &mut stamp);
    (good, sizes, bad, rows.repeated_headers)
}

fn one_cell(read: Result<ReadBatch, ReadError>) -> Cell {
    let read = read.unwrap();
    Cell {
        parts: read.batch.into_iter().collect(),
        at_end: read.at_end,
    }
}

fn in_pieces(
    path: &std::path::Path,
    options: &ReadOptions,
    stamp: Timestamps,
    cutting: Cutting,
) -> Read {
    let file = File::open(path).unwrap();
    let mut stamp = stamp;
    let started = ParallelRows::start(
        file,
        options.clone(),
        &mut stamp,
        5, // the parsers' batches need not match the ones handed on
        cutting,
        Arc::default(),
    )
    .unwrap();
    match started {
        Ok(mut rows) => {
            let (good, sizes, bad) = collect(|s, b| rows.read_cell(7, s, b).unwrap(), &mut stamp);
            (good, sizes, bad, rows.repeated_headers())
        }
        Err(file) => {
            // The start could not be cut: the source reads the file on one thread.
            let mut rows =
                CsvRows::new(BufReader::new(file), options.clone(), Arc::default()).unwrap();
            let (good, sizes, bad) = collect(|s, b| one_cell(rows.read_batch(7, s, b)), &mut stamp);
            (good, sizes, bad, rows.repeated_headers)
        }
    }
}

/// Lines of a log with the quirks the reader handles: a header (repeated), blank lines,
/// CRLF, rows of the wrong width, over-long lines, invalid UTF-8, and (sometimes) quoted
/// fields with line ends inside.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (0u32..1000, 0u8..3).prop_map(|(n, g)| format!("{n},{g},x{n}\n").into_bytes()),
        1 => Just(b"id,gender,name\n".to_vec()),
        1 => Just(b"\n".to_vec()),
        1 => (0u32..100).prop_map(|n| format!("{n},1,crlf\r\n").into_bytes()),
        1 => (0u32..100).prop_map(|n| format!("{n},2\n").into_bytes()),
        1 => (40usize..90).prop_map(|k| format!("1,1,{}\n", "y".repeat(k)).into_bytes()),
        1 => Just(b"7,0,\xff\xfe\n".to_vec()),
        1 => (0u32..100).prop_map(|n| format!("{n},0,\"a,\nb\"\n").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Read in pieces on several threads, a file gives the same rows, times, batches, bad rows
    /// (with their lines) and skipped headers as read on one thread, whatever the piece size.
    #[test]
    fn pieces_read_as_one_thread_reads(
        lines in proptest::collection::vec(line(), 0..300),
        header_first in any::<bool>(),
        piece_bytes in 16usize..400,
        parsers in 1usize..4,
        quoting in any::<bool>(),
        times_from_rows in any::<bool>(),
    ) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        if header_first {
            file.write_all(b"id,gender,name\n").unwrap();
        }
        for line in &lines {
            file.write_all(line).unwrap();
        }
        file.flush().unwrap();
        let options = ReadOptions {
            header: HeaderMode::Auto,
            // Times from a row need their column named even when the file has no header.
            columns: times_from_rows.then(|| vec!["id".into(), "gender".into(), "name".into()]),
            delimiter: b',',
            quoting,
            max_line_bytes: 64,
        };
        let stamp = if times_from_rows {
            Timestamps::Field {
                name: "id".into(),
                index: None,
                unit: TimeUnit::S,
                future_tolerance: std::time::Duration::from_secs(60),
            }
        } else {
            Timestamps::Replay { start_time: 1_000, ms_per_row: 100.0, row: 0 }
        };
        let expected = one_thread(file.path(), &options, stamp.clone());
        let cutting = Cutting { parsers, piece_bytes, quoting };
        let got = in_pieces(file.path(), &options, stamp, cutting);
        prop_assert_eq!(&got.0, &expected.0);
        prop_assert_eq!(&got.1, &expected.1, "batch sizes");
        prop_assert_eq!(&got.2, &expected.2);
        prop_assert_eq!(got.3, expected.3);
    }
}
