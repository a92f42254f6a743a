//! Loading plugin libraries: open with libloading, find the entry symbol, check the ABI version
//! and the descriptor, and keep the library loaded for the rest of the process (a stage from it
//! may run at any time, so it is never unloaded).

use crate::stage::{OptionDoc, StageKind};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use weir_plugin_abi::{
    ABI_MAJOR, ABI_MINOR, ComponentVTable, ENTRY_SYMBOL, EntryFn, Kind, PluginDescriptor, Str,
};

/// A loaded plugin library.
#[derive(Debug)]
pub struct Plugin {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Its name (the `<plugin>` in `type = "<plugin>.<component>"`).
    pub name: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The ABI version it was built against.
    pub abi: (u32, u32),
    /// What it offers.
    pub components: Vec<Component>,
}

/// One component a plugin offers.
pub struct Component {
    /// Role.
    pub kind: StageKind,
    /// Name within the plugin.
    pub name: &'static str,
    /// One line on what it does.
    pub description: &'static str,
    /// Its options.
    pub options: Vec<OptionDoc>,
    /// Its entry points.
    pub vtable: &'static ComponentVTable,
    /// For a transform that keeps state (ABI 1.2): how far its output goes.
    pub emitted_through: Option<unsafe extern "C-unwind" fn(weir_plugin_abi::Handle) -> i64>,
}

/// Why a library could not be used as a plugin (the messages leave out the library's path:
/// callers put it in front).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The path cannot be resolved.
    #[error("cannot open: {0}")]
    Open(String),
    /// The loader refused it (not a library, missing dependency); the loader's message and its
    /// causes.
    #[error("cannot load: {0}")]
    Load(String),
    /// An ELF file for another machine.
    #[error(
        "cannot load: built for {built_for}, but this weir runs on {runs_on}; build the plugin for this machine"
    )]
    ForeignArchitecture {
        /// What the file's header says, e.g. `aarch64 (64-bit ELF, machine 183)`.
        built_for: String,
        /// This process's architecture, e.g. `x86_64 (64-bit)`.
        runs_on: String,
    },
    /// It loaded, but has no entry symbol: some other shared library.
    #[error(
        "not a weir plugin: it has no `weir_plugin_descriptor` symbol (was it built with weir_plugin::export_plugin!?)"
    )]
    NotAPlugin,
    /// A plugin, but its descriptor cannot be used.
    #[error(transparent)]
    Descriptor(#[from] DescriptorError),
}

/// What is wrong with a plugin's descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The entry function returned no descriptor.
    #[error("its `weir_plugin_descriptor` returned null")]
    Null,
    /// Built for another major ABI version.
    #[error(
        "built for plugin ABI {major}.{minor}, but this weir speaks ABI {ABI_MAJOR}.x; rebuild the plugin against a matching weir-plugin"
    )]
    OtherMajor {
        /// The plugin's ABI major version.
        major: u32,
        /// The plugin's ABI minor version.
        minor: u32,
    },
    /// Needs a newer minor ABI version than this weir has.
    #[error(
        "needs plugin ABI {major}.{minor}, newer than this weir's {ABI_MAJOR}.{ABI_MINOR}; upgrade weir"
    )]
    NewerMinor {
        /// The plugin's ABI major version.
        major: u32,
        /// The plugin's ABI minor version.
        minor: u32,
    },
    /// The descriptor struct is smaller than this ABI's.
    #[error("descriptor is {size} bytes, expected at least {expected}")]
    Short {
        /// Its size.
        size: usize,
        /// The size this weir expects.
        expected: usize,
    },
    /// The plugin's name cannot prefix its stage types.
    #[error("plugin name `{0}` must be non-empty and have no `.`")]
    BadName(String),
    /// A component of a kind this weir does not know.
    #[error("component has unknown kind {0}")]
    UnknownKind(u32),
    /// A descriptor string is not UTF-8.
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Loads `path` once per process; later calls return the same plugin.
pub fn load(path: &Path) -> Result<Arc<Plugin>, LoadError> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Plugin>>>> = OnceLock::new();
    let key = path
        .canonicalize()
        .map_err(|e| LoadError::Open(e.to_string()))?;
    let mut loaded = LOADED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(plugin) = loaded.get(&key) {
        return Ok(Arc::clone(plugin));
    }
    let plugin = Arc::new(open(path)?);
    loaded.insert(key, Arc::clone(&plugin));
    Ok(plugin)
}

