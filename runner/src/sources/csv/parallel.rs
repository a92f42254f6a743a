//! Reading one CSV file on several threads, rows still in file order.
//!
//! A *cutter* thread reads the file in pieces of about [`PIECE_BYTES`] that end at a line end and
//! hands them out in turn to `parallelism` parser threads (piece k to parser k mod N); each parser
//! reads its piece with the same row reader as the one-thread path ([`CsvRows`], told the line
//! the piece starts on and the columns the file's start decided) and hands back its batches and
//! bad rows. The source takes the results from the parsers in the same turn and hands rows on in
//! cells of the same rows as the one-thread reader's batches (a cell spanning two pieces goes as
//! two batches sharing the parsers' arenas, with the watermark after both), so rows, watermarks,
//! bad rows and line numbers come out exactly as one thread gives them.
//! Times that depend on a row's position (replay time) are finished in that order
//! ([`Timestamps::restamp_piece`]).
//!
//! A line end is a row end unless it sits inside a quoted field, and only reading from the start
//! tells which. So a piece is handed out only when it has no `"` (or quoting is off); at the
//! first piece with one, or a line longer than a piece may grow, the rest of the file is read on
//! the source's thread from that point, as the one-thread path would. Logs without quotes — the
//! common case — are read in parallel to the end.

use super::rows::{BadRow, CsvRows, Layout, ReadBatch, ReadError, ReadOptions};
use super::stamp::Timestamps;
use crate::record::Batch;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Bytes per piece handed to a parser.
pub const PIECE_BYTES: usize = 256 << 10;

/// Pieces a piece may grow to, looking for a line end, before the rest is read on one thread.
const MAX_PIECE_GROWTH: usize = 8;

/// How a file is cut and parsed.
#[derive(Clone, Copy, Debug)]
pub struct Cutting {
    /// Parser threads.
    pub parsers: usize,
    /// Bytes per piece (about; pieces end at a line end).
    pub piece_bytes: usize,
    /// Whether `"` quotes fields (then a piece holding one is not cut).
    pub quoting: bool,
}

/// What the cutter hands a parser.
enum Work {
    /// Whole lines, starting at line `first_line`.
    Piece { bytes: Vec<u8>, first_line: u64 },
    /// The rest of the file, to be read on one thread: `pending` bytes, then `file`, starting
    /// at line `first_line`.
    Rest {
        pending: Vec<u8>,
        file: File,
        first_line: u64,
    },
    /// Reading the file failed.
    Failed(io::Error),
}

/// What a parser hands back, in the order of the work.
enum Parsed {
    Rows {
        batches: Vec<Batch>,
        bad: Vec<BadRow>,
        repeated_headers: u64,
        /// Rows the piece stamped (see [`Timestamps::restamp_piece`]).
        stamped: u64,
    },
    Rest {
        pending: Vec<u8>,
        file: File,
        first_line: u64,
    },
    Failed(ReadError),
}

/// Everything a parser needs to read a piece the way the one-thread reader would.
#[derive(Clone)]
struct PieceReader {
    options: ReadOptions,
    layout: Layout,
    /// The file's stamp, from which each piece's is made.
    stamp: Timestamps,
    batch_size: usize,
}

impl PieceReader {
    fn parse(&mut self, bytes: &[u8], first_line: u64) -> Parsed {
        let mut stamp = self.stamp.for_piece();
        let mut rows = CsvRows::continuing(
            bytes,
            self.options.clone(),
            Arc::default(),
            Some(self.layout.clone()),
            first_line,
        );
        let mut batches = Vec::new();
        let mut bad = Vec::new();
        loop {
            match rows.read_batch(self.batch_size, &mut stamp, &mut bad) {
                Ok(ReadBatch { batch, at_end }) => {
                    batches.extend(batch);
                    if at_end {
                        break;
                    }
                }
                Err(e) => return Parsed::Failed(e),
            }
        }
        Parsed::Rows {
            batches,
            bad,
            repeated_headers: rows.repeated_headers,
            stamped: stamp.rows_stamped(),
        }
    }
}

