//! The plugin's handle on the host during one call: emit batches, reject input, log, report
//! errors.

use crate::batch::BatchBuilder;
use std::ffi::c_void;
use weir_plugin_abi::{HostApi, LogLevel, Status, Str};

/// The host, as seen from inside one plugin call. Valid only during that call.
pub struct Host {
    api: *const HostApi,
    ctx: *mut c_void,
}

impl Host {
    /// Wraps the callbacks and context the host passed in.
    pub(crate) fn new(api: *const HostApi, ctx: *mut c_void) -> Host {
        Host { api, ctx }
    }

    fn api(&self) -> &HostApi {
        // SAFETY: the host passes a valid `HostApi` for the duration of every call.
        unsafe { &*self.api }
    }

    /// Hands `batch` to the host (which copies it) and clears it for reuse.
    pub fn emit(&mut self, batch: &mut BatchBuilder) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let emit = self.api().emit;
        let ctx = self.ctx;
        // SAFETY: the view points into `batch`, alive across the call; the host copies it.
        let status = batch.with_view(|view| unsafe { emit(ctx, view) });
        batch.clear();
        if status == Status::OK {
            Ok(())
        } else {
            Err("the host rejected the emitted batch".into())
        }
    }

    /// Emits rows `rows` (ascending indices) of the batch passed to the current `process` call,
    /// without copying them: how a filter should emit.
    pub fn emit_rows(&mut self, rows: &[u32]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        // SAFETY: valid callbacks for the duration of the call; the host reads `rows` only
        // during the callback.
        let status = unsafe { (self.api().emit_rows)(self.ctx, rows.as_ptr(), rows.len()) };
        if status == Status::OK {
            Ok(())
        } else {
            Err("the host rejected the emitted rows (only the rows of the batch being processed can be emitted this way)".into())
        }
    }

    /// Rejects row `row` of the batch passed to the current `process` call: the host counts it
    /// as dropped and, when the pipeline reads this stage's `<id>.errors`, sends it there with
    /// `reason` and its fields. Do not emit the row as well.
    pub fn reject_row(&mut self, row: usize, reason: &str) -> Result<(), String> {
        let row = u32::try_from(row).map_err(|_| format!("row {row} is out of range"))?;
        // SAFETY: valid callbacks for the duration of the call; the host copies the reason.
        let status = unsafe { (self.api().reject_row)(self.ctx, row, Str::new(reason)) };
        if status == Status::OK {
            Ok(())
        } else {
            Err("the host refused the rejected row (only rows of the batch being processed can be rejected this way)".into())
        }
    }

    /// Rejects input that is not a row of the batch being processed — a line a source could
    /// not parse, a message a sink could not deliver: `record` is its text, `at` where it came
    /// from (`file:line`, an offset). Counted and sent on like [`reject_row`](Self::reject_row).
    pub fn reject(&mut self, reason: &str, at: &str, record: &str) {
        // SAFETY: valid callbacks for the duration of the call; the host copies the strings.
        unsafe {
            (self.api().reject)(self.ctx, Str::new(reason), Str::new(at), Str::new(record));
        }
    }

    /// Writes a log line attributed to this stage.
    pub fn log(&self, level: LogLevel, message: &str) {
        // SAFETY: valid callbacks for the duration of the call; the host copies the message.
        unsafe { (self.api().log)(self.ctx, level, Str::new(message)) }
    }

    /// Reports an error (with the config byte offset it is about, or -1).
    pub(crate) fn error(&self, offset: i64, message: &str) {
        // SAFETY: as for `log`.
        unsafe { (self.api().error)(self.ctx, offset, Str::new(message)) }
    }
}