fn open(path: &Path) -> Result<Plugin, LoadError> {
    // SAFETY: loading a library runs its initialisers; plugins are code the user chose to run.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| {
        foreign_architecture(path).unwrap_or_else(|| LoadError::Load(with_causes(&e)))
    })?;
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry =
        unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) }.map_err(|_| LoadError::NotAPlugin)?;
    let described = describe(path, entry).map_err(LoadError::from);
    // Never unloaded, even when unusable: a library's initialisers have run, and unloading Rust
    // libraries is not reliably safe.
    std::mem::forget(library);
    described
}

/// When `path` is an ELF file for another machine, says so (the loader's own message for this
/// can be as unhelpful as "No such file or directory").
fn foreign_architecture(path: &Path) -> Option<LoadError> {
    let mut header = [0u8; 20];
    std::io::Read::read_exact(&mut std::fs::File::open(path).ok()?, &mut header).ok()?;
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    let name = |machine: u16| match machine {
        3 => "x86",
        40 => "arm",
        62 => "x86_64",
        183 => "aarch64",
        243 => "riscv",
        _ => "another machine",
    };
    let bits = if header[4] == 1 { 32 } else { 64 };
    let machine = u16::from_le_bytes([header[18], header[19]]);
    let ours = match std::env::consts::ARCH {
        "x86" => 3,
        "arm" => 40,
        "x86_64" => 62,
        "aarch64" => 183,
        "riscv64" => 243,
        _ => return None,
    };
    let our_bits = if cfg!(target_pointer_width = "64") {
        64
    } else {
        32
    };
    (machine != ours || bits != our_bits).then(|| LoadError::ForeignArchitecture {
        built_for: format!("{} ({bits}-bit ELF, machine {machine})", name(machine)),
        runs_on: format!("{} ({our_bits}-bit)", std::env::consts::ARCH),
    })
}

/// An error and its sources, e.g. "dlopen failed: ...: wrong ELF class: ELFCLASS32".
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads and checks the descriptor behind `entry`.
fn describe(
    path: &Path,
    entry: libloading::Symbol<'_, EntryFn>,
) -> Result<Plugin, DescriptorError> {
    // SAFETY: the entry function takes nothing and returns a pointer to a static descriptor.
    let descriptor = unsafe { entry() };
    // SAFETY: static in a library that is never unloaded (`open` forgets it).
    unsafe { read_descriptor(path, descriptor) }
}

/// Reads and checks a plugin descriptor: ABI version, struct size, names (UTF-8, a plugin name
/// without `.`), component kinds and option tables.
///
/// # Safety
///
/// `descriptor` is null or points to a descriptor whose tables and strings hold as many entries
/// and bytes as it says, and stay valid and unchanged as long as the returned plugin is used (in
/// a loaded library, its statics: for the rest of the process).
pub unsafe fn read_descriptor(
    path: &Path,
    descriptor: *const PluginDescriptor,
) -> Result<Plugin, DescriptorError> {
    if descriptor.is_null() {
        return Err(DescriptorError::Null);
    }
    // A plugin of an older minor has a shorter descriptor: copy the part it has (its
    // `struct_size`, which every version has at the same place, says how long) and leave the
    // fields it does not know zero (null).
    // SAFETY: non-null and valid for as long as the plugin is used (the caller's promise); the
    // fields before `struct_size` and `struct_size` itself exist in every version.
    let size = unsafe { std::ptr::addr_of!((*descriptor).struct_size).read() };
    let copied = size.min(std::mem::size_of::<PluginDescriptor>());
    // SAFETY: all-zero bytes are a valid descriptor (null pointers, zero lengths, no functions).
    let mut local: PluginDescriptor = unsafe { std::mem::zeroed() };
    // SAFETY: the plugin's descriptor has `size` readable bytes; `local` has room for `copied`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            descriptor.cast::<u8>(),
            (&raw mut local).cast::<u8>(),
            copied,
        );
    }
    let descriptor = &local;
    check_version(descriptor)?;
    let name = text(descriptor.name, "plugin name")?;
    if name.is_empty() || name.contains('.') {
        return Err(DescriptorError::BadName(name.to_string()));
    }
    let extensions = extensions_of(descriptor);
    let components = (0..descriptor.components_len)
        .map(|i| {
            // SAFETY: the descriptor's table has `components_len` entries.
            let vtable: &'static ComponentVTable = unsafe { &*descriptor.components.add(i) };
            // SAFETY: a non-null extension table has `components_len` entries.
            let extension = extensions.map(|table| unsafe { table.add(i) });
            component(vtable, extension)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Plugin {
        path: path.to_path_buf(),
        name,
        version: text(descriptor.version, "plugin version")?,
        abi: (descriptor.abi_major, descriptor.abi_minor),
        components,
    })
}