/// The rows of one batch of the one-thread reader, in parts.
pub struct Cell {
    /// The rows, in order.
    pub parts: Vec<Batch>,
    /// True when the file has no more rows.
    pub at_end: bool,
}

/// A CSV file being read on several threads.
pub struct ParallelRows {
    /// Parser k's results; the next result is taken from `results[turn % len]`.
    results: Vec<Receiver<Parsed>>,
    turn: usize,
    /// Batches of pieces already taken, in order.
    ready: VecDeque<Batch>,
    /// Rows of `ready[0]` already handed on.
    taken: usize,
    /// Bad rows of pieces already taken, not yet handed on.
    bad: Vec<BadRow>,
    /// The rest of the file, once it is read on this thread.
    rest: Option<CsvRows<Box<dyn BufRead + Send>>>,
    /// The columns and header the file's start decided.
    layout: Layout,
    /// Repeated header lines skipped by the parsers (plus `rest`'s, read from it).
    repeated_headers: u64,
    options: ReadOptions,
    bytes_read: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl ParallelRows {
    /// Starts reading `file` on `parallelism` parser threads, or gives it back when its start
    /// cannot be read in pieces (quotes, no line end, no rows): then the caller reads it on one
    /// thread from the beginning.
    ///
    /// The first piece is read here, as the one-thread reader reads a file's start (byte-order
    /// mark, header or not, the columns); its results come first.
    pub fn start(
        mut file: File,
        options: ReadOptions,
        stamp: &mut Timestamps,
        batch_size: usize,
        cutting: Cutting,
        bytes_read: Arc<AtomicU64>,
    ) -> io::Result<Result<ParallelRows, File>> {
        let Piece::Lines(first, rest_of_block) = read_piece(&mut file, Vec::new(), &cutting)?
        else {
            return rewound(file);
        };
        // The start is read with a copy of the stamp: if it cannot be cut, nothing is used.
        let mut first_stamp = stamp.clone();
        let mut rows = CsvRows::new(&first[..], options.clone(), Arc::default())?;
        let mut batches = Vec::new();
        let mut bad = Vec::new();
        loop {
            match rows.read_batch(batch_size, &mut first_stamp, &mut bad) {
                Ok(ReadBatch { batch, at_end }) => {
                    batches.extend(batch);
                    if at_end {
                        break;
                    }
                }
                Err(_) => return rewound(file), // the one-thread reader reports it
            }
        }
        let Some(layout) = rows.layout() else {
            return rewound(file);
        };
        *stamp = first_stamp;
        bytes_read.fetch_add(first.len() as u64, Ordering::Relaxed);
        let first_line = 1 + memchr::memchr_iter(b'\n', &first).count() as u64;
        let layout_for_rest = layout.clone();

        let parallelism = cutting.parsers.max(1);
        let mut to_parsers = Vec::with_capacity(parallelism);
        let mut results = Vec::with_capacity(parallelism);
        let mut threads = Vec::with_capacity(parallelism + 1);
        let reader = PieceReader {
            options: options.clone(),
            layout,
            stamp: stamp.clone(),
            batch_size,
        };
        for k in 0..parallelism {
            let (work_tx, work_rx) = sync_channel::<Work>(1);
            let (parsed_tx, parsed_rx) = sync_channel::<Parsed>(1);
            to_parsers.push(work_tx);
            results.push(parsed_rx);
            let mut reader = reader.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("csv-parser-{k}"))
                    .spawn(move || parse_pieces(&mut reader, &work_rx, &parsed_tx))?,
            );
        }
        let cutter = Cutter {
            file,
            carry: rest_of_block,
            next_line: first_line,
            cutting,
            bytes_read: Arc::clone(&bytes_read),
        };
        threads.push(
            std::thread::Builder::new()
                .name("csv-cutter".into())
                .spawn(move || cutter.run(&to_parsers))?,
        );
        Ok(Ok(ParallelRows {
            results,
            turn: 0,
            ready: batches.into(),
            taken: 0,
            bad,
            rest: None,
            layout: layout_for_rest,
            repeated_headers: rows.repeated_headers,
            options,
            bytes_read,
            threads,
        }))
    }

    /// The next `max_rows` good rows in file order (fewer only at the file's end), with the bad
    /// rows read so far appended to `bad`; `stamp` finishes position-dependent times in order.
    /// The rows are those of one batch of the one-thread reader (with out-of-order event times,
    /// where batches end decides which rows a watermark finds late, so the source sends its
    /// watermark after the whole cell); they come as one or more parts that share the parsers'
    /// arenas, so nothing is copied.
    pub fn read_cell(
        &mut self,
        max_rows: usize,
        stamp: &mut Timestamps,
        bad: &mut Vec<BadRow>,
    ) -> Result<Cell, ReadError> {
        let mut parts = Vec::new();
        let mut have = 0;
        let mut at_end = false;
        while have < max_rows {
            bad.append(&mut self.bad);
            if let Some(front) = self.ready.front() {
                let take = (front.len() - self.taken).min(max_rows - have);
                if self.taken == 0 && take == front.len() {
                    parts.extend(self.ready.pop_front());
                } else {
                    parts.push(front.slice(self.taken..self.taken + take));
                    self.taken += take;
                    if self.taken == front.len() {
                        self.ready.pop_front();
                        self.taken = 0;
                    }
                }
                have += take;
                continue;
            }
            if let Some(rest) = &mut self.rest {
                let read = rest.read_batch(max_rows - have, stamp, bad)?;
                have += read.batch.as_ref().map_or(0, Batch::len);
                parts.extend(read.batch);
                if read.at_end {
                    at_end = true;
                    break;
                }
                continue;
            }
            if !self.take_piece(stamp)? {
                at_end = true;
                break;
            }
        }
        Ok(Cell { parts, at_end })
    }

    /// Takes the next parser's result into `ready` (or switches to reading the rest here);
    /// false when the file has ended.
    fn take_piece(&mut self, stamp: &mut Timestamps) -> Result<bool, ReadError> {
        let Some(from) = self
            .turn
            .checked_rem(self.results.len())
            .and_then(|k| self.results.get(k))
        else {
            return Ok(false);
        };
        // A parser's channel closes after its last piece: the file has ended.
        let Ok(parsed) = from.recv() else {
            return Ok(false);
        };
        self.turn += 1;
        match parsed {
            Parsed::Rows {
                mut batches,
                bad,
                repeated_headers,
                stamped,
            } => {
                stamp.restamp_piece(batches.iter_mut().map(Batch::times_mut), stamped);
                self.ready.extend(batches);
                self.bad.extend(bad);
                self.repeated_headers += repeated_headers;
            }
            Parsed::Rest {
                pending,
                file,
                first_line,
            } => {
                let input: Box<dyn BufRead + Send> = Box::new(
                    Cursor::new(pending).chain(BufReader::with_capacity(256 * 1024, file)),
                );
                self.rest = Some(CsvRows::continuing(
                    input,
                    self.options.clone(),
                    Arc::clone(&self.bytes_read),
                    Some(self.layout.clone()),
                    first_line,
                ));
                // The parsers have nothing more to do.
                self.results.clear();
            }
            Parsed::Failed(e) => return Err(e),
        }
        Ok(true)
    }

    /// Repeated header lines skipped so far.
    pub fn repeated_headers(&self) -> u64 {
        self.repeated_headers + self.rest.as_ref().map_or(0, |r| r.repeated_headers)
    }
}

