//! The host's side of a plugin call: the callbacks plugins use to emit batches, reject input,
//! log and report errors, the per-call context they write into, and lending a batch to a
//! plugin.
//!
//! Nothing a plugin hands over is trusted: emitted batches are bounds-checked and copied, value
//! tags are read from raw bytes before any `Value` is formed, and text that is not UTF-8 reads
//! as empty.

use crate::record::{Batch, Millis, Schema, Value};
use std::ffi::c_void;
use std::sync::Arc;
use weir_plugin_abi::{BatchView, HostApi, LogLevel, Status, Str};

/// What one call into a plugin may write to.
pub struct CallContext<'a> {
    /// The stage's key path, for log lines.
    pub label: &'a str,
    /// Batches emitted during the call.
    pub out: &'a mut Vec<Batch>,
    /// The last schema built for emitted batches, reused while the names stay the same.
    pub schema: &'a mut Option<Arc<Schema>>,
    /// Errors reported during the call: (config byte offset or -1, message).
    pub errors: Vec<(i64, String)>,
    /// The batch lent to the current `process` call, for `emit_rows` and `reject_row`.
    pub lent: Option<&'a Batch>,
    /// Rows of the lent batch the plugin rejected: (row, reason).
    pub rejected_rows: Vec<(usize, String)>,
    /// Other input the plugin rejected: (reason, at, record).
    pub rejected: Vec<(String, String, String)>,
}

impl<'a> CallContext<'a> {
    /// A context for one call, collecting into `out` with `schema` as the emitted batches'
    /// last schema.
    pub fn new(
        label: &'a str,
        out: &'a mut Vec<Batch>,
        schema: &'a mut Option<Arc<Schema>>,
        lent: Option<&'a Batch>,
    ) -> Self {
        CallContext {
            label,
            out,
            schema,
            errors: Vec::new(),
            lent,
            rejected_rows: Vec::new(),
            rejected: Vec::new(),
        }
    }
}

impl CallContext<'_> {
    /// The first reported error, or `fallback`.
    pub fn error_message(&self, fallback: &str) -> String {
        self.errors
            .first()
            .map_or_else(|| fallback.to_string(), |(_, m)| m.clone())
    }
}

/// The callbacks passed to every plugin call.
pub static HOST_API: HostApi = HostApi {
    struct_size: std::mem::size_of::<HostApi>(),
    emit,
    emit_rows,
    log,
    error,
    reject_row,
    reject,
};

/// Text from a plugin, copied; invalid UTF-8 is replaced.
///
/// # Safety
/// `s` must point at `len` readable bytes.
unsafe fn text(s: Str) -> String {
    // SAFETY: the caller's contract.
    String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
}