/// The size of the descriptor of ABI minor `minor`: 1.0 and 1.1 end before `extensions`.
fn descriptor_size(minor: u32) -> usize {
    if minor < 2 {
        std::mem::offset_of!(PluginDescriptor, extensions)
    } else {
        std::mem::size_of::<PluginDescriptor>()
    }
}

/// The component extensions of a 1.2 (or later) descriptor, if it has a table.
fn extensions_of(
    descriptor: &PluginDescriptor,
) -> Option<*const weir_plugin_abi::ComponentExtension> {
    if descriptor.abi_minor < 2 || descriptor.struct_size < descriptor_size(2) {
        return None;
    }
    let table = descriptor.extensions;
    (!table.is_null()).then_some(table)
}

fn check_version(d: &PluginDescriptor) -> Result<(), DescriptorError> {
    let (major, minor) = (d.abi_major, d.abi_minor);
    if major != ABI_MAJOR {
        return Err(DescriptorError::OtherMajor { major, minor });
    }
    if minor > ABI_MINOR {
        return Err(DescriptorError::NewerMinor { major, minor });
    }
    let expected = descriptor_size(minor);
    if d.struct_size < expected {
        return Err(DescriptorError::Short {
            size: d.struct_size,
            expected,
        });
    }
    Ok(())
}

fn component(
    vtable: &'static ComponentVTable,
    extension: Option<*const weir_plugin_abi::ComponentExtension>,
) -> Result<Component, DescriptorError> {
    let kind = match vtable.kind {
        Kind::SOURCE => StageKind::Source,
        Kind::TRANSFORM => StageKind::Transform,
        Kind::SINK => StageKind::Sink,
        Kind(other) => return Err(DescriptorError::UnknownKind(other)),
    };
    let options = (0..vtable.options_len)
        .map(|i| {
            // SAFETY: the table has `options_len` entries.
            let o = unsafe { &*vtable.options.add(i) };
            Ok(OptionDoc {
                name: text(o.name, "option name")?,
                ty: text(o.ty, "option type")?,
                default: text(o.default, "option default")?,
                doc: text(o.doc, "option doc")?,
            })
        })
        .collect::<Result<Vec<_>, DescriptorError>>()?;
    let emitted_through = extension.and_then(|extension| {
        // SAFETY: an entry of the plugin's static extension table; `struct_size` comes first in
        // every version and says whether `emitted_through` is there.
        let size = unsafe { std::ptr::addr_of!((*extension).struct_size).read() };
        let has_field = size
            >= std::mem::offset_of!(weir_plugin_abi::ComponentExtension, emitted_through)
                + std::mem::size_of::<usize>();
        // SAFETY: as above, the field is within the entry.
        let f =
            has_field.then(|| unsafe { std::ptr::addr_of!((*extension).emitted_through).read() });
        f.flatten()
    });
    Ok(Component {
        kind,
        name: text(vtable.name, "component name")?,
        description: text(vtable.description, "component description")?,
        options,
        vtable,
        // Only transforms hold input.
        emitted_through: emitted_through.filter(|_| kind == StageKind::Transform),
    })
}

