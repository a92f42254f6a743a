//! The C ABI between the `weir` runner (the host) and stage plugins (shared libraries).
//!
//! A plugin exports one symbol, [`ENTRY_SYMBOL`] (`weir_plugin_descriptor`), an
//! `extern "C" fn() -> *const PluginDescriptor`. The descriptor is static: ABI version, its own
//! size, the plugin's name and version, and a table of [`ComponentVTable`]s, one per stage type it
//! offers. Everything in it lives as long as the library, and the host never unloads a library.
//!
//! Rules of the boundary:
//! - **Memory.** Nothing allocated on one side is freed on the other. The host lends a batch to
//!   a plugin for the duration of one call ([`BatchView`]); a plugin hands batches and messages to
//!   the host through [`HostApi`] callbacks and the host copies them before returning.
//! - **Panics.** Every entry point is `extern "C-unwind"` and the plugin catches panics (the SDK
//!   does it for you) and returns [`Status::PANIC`] after reporting the message through
//!   [`HostApi::error`]; an escaped panic is then at least defined behaviour, and the host turns
//!   it into the stage's error too.
//! - **Threads.** The host calls one component instance from one thread at a time, possibly a
//!   different thread from call to call; calls may block (the host runs them off its async
//!   workers). No async runtime crosses the boundary.
//! - **Versioning.** `abi_major` changes on any incompatible change; the host refuses other majors.
//!   `abi_minor` grows when fields are appended to the end of a struct; the host accepts plugins
//!   whose minor is at most its own, and reads `struct_size` to know which fields exist.
//!   1.2 appended [`PluginDescriptor::extensions`] ([`ComponentExtension`]: stateful transforms);
//!   1.1 plugins load and behave as before.
//!
//! This crate has no dependencies and only declares types; the safe Rust layer is `weir-plugin`.

#![no_std]

use core::ffi::c_void;

/// Major version of this ABI.
pub const ABI_MAJOR: u32 = 1;
/// Minor version of this ABI.
pub const ABI_MINOR: u32 = 2;
/// Name of the exported entry function, NUL-terminated for `dlsym`.
pub const ENTRY_SYMBOL: &[u8] = b"weir_plugin_descriptor\0";