unsafe extern "C-unwind" fn log(ctx: *mut c_void, level: LogLevel, message: Str) {
    // SAFETY: `ctx` is the `CallContext` of the call in progress.
    let cx = unsafe { &*ctx.cast::<CallContext<'_>>() };
    // SAFETY: the plugin passes a valid string for the duration of the callback.
    let message = unsafe { text(message) };
    match level {
        LogLevel::ERROR => tracing::error!("{}: {message}", cx.label),
        LogLevel::WARN => tracing::warn!("{}: {message}", cx.label),
        LogLevel::INFO => tracing::info!("{}: {message}", cx.label),
        _ => tracing::debug!("{}: {message}", cx.label),
    }
}

unsafe extern "C-unwind" fn error(ctx: *mut c_void, offset: i64, message: Str) {
    // SAFETY: `ctx` is the `CallContext` of the call in progress.
    let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
    // SAFETY: the plugin passes a valid string for the duration of the callback.
    cx.errors.push((offset, unsafe { text(message) }));
}

unsafe extern "C-unwind" fn emit(ctx: *mut c_void, view: *const BatchView) -> Status {
    // SAFETY: `ctx` is the `CallContext` of the call in progress.
    let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
    // SAFETY: the plugin lends a view valid for the duration of the callback.
    match unsafe { copy_batch(&*view, cx.schema) } {
        Ok(batch) => {
            if !batch.is_empty() {
                cx.out.push(batch);
            }
            Status::OK
        }
        Err(message) => {
            cx.errors
                .push((-1, format!("emitted a malformed batch: {message}")));
            Status::ERROR
        }
    }
}

unsafe extern "C-unwind" fn emit_rows(ctx: *mut c_void, rows: *const u32, len: usize) -> Status {
    // SAFETY: `ctx` is the `CallContext` of the call in progress.
    let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
    let Some(lent) = cx.lent else {
        cx.errors.push((-1, "emit_rows outside of process".into()));
        return Status::ERROR;
    };
    // SAFETY: the plugin lends `len` indices for the duration of the callback.
    let rows: &[u32] = unsafe { slice(rows, len) };
    if let Some(bad) = rows.iter().find(|&&r| r as usize >= lent.len()) {
        cx.errors.push((
            -1,
            format!(
                "emit_rows: row {bad} is out of range (the batch has {})",
                lent.len()
            ),
        ));
        return Status::ERROR;
    }
    if !rows.is_empty() {
        cx.out.push(lent.select(rows));
    }
    Status::OK
}

unsafe extern "C-unwind" fn reject_row(ctx: *mut c_void, row: u32, reason: Str) -> Status {
    // SAFETY: `ctx` is the `CallContext` of the call in progress.
    let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
    let Some(lent) = cx.lent else {
        cx.errors.push((-1, "reject_row outside of process".into()));
        return Status::ERROR;
    };
    if row as usize >= lent.len() {
        cx.errors.push((
            -1,
            format!(
                "reject_row: row {row} is out of range (the batch has {})",
                lent.len()
            ),
        ));
        return Status::ERROR;
    }
    // SAFETY: the plugin passes a valid string for the duration of the callback.
    let reason = unsafe { text(reason) };
    cx.rejected_rows.push((row as usize, reason));
    Status::OK
}

unsafe extern "C-unwind" fn reject(ctx: *mut c_void, reason: Str, at: Str, record: Str) -> Status {
    // SAFETY: `ctx` is the `CallContext` of the call in progress.
    let cx = unsafe { &mut *ctx.cast::<CallContext<'_>>() };
    // SAFETY: the plugin passes valid strings for the duration of the callback.
    let rejected = unsafe { (text(reason), text(at), text(record)) };
    cx.rejected.push(rejected);
    Status::OK
}

/// Copies a plugin's batch into host memory, checking it on the way.
///
/// # Safety
/// Every pointer in `view` must be readable for its stated length.
unsafe fn copy_batch(view: &BatchView, schema: &mut Option<Arc<Schema>>) -> Result<Batch, String> {
    let cells = view
        .rows
        .checked_mul(view.columns)
        .ok_or("row count overflows")?;
    // SAFETY (all slices): the caller's contract; empty slices are never dereferenced.
    let names: &[Str] = unsafe { slice(view.names, view.columns) };
    let arena: &[u8] = unsafe { slice(view.arena, view.arena_len) };
    let times: &[Millis] = unsafe { slice(view.times, view.rows) };
    let raw_values: &[[u8; 16]] = unsafe { slice(view.values.cast::<[u8; 16]>(), cells) };
    let names: Vec<String> = names.iter().map(|n| unsafe { text(*n) }).collect();
    let reuse = schema
        .as_ref()
        .is_some_and(|s| s.names().eq(names.iter().map(String::as_str)));
    if !reuse {
        *schema = Some(Arc::new(Schema::new(&names)));
    }
    let mut values = Vec::with_capacity(cells);
    for raw in raw_values {
        values.push(value_from_raw(raw, arena.len()).map_err(|e| e.to_string())?);
    }
    let schema = Arc::clone(schema.as_ref().expect("set above"));
    Ok(Batch::from_utf8_parts(
        schema,
        arena.to_vec(),
        values,
        times.to_vec(),
    ))
}

/// A slice from a plugin pointer; empty when `len` is 0 (the pointer may then be dangling).
///
/// # Safety
/// When `len > 0`, `ptr` must be readable for `len` elements.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// What can be wrong with one value a plugin emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BadValue {
    Tag(u8),
    Boolean(u8),
    Span { start: u32, len: u32, arena: usize },
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            BadValue::Tag(tag) => write!(f, "invalid value tag {tag}"),
            BadValue::Boolean(b) => write!(f, "invalid boolean byte {b}"),
            BadValue::Span { start, len, arena } => write!(
                f,
                "text span {start}+{len} is outside the {arena}-byte arena"
            ),
        }
    }
}

