//! Write `weir` stage plugins in safe Rust.
//!
//! Implement [`Component`] plus one of [`Transform`], [`Sink`] or [`Source`] for a type, give it a
//! serde `Config`, and export the plugin with one line:
//!
//! ```ignore
//! weir_plugin::export_plugin!(name: "shop", version: env!("CARGO_PKG_VERSION"),
//!                             components: [transform(Label), sink(CsvAppend)]);
//! ```
//!
//! The SDK does the C ABI work: it parses the TOML config the host passes (reporting errors with
//! their position so the host can point at the pipeline file), catches every panic and turns it
//! into the stage's error, and copies nothing it does not have to. See `plugins/README.md`.

mod batch;
mod glue;
mod host;

pub use batch::{Batch, BatchBuilder, Field};
pub use host::Host;
pub use weir_plugin_abi as abi;
pub use weir_plugin_abi::LogLevel;

#[doc(hidden)]
pub use glue::{extension, sink, source, transform};

use serde::de::DeserializeOwned;
use weir_plugin_abi::{OptionDesc, Str};

/// What every plugin component has: a name, docs, options, a config and a constructor.
pub trait Component: Sized + Send + 'static {
    /// The component's name within the plugin (`type = "<plugin>.<NAME>"`).
    const NAME: &'static str;
    /// One line on what it does.
    const DESCRIPTION: &'static str;
    /// Its options (see [`option`]); the host rejects keys not listed here.
    const OPTIONS: &'static [OptionDesc];
    /// Its configuration, read from the component's table in the pipeline file.
    type Config: DeserializeOwned;

    /// Checks a config beyond what its type says (no I/O). Called by `weir validate` and before
    /// [`new`](Self::new).
    fn check(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Creates the component; may open files or connections.
    fn new(config: Self::Config, host: &mut Host) -> Result<Self, String>;
}

/// A stage that turns batches into batches.
pub trait Transform: Component {
    /// Milliseconds between calls to [`tick`](Self::tick); 0 for none.
    const TICK_INTERVAL_MILLIS: u64 = 0;

    /// True for a transform that keeps records and emits what it derives from them later (its
    /// own windows or sessions): then it says how far its output goes with
    /// [`emitted_through`](Self::emitted_through), and the host keeps the input's delivery
    /// tickets until then — exactly once through restarts, as for the built-in window. False
    /// (the default): what it emits during a call derives only from that call's input.
    const KEEPS_STATE: bool = false;

    /// For a transform that [keeps state](Self::KEEPS_STATE): every input record with an event
    /// time at or before this is wholly reflected in what it has emitted, and nothing it emits
    /// later derives from one (for a tumbling window: the end of the last window emitted, less
    /// one). `i64::MIN` while none is. After a restart the host hands it only later records.
    fn emitted_through(&self) -> i64 {
        i64::MIN
    }

    /// Handles one batch; emit output with [`Host::emit`].
    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String>;

    /// Time-driven work.
    fn tick(&mut self, _host: &mut Host) -> Result<(), String> {
        Ok(())
    }

    /// End of input: emit what is held.
    fn finish(&mut self, _host: &mut Host) -> Result<(), String> {
        Ok(())
    }
}

/// A stage that delivers batches out of the pipeline.
pub trait Sink: Component {
    /// Delivers one batch.
    fn write(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String>;

    /// End of input: flush and close.
    fn finish(&mut self, _host: &mut Host) -> Result<(), String> {
        Ok(())
    }
}

/// What a source's [`Source::poll`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// More may come.
    More,
    /// The source is exhausted.
    Finished,
}

/// A stage that produces batches.
pub trait Source: Component {
    /// Emits up to `max_rows` rows with [`Host::emit`] (blocking is fine), and says whether more
    /// will come.
    fn poll(&mut self, max_rows: usize, host: &mut Host) -> Result<Poll, String>;
}

/// Documents one option, for [`Component::OPTIONS`].
pub const fn option(
    name: &'static str,
    ty: &'static str,
    default: &'static str,
    doc: &'static str,
) -> OptionDesc {
    OptionDesc {
        name: Str::from_static(name),
        ty: Str::from_static(ty),
        default: Str::from_static(default),
        doc: Str::from_static(doc),
    }
}

/// Exports a plugin: the entry symbol, the descriptor and one vtable per component.
///
/// `components` lists `transform(Type)`, `sink(Type)` or `source(Type)` entries.
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, version: $version:expr, components: [$($kind:ident($ty:ty)),* $(,)?] $(,)?) => {
        static __WEIR_COMPONENTS: &[$crate::abi::ComponentVTable] = &[$($crate::$kind::<$ty>()),*];
        static __WEIR_EXTENSIONS: &[$crate::abi::ComponentExtension] =
            &[$($crate::extension::$kind::<$ty>()),*];

        static __WEIR_DESCRIPTOR: $crate::abi::PluginDescriptor = $crate::abi::PluginDescriptor {
            abi_major: $crate::abi::ABI_MAJOR,
            abi_minor: $crate::abi::ABI_MINOR,
            struct_size: ::core::mem::size_of::<$crate::abi::PluginDescriptor>(),
            name: $crate::abi::Str::from_static($name),
            version: $crate::abi::Str::from_static($version),
            components: __WEIR_COMPONENTS.as_ptr(),
            components_len: __WEIR_COMPONENTS.len(),
            extensions: __WEIR_EXTENSIONS.as_ptr(),
        };

        /// The plugin's entry point, found by the host with `dlsym`.
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_plugin_descriptor() -> *const $crate::abi::PluginDescriptor {
            &__WEIR_DESCRIPTOR
        }
    };
}