/// Type of the entry function.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// A borrowed UTF-8 string: `len` bytes at `ptr`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl Str {
    /// A `Str` for a `'static` Rust string (for descriptors).
    pub const fn from_static(s: &'static str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// A `Str` borrowing `s`.
    pub fn new(s: &str) -> Str {
        Str {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point at `len` readable bytes that outlive `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// One field value. The runner's records use this very type, so a batch is lent to a plugin
/// without conversion.
#[repr(C, u8)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text at `start .. start + len` of the batch's arena.
    Str {
        /// Byte offset in the arena.
        start: u32,
        /// Byte length.
        len: u32,
    },
}

/// A batch of rows lent across the boundary for the duration of one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BatchView {
    /// Number of rows.
    pub rows: usize,
    /// Number of fields per row.
    pub columns: usize,
    /// `columns` field names.
    pub names: *const Str,
    /// Text of all string values.
    pub arena: *const u8,
    /// Arena length in bytes.
    pub arena_len: usize,
    /// `rows * columns` values, row by row.
    pub values: *const Value,
    /// `rows` event times, epoch milliseconds.
    pub times: *const i64,
}

/// Result of a plugin call. An integer rather than an enum, so that no value a plugin returns
/// can be undefined behaviour on the host side.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    /// Done, go on.
    pub const OK: Status = Status(0);
    /// A source has no more rows.
    pub const FINISHED: Status = Status(1);
    /// Failed; the message was sent through [`HostApi::error`].
    pub const ERROR: Status = Status(-1);
    /// Panicked; the message was sent through [`HostApi::error`].
    pub const PANIC: Status = Status(-2);
}

/// Log levels for [`HostApi::log`].
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLevel(pub u32);

impl LogLevel {
    /// Errors.
    pub const ERROR: LogLevel = LogLevel(1);
    /// Warnings.
    pub const WARN: LogLevel = LogLevel(2);
    /// Information.
    pub const INFO: LogLevel = LogLevel(3);
    /// Debugging detail.
    pub const DEBUG: LogLevel = LogLevel(4);
}

/// Callbacks the host passes into every call. `ctx` identifies the calling stage and is only
/// valid during the call it was passed to.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HostApi {
    /// Size of this struct as the host knows it.
    pub struct_size: usize,
    /// Hands the host an output batch; the host copies it before returning. Returns
    /// [`Status::OK`], or [`Status::ERROR`] when the batch is malformed.
    pub emit: unsafe extern "C-unwind" fn(ctx: *mut c_void, batch: *const BatchView) -> Status,
    /// Emits the listed rows (indices, ascending) of the batch lent to the current `process`
    /// call, without copying: the cheap way for filters to emit. Returns [`Status::ERROR`]
    /// outside `process` or for an index out of range.
    pub emit_rows:
        unsafe extern "C-unwind" fn(ctx: *mut c_void, rows: *const u32, len: usize) -> Status,
    /// Writes a log line attributed to the stage.
    pub log: unsafe extern "C-unwind" fn(ctx: *mut c_void, level: LogLevel, message: Str),
    /// Reports why the current call fails. For `validate` and `create`, `offset` is the byte
    /// offset in the config text that the error is about, or -1.
    pub error: unsafe extern "C-unwind" fn(ctx: *mut c_void, offset: i64, message: Str),
    /// (ABI 1.1) Rejects row `row` of the batch lent to the current `process` call for
    /// `reason`: the host counts it as dropped (invalid) and, when a component reads the stage's
    /// `<id>.errors`, sends it there with its fields. The plugin does not emit it. Returns
    /// [`Status::ERROR`] outside `process` or for a row out of range.
    pub reject_row: unsafe extern "C-unwind" fn(ctx: *mut c_void, row: u32, reason: Str) -> Status,
    /// (ABI 1.1) Rejects input that is not a row of a lent batch, e.g. a line a source could not
    /// parse: `record` is its text, `at` where it came from (`file:line`, an offset). Counted
    /// and sent on as for `reject_row`. Returns [`Status::OK`].
    pub reject:
        unsafe extern "C-unwind" fn(ctx: *mut c_void, reason: Str, at: Str, record: Str) -> Status,
}

/// Role of a component.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind(pub u32);

impl Kind {
    /// Produces batches ([`ComponentVTable::poll`]).
    pub const SOURCE: Kind = Kind(0);
    /// Turns batches into batches ([`ComponentVTable::process`]).
    pub const TRANSFORM: Kind = Kind(1);
    /// Delivers batches ([`ComponentVTable::process`]).
    pub const SINK: Kind = Kind(2);
}

/// Documentation of one option, for `weir list` / `weir plugins`. The host also checks
/// pipeline files against these: unknown keys are errors.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OptionDesc {
    /// Key name.
    pub name: Str,
    /// Value type as shown to users, e.g. `string`, `integer`, `[string]`.
    pub ty: Str,
    /// Default, or `required`.
    pub default: Str,
    /// One line on what it does.
    pub doc: Str,
}

/// An opaque component instance created by the plugin.
pub type Handle = *mut c_void;

/// One stage type a plugin offers. Calls not meaningful for a kind may be no-ops returning
/// [`Status::OK`].
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ComponentVTable {
    /// Role.
    pub kind: Kind,
    /// Type name within the plugin (the pipeline writes `type = "<plugin>.<name>"`).
    pub name: Str,
    /// One line on what it does.
    pub description: Str,
    /// Its options.
    pub options: *const OptionDesc,
    /// Number of options.
    pub options_len: usize,
    /// Checks a config (TOML text) without creating anything or doing I/O.
    pub validate:
        unsafe extern "C-unwind" fn(config: Str, host: *const HostApi, ctx: *mut c_void) -> Status,
    /// Creates an instance from a config (TOML text); on [`Status::OK`] `*out` holds it.
    pub create: unsafe extern "C-unwind" fn(
        config: Str,
        host: *const HostApi,
        ctx: *mut c_void,
        out: *mut Handle,
    ) -> Status,
    /// Transforms and sinks: handles one batch (transforms emit their output through the host).
    pub process: unsafe extern "C-unwind" fn(
        handle: Handle,
        batch: *const BatchView,
        host: *const HostApi,
        ctx: *mut c_void,
    ) -> Status,
    /// Sources: emits the next batch (at most `max_rows` rows), or returns [`Status::FINISHED`].
    pub poll: unsafe extern "C-unwind" fn(
        handle: Handle,
        max_rows: usize,
        host: *const HostApi,
        ctx: *mut c_void,
    ) -> Status,
    /// Called about `tick_interval_millis` apart (when not 0), for time-driven work.
    pub tick: unsafe extern "C-unwind" fn(
        handle: Handle,
        host: *const HostApi,
        ctx: *mut c_void,
    ) -> Status,
    /// Milliseconds between ticks; 0 for none.
    pub tick_interval_millis: u64,
    /// End of input: emit what is held, flush.
    pub finish: unsafe extern "C-unwind" fn(
        handle: Handle,
        host: *const HostApi,
        ctx: *mut c_void,
    ) -> Status,
    /// Frees the instance. Never fails.
    pub destroy: unsafe extern "C-unwind" fn(handle: Handle),
}

/// What a component offers beyond its [`ComponentVTable`] (ABI 1.2): one per component, in the
/// order of [`PluginDescriptor::components`]. The table of vtables cannot grow (it is an array),
/// so what later minors add goes here, each entry saying its own size.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ComponentExtension {
    /// `size_of::<ComponentExtension>()` as the plugin knows it.
    pub struct_size: usize,
    /// For a transform that keeps records and emits what it derives from them later (its own
    /// windows, sessions, distinct sets): after any call, every input record with an event time
    /// at or before the time returned is wholly reflected in what the instance has emitted, and
    /// nothing it emits later derives from such a record; `i64::MIN` while that holds of none.
    /// The host keeps the delivery tickets of the input until this passes it (so a restart reads
    /// that input again) and, after a restart, hands the instance only records after the time
    /// its output had been committed through. Null for a transform that holds nothing (what it
    /// emits during a call derives only from that call's input), and for sources and sinks.
    pub emitted_through: Option<unsafe extern "C-unwind" fn(handle: Handle) -> i64>,
}

/// What the entry symbol returns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginDescriptor {
    /// [`ABI_MAJOR`] the plugin was built against.
    pub abi_major: u32,
    /// [`ABI_MINOR`] the plugin was built against.
    pub abi_minor: u32,
    /// `size_of::<PluginDescriptor>()` as the plugin knows it.
    pub struct_size: usize,
    /// Plugin name (the `<plugin>` in `type = "<plugin>.<component>"`).
    pub name: Str,
    /// Plugin version.
    pub version: Str,
    /// Component table.
    pub components: *const ComponentVTable,
    /// Number of components.
    pub components_len: usize,
    /// ABI 1.2: `components_len` [`ComponentExtension`]s, or null for none.
    pub extensions: *const ComponentExtension,
}

// The descriptor and its tables are immutable statics shared by every thread.
unsafe impl Sync for PluginDescriptor {}
unsafe impl Sync for ComponentVTable {}
unsafe impl Sync for OptionDesc {}
unsafe impl Sync for ComponentExtension {}
unsafe impl Send for Str {}
unsafe impl Sync for Str {}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn value_layout_is_tag_then_eight_byte_payload() {
        assert_eq!(size_of::<Value>(), 16);
        assert_eq!(align_of::<Value>(), 8);
    }

    #[test]
    fn static_strings_round_trip() {
        let s = Str::from_static("héllo");
        // SAFETY: points into a 'static str.
        assert_eq!(unsafe { s.as_bytes() }, "héllo".as_bytes());
        // SAFETY: an empty Str is never dereferenced.
        assert_eq!(unsafe { Str::new("").as_bytes() }, b"");
    }
}
