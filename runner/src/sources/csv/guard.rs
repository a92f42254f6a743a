//! A `Read` adapter in front of the CSV parser: skips a UTF-8 byte-order mark, cuts every
//! physical line at `max_line_bytes` (remembering which lines were cut, so their rows can be
//! reported as bad), counts the bytes read for the progress bar, and keeps the positions of the
//! newlines it passed on so that a record's byte offset maps to its physical line number (CRLF,
//! blank lines and quoted newlines included). A 10 MB line or a binary file with no newlines
//! therefore never makes the parser buffer more than one cut line.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The guarded input.
pub struct GuardedInput<R> {
    inner: R,
    max_line_bytes: u64,
    line: u64,
    line_len: u64,
    cutting: bool,
    cut_lines: VecDeque<u64>,
    bytes_read: Arc<AtomicU64>,
    /// Bytes handed to the parser so far.
    passed: u64,
    /// Offsets (in the bytes handed on) of newlines not yet below a looked-up position.
    newlines: VecDeque<u64>,
    /// Newlines already below a looked-up position.
    lines_before: u64,
}

impl<R: BufRead> GuardedInput<R> {
    /// Wraps `inner`, skipping a leading BOM. `bytes_read` is kept up to date with the number of
    /// bytes taken from `inner`.
    pub fn new(mut inner: R, max_line_bytes: u64, bytes_read: Arc<AtomicU64>) -> io::Result<Self> {
        let start = inner.fill_buf()?;
        if start.starts_with(BOM) {
            inner.consume(BOM.len());
            bytes_read.fetch_add(BOM.len() as u64, Ordering::Relaxed);
        }
        Ok(GuardedInput {
            inner,
            max_line_bytes,
            line: 1,
            line_len: 0,
            cutting: false,
            cut_lines: VecDeque::new(),
            bytes_read,
            passed: 0,
            newlines: VecDeque::new(),
            lines_before: 0,
        })
    }
}

impl<R> GuardedInput<R> {
    /// Wraps `inner`, a piece of a file that starts at the beginning of line `first_line`
    /// (1-based): no byte-order mark is looked for, and lines are numbered from there.
    pub fn continuing(
        inner: R,
        max_line_bytes: u64,
        bytes_read: Arc<AtomicU64>,
        first_line: u64,
    ) -> Self {
        GuardedInput {
            inner,
            max_line_bytes,
            line: first_line.max(1),
            line_len: 0,
            cutting: false,
            cut_lines: VecDeque::new(),
            bytes_read,
            passed: 0,
            newlines: VecDeque::new(),
            lines_before: first_line.max(1) - 1,
        }
    }

    /// The 1-based line of the byte at `offset` of what was handed to the parser. Offsets must
    /// not decrease from call to call.
    pub fn line_at(&mut self, offset: u64) -> u64 {
        while self.newlines.front().is_some_and(|&n| n < offset) {
            self.newlines.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }

    /// True when some line has been cut and not yet claimed by a row.
    pub fn has_cut_lines(&self) -> bool {
        !self.cut_lines.is_empty()
    }

    /// Forgets cut lines before `end` and says whether any line in `start..end` was cut.
    pub fn take_cut_lines_before(&mut self, start: u64, end: u64) -> bool {
        let mut any = false;
        while let Some(&line) = self.cut_lines.front() {
            if line >= end {
                break;
            }
            any |= line >= start;
            self.cut_lines.pop_front();
        }
        any
    }
}

impl<R: Read> Read for GuardedInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                return Ok(0);
            }
            self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
            let kept = self.cut_long_lines(&mut buf[..n]);
            self.passed += kept as u64;
            if kept > 0 {
                return Ok(kept);
            }
        }
    }
}

impl<R> GuardedInput<R> {
    /// Drops the bytes of `chunk` that lie past the limit of their line, compacting in place;
    /// returns how many bytes remain.
    fn cut_long_lines(&mut self, chunk: &mut [u8]) -> usize {
        let mut write = 0;
        let mut read = 0;
        while read < chunk.len() {
            let newline = memchr::memchr(b'\n', &chunk[read..]).map(|i| read + i);
            let segment_end = newline.unwrap_or(chunk.len());
            let segment = (segment_end - read) as u64;
            let keep = if self.cutting {
                0
            } else if self.line_len + segment <= self.max_line_bytes {
                segment
            } else {
                self.cutting = true;
                self.cut_lines.push_back(self.line);
                self.max_line_bytes - self.line_len
            };
            if write != read {
                chunk.copy_within(read..read + keep as usize, write);
            }
            write += keep as usize;
            self.line_len += keep;
            read = segment_end;
            if newline.is_some() {
                self.newlines.push_back(self.passed + write as u64);
                chunk[write] = b'\n';
                write += 1;
                read += 1;
                self.line += 1;
                self.line_len = 0;
                self.cutting = false;
            }
        }
        write
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(input: &[u8], max: u64) -> (String, GuardedInput<&[u8]>) {
        let mut g = GuardedInput::new(input, max, Arc::default()).unwrap();
        let mut out = Vec::new();
        // Small reads so lines straddle chunk boundaries.
        let mut buf = [0u8; 3];
        loop {
            let n = g.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        (String::from_utf8(out).unwrap(), g)
    }

    #[test]
    fn skips_bom_and_keeps_short_lines() {
        let (out, mut g) = guard(b"\xEF\xBB\xBFa,b\r\nc,d\n", 100);
        assert_eq!(out, "a,b\r\nc,d\n");
        assert!(!g.take_cut_lines_before(1, 10));
    }

    #[test]
    fn maps_offsets_to_lines() {
        let (out, mut g) = guard(b"a\r\n\r\nbb\ncc", 100);
        assert_eq!(out, "a\r\n\r\nbb\ncc");
        assert_eq!(g.line_at(0), 1);
        assert_eq!(g.line_at(3), 2);
        assert_eq!(g.line_at(5), 3);
        assert_eq!(g.line_at(8), 4);
        assert_eq!(g.line_at(10), 4);
    }

    #[test]
    fn a_continuing_piece_keeps_its_bom_bytes_and_counts_lines_from_its_start() {
        let mut g = GuardedInput::continuing(&b"\xEF\xBB\xBFx\nyy\n"[..], 2, Arc::default(), 41);
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        assert_eq!(
            out, b"\xEF\xBB\nyy\n",
            "cut at 2 bytes, the BOM taken as data"
        );
        assert_eq!(g.line_at(0), 41);
        assert_eq!(g.line_at(4), 42);
        assert!(g.take_cut_lines_before(41, 42));
    }

    #[test]
    fn cuts_long_lines_and_remembers_them() {
        let (out, mut g) = guard(b"ok\n0123456789\nfine\nxxxxxxxxxxxxxxxx", 5);
        assert_eq!(out, "ok\n01234\nfine\nxxxxx");
        assert!(!g.take_cut_lines_before(1, 2));
        assert!(g.take_cut_lines_before(2, 3));
        assert!(!g.take_cut_lines_before(3, 4));
        assert!(g.take_cut_lines_before(4, 5));
    }
}