/// A descriptor string as `&'static str`.
fn text(s: Str, what: &'static str) -> Result<&'static str, DescriptorError> {
    // SAFETY: descriptor strings are static data of a library that is never unloaded.
    let bytes: &'static [u8] = unsafe { s.as_bytes() };
    std::str::from_utf8(bytes).map_err(|_| DescriptorError::NotUtf8(what))
}

/// The plugin files named by `path`: the file itself, or every shared library in a directory.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == std::env::consts::DLL_EXTENSION)
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_plugin_abi::{ComponentExtension, Handle};

    /// The descriptor as ABI 1.1 laid it out: everything before `extensions`.
    #[repr(C)]
    struct DescriptorV11 {
        abi_major: u32,
        abi_minor: u32,
        struct_size: usize,
        name: Str,
        version: Str,
        components: *const ComponentVTable,
        components_len: usize,
    }

    unsafe extern "C-unwind" fn seven(_: Handle) -> i64 {
        7
    }

    /// A transform vtable of the test's own making (every entry a no-op).
    fn vtable() -> ComponentVTable {
        unsafe extern "C-unwind" fn ok(_: Str, _: *const HostApi, _: *mut c_void) -> Status {
            Status::OK
        }
        unsafe extern "C-unwind" fn create(
            _: Str,
            _: *const HostApi,
            _: *mut c_void,
            _: *mut Handle,
        ) -> Status {
            Status::ERROR
        }
        unsafe extern "C-unwind" fn batch(
            _: Handle,
            _: *const weir_plugin_abi::BatchView,
            _: *const HostApi,
            _: *mut c_void,
        ) -> Status {
            Status::OK
        }
        unsafe extern "C-unwind" fn poll(
            _: Handle,
            _: usize,
            _: *const HostApi,
            _: *mut c_void,
        ) -> Status {
            Status::FINISHED
        }
        unsafe extern "C-unwind" fn call(_: Handle, _: *const HostApi, _: *mut c_void) -> Status {
            Status::OK
        }
        unsafe extern "C-unwind" fn destroy(_: Handle) {}
        static VTABLE: ComponentVTable = ComponentVTable {
            kind: Kind::TRANSFORM,
            name: Str::from_static("t"),
            description: Str::from_static("test"),
            options: std::ptr::null(),
            options_len: 0,
            validate: ok,
            create,
            process: batch,
            poll,
            tick: call,
            tick_interval_millis: 0,
            finish: call,
            destroy,
        };
        VTABLE
    }

    use std::ffi::c_void;
    use weir_plugin_abi::{HostApi, Status};

    #[test]
    fn a_1_1_plugin_with_the_shorter_descriptor_loads_without_state() {
        let components = [vtable()];
        let old = DescriptorV11 {
            abi_major: 1,
            abi_minor: 1,
            struct_size: std::mem::size_of::<DescriptorV11>(),
            name: Str::from_static("old"),
            version: Str::from_static("0.1.0"),
            components: components.as_ptr(),
            components_len: 1,
        };
        // SAFETY: a descriptor of the 1.1 layout whose tables outlive the plugin read here.
        let plugin = unsafe {
            read_descriptor(
                Path::new("old.so"),
                (&raw const old).cast::<PluginDescriptor>(),
            )
        }
        .unwrap();
        assert_eq!(plugin.abi, (1, 1));
        assert!(plugin.components[0].emitted_through.is_none());
    }

    #[test]
    fn a_1_2_plugin_says_which_transforms_keep_state() {
        let components = [vtable()];
        let extensions = [ComponentExtension {
            struct_size: std::mem::size_of::<ComponentExtension>(),
            emitted_through: Some(seven),
        }];
        let descriptor = PluginDescriptor {
            abi_major: 1,
            abi_minor: 2,
            struct_size: std::mem::size_of::<PluginDescriptor>(),
            name: Str::from_static("new"),
            version: Str::from_static("0.2.0"),
            components: components.as_ptr(),
            components_len: 1,
            extensions: extensions.as_ptr(),
        };
        // SAFETY: the descriptor and its tables outlive the plugin read here.
        let plugin =
            unsafe { read_descriptor(Path::new("new.so"), &raw const descriptor) }.unwrap();
        let through = plugin.components[0].emitted_through.expect("keeps state");
        // SAFETY: the test's function ignores its handle.
        assert_eq!(unsafe { through(std::ptr::null_mut()) }, 7);
        // A 1.2 descriptor cut short of its extension table is refused as such.
        let short = PluginDescriptor {
            struct_size: std::mem::offset_of!(PluginDescriptor, extensions),
            ..descriptor
        };
        // SAFETY: as above.
        let refused = unsafe { read_descriptor(Path::new("short.so"), &raw const short) };
        assert!(matches!(refused, Err(DescriptorError::Short { .. })));
    }
}