/// Decodes a `#[repr(C, u8)]` value from its 16 bytes (tag at 0, payload at 8) without trusting
/// the tag.
#[inline]
fn value_from_raw(raw: &[u8; 16], arena_len: usize) -> Result<Value, BadValue> {
    let word = |at: usize| u32::from_ne_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
    let payload = || u64::from(word(8)) | (u64::from(word(12)) << 32);
    match raw[0] {
        0 => Ok(Value::Null),
        1 => match raw[8] {
            0 => Ok(Value::Bool(false)),
            1 => Ok(Value::Bool(true)),
            b => Err(BadValue::Boolean(b)),
        },
        2 => Ok(Value::Int(payload() as i64)),
        3 => Ok(Value::Float(f64::from_bits(payload()))),
        4 => {
            let (start, len) = (word(8), word(12));
            if start as usize + len as usize > arena_len {
                return Err(BadValue::Span {
                    start,
                    len,
                    arena: arena_len,
                });
            }
            Ok(Value::Str { start, len })
        }
        tag => Err(BadValue::Tag(tag)),
    }
}

/// The field names of one schema as ABI strings, kept with the schema they point into.
pub struct LentNames {
    schema: Arc<Schema>,
    names: Vec<Str>,
}

impl LentNames {
    /// Names for `schema`, reusing `cache` when it is for the same schema.
    pub fn for_schema<'c>(cache: &'c mut Option<LentNames>, schema: &Arc<Schema>) -> &'c [Str] {
        let stale = !matches!(cache, Some(c) if Arc::ptr_eq(&c.schema, schema));
        if stale {
            *cache = Some(LentNames {
                schema: Arc::clone(schema),
                names: schema.names().map(Str::new).collect(),
            });
        }
        &cache.as_ref().expect("set above").names
    }
}

/// A view of `batch` for a plugin call; valid while `batch` and `names` are.
pub fn view_of(batch: &Batch, names: &[Str]) -> BatchView {
    BatchView {
        rows: batch.len(),
        columns: batch.schema().len(),
        names: names.as_ptr(),
        arena: batch.arena().as_ptr(),
        arena_len: batch.arena().len(),
        values: batch.values().as_ptr(),
        times: batch.times().as_ptr(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, FieldRef};

    #[test]
    fn a_lent_batch_copies_back_unchanged() {
        let schema = Arc::new(Schema::new(["g", "n", "f", "b", "z"]));
        let mut b = BatchBuilder::with_capacity(Arc::clone(&schema), 1);
        b.push_str("四川");
        b.push(FieldRef::Int(-4));
        b.push(FieldRef::Float(0.5));
        b.push(FieldRef::Bool(true));
        b.push(FieldRef::Null);
        b.end_row(9);
        let batch = b.build();
        let mut cache = None;
        let names = LentNames::for_schema(&mut cache, batch.schema());
        let view = view_of(&batch, names);
        let mut schema_cache = None;
        // SAFETY: the view borrows `batch` and `cache`, both alive.
        let copy = unsafe { copy_batch(&view, &mut schema_cache) }.unwrap();
        assert_eq!(copy.values(), batch.values());
        assert_eq!(copy.times(), &[9]);
        assert_eq!(copy.row(0).get(0), FieldRef::Str("四川"));
        assert_eq!(
            copy.schema().names().collect::<Vec<_>>(),
            ["g", "n", "f", "b", "z"]
        );
    }

    #[test]
    fn malformed_values_are_rejected_not_trusted() {
        let mut raw = [0u8; 16];
        raw[0] = 9;
        assert!(
            value_from_raw(&raw, 0)
                .unwrap_err()
                .to_string()
                .contains("invalid value tag 9")
        );
        raw[0] = 1;
        raw[8] = 7;
        assert!(
            value_from_raw(&raw, 0)
                .unwrap_err()
                .to_string()
                .contains("invalid boolean")
        );
        raw[0] = 4;
        raw[8..12].copy_from_slice(&10u32.to_ne_bytes());
        raw[12..16].copy_from_slice(&5u32.to_ne_bytes());
        assert!(
            value_from_raw(&raw, 12)
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
    }
}