impl Drop for ParallelRows {
    fn drop(&mut self) {
        // Closing the result channels ends the parsers and then the cutter.
        self.results.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A parser thread: pieces in, results out, in order, until the cutter or the source is gone.
fn parse_pieces(reader: &mut PieceReader, work: &Receiver<Work>, parsed: &SyncSender<Parsed>) {
    while let Ok(work) = work.recv() {
        let result = match work {
            Work::Piece { bytes, first_line } => reader.parse(&bytes, first_line),
            Work::Rest {
                pending,
                file,
                first_line,
            } => Parsed::Rest {
                pending,
                file,
                first_line,
            },
            Work::Failed(e) => Parsed::Failed(ReadError::Io(e)),
        };
        if parsed.send(result).is_err() {
            return;
        }
    }
}

/// Reads the file and cuts it into pieces of whole lines.
struct Cutter {
    file: File,
    /// Bytes read past the last piece's end.
    carry: Vec<u8>,
    /// The line the next piece starts on.
    next_line: u64,
    cutting: Cutting,
    bytes_read: Arc<AtomicU64>,
}

impl Cutter {
    fn run(mut self, parsers: &[SyncSender<Work>]) {
        for turn in 0.. {
            let to = &parsers[turn % parsers.len()];
            let carry = std::mem::take(&mut self.carry);
            let work = match read_piece(&mut self.file, carry, &self.cutting) {
                Ok(Piece::Lines(piece, carry)) => {
                    self.bytes_read
                        .fetch_add(piece.len() as u64, Ordering::Relaxed);
                    self.carry = carry;
                    let first_line = self.next_line;
                    self.next_line += memchr::memchr_iter(b'\n', &piece).count() as u64;
                    Work::Piece {
                        bytes: piece,
                        first_line,
                    }
                }
                Ok(Piece::End) => return,
                Ok(Piece::Uncut(pending)) => {
                    let _ = to.send(Work::Rest {
                        pending,
                        file: self.file,
                        first_line: self.next_line,
                    });
                    return;
                }
                Err(e) => {
                    let _ = to.send(Work::Failed(e));
                    return;
                }
            };
            if to.send(work).is_err() {
                return; // the source stopped reading
            }
        }
    }
}

/// The next piece of a file.
enum Piece {
    /// Whole lines, and the bytes read past them.
    Lines(Vec<u8>, Vec<u8>),
    /// Nothing is left.
    End,
    /// These bytes (all read and not handed out) cannot be cut: they hold a quote, or no line
    /// end within [`MAX_PIECE_GROWTH`] pieces.
    Uncut(Vec<u8>),
}

/// Reads the next piece: `carry` and more of `file`, up to about `cutting.piece_bytes`, ending
/// at a line end (or at the file's end).
fn read_piece(file: &mut File, mut carry: Vec<u8>, cutting: &Cutting) -> io::Result<Piece> {
    let piece_bytes = cutting.piece_bytes.max(16);
    loop {
        let want = piece_bytes.saturating_sub(carry.len()).max(piece_bytes / 4);
        let start = carry.len();
        carry.resize(start + want, 0);
        let n = read_full(file, &mut carry[start..])?;
        carry.truncate(start + n);
        let cut = if n < want {
            carry.len() // the file's end
        } else {
            match memchr::memrchr(b'\n', &carry) {
                Some(i) => i + 1,
                None if carry.len() >= piece_bytes * MAX_PIECE_GROWTH => {
                    return Ok(Piece::Uncut(carry));
                }
                None => continue,
            }
        };
        if cut == 0 {
            return Ok(Piece::End);
        }
        if cutting.quoting && memchr::memchr(b'"', &carry[..cut]).is_some() {
            return Ok(Piece::Uncut(carry));
        }
        let rest = carry[cut..].to_vec();
        carry.truncate(cut);
        return Ok(Piece::Lines(carry, rest));
    }
}

/// Fills `buffer` from `file` unless the file ends first; returns the bytes read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Gives `file` back, at its start, for reading on one thread.
fn rewound(mut file: File) -> io::Result<Result<ParallelRows, File>> {
    file.seek(SeekFrom::Start(0))?;
    Ok(Err(file))
}

#[cfg(test)]
mod tests;
