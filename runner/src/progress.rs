//! Terminal progress bars (indicatif) that share stderr with log lines and stdout with the
//! console sink: every writer goes through [`suspend`], which hides the bars while it writes.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// True when stderr is a terminal (where a progress bar makes sense).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar for reading a file of `len` bytes.
pub fn file_bar(label: &str, len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bars().add(
        ProgressBar::new(len)
            .with_style(style)
            .with_prefix(label.to_string()),
    )
}

/// Runs `write` with the progress bars hidden, so its output does not tear them.
pub fn suspend<R>(write: impl FnOnce() -> R) -> R {
    bars().suspend(write)
}

/// A `tracing` writer for stderr that hides progress bars while a log line is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct StderrAroundBars;

impl Write for StderrAroundBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        suspend(|| std::io::stderr().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrAroundBars {
    type Writer = StderrAroundBars;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
