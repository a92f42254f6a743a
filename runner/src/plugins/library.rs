//! Loading plugin libraries: open with libloading, find the entry symbol, check the ABI version
//! and the descriptor, and keep the library loaded for the rest of the process (a stage from it
//! may run at any time, so it is never unloaded).

use crate::config::pipeline::StageKind;
use crate::registry::OptionDoc;
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
}

/// Why a library could not be used as a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// It loaded, but has no entry symbol: some other shared library.
    NotAPlugin(String),
    /// Anything else: not loadable (not a library, wrong architecture, missing dependency), or a
    /// plugin for another ABI, or a malformed descriptor.
    Unusable(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::NotAPlugin(m) | LoadError::Unusable(m) => f.write_str(m),
        }
    }
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
        .map_err(|e| LoadError::Unusable(format!("cannot open: {e}")))?;
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
        LoadError::Unusable(
            foreign_architecture(path)
                .unwrap_or_else(|| format!("cannot load: {}", with_causes(&e))),
        )
    })?;
    // SAFETY: the symbol's type is fixed by the ABI.
    let entry = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL) }.map_err(|_| {
        LoadError::NotAPlugin("not a weir plugin: it has no `weir_plugin_descriptor` symbol (was it built with weir_plugin::export_plugin!?)".into())
    })?;
    let described = describe(path, entry).map_err(LoadError::Unusable);
    // Never unloaded, even when unusable: a library's initialisers have run, and unloading Rust
    // libraries is not reliably safe.
    std::mem::forget(library);
    described
}

/// When `path` is an ELF file for another machine, says so (the loader's own message for this
/// can be as unhelpful as "No such file or directory").
fn foreign_architecture(path: &Path) -> Option<String> {
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
    (machine != ours || bits != our_bits).then(|| {
        format!(
            "cannot load: built for {} ({bits}-bit ELF, machine {machine}), but this weir runs on {} ({our_bits}-bit); build the plugin for this machine",
            name(machine),
            std::env::consts::ARCH
        )
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
fn describe(path: &Path, entry: libloading::Symbol<'_, EntryFn>) -> Result<Plugin, String> {
    // SAFETY: the entry function takes nothing and returns a pointer to a static descriptor.
    let descriptor = unsafe { entry() };
    if descriptor.is_null() {
        return Err("its `weir_plugin_descriptor` returned null".into());
    }
    // SAFETY: non-null, and static in a library that is never unloaded (`open` forgets it).
    let descriptor: &'static PluginDescriptor = unsafe { &*descriptor };
    check_version(descriptor)?;
    let name = text(descriptor.name, "plugin name")?;
    if name.is_empty() || name.contains('.') {
        return Err(format!(
            "plugin name `{name}` must be non-empty and have no `.`"
        ));
    }
    let components = (0..descriptor.components_len)
        .map(|i| {
            // SAFETY: the descriptor's table has `components_len` entries.
            let vtable: &'static ComponentVTable = unsafe { &*descriptor.components.add(i) };
            component(vtable)
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

fn check_version(d: &PluginDescriptor) -> Result<(), String> {
    if d.abi_major != ABI_MAJOR {
        return Err(format!(
            "built for plugin ABI {}.{}, but this weir speaks ABI {ABI_MAJOR}.x; rebuild the plugin against a matching weir-plugin",
            d.abi_major, d.abi_minor
        ));
    }
    if d.abi_minor > ABI_MINOR {
        return Err(format!(
            "needs plugin ABI {}.{}, newer than this weir's {ABI_MAJOR}.{ABI_MINOR}; upgrade weir",
            d.abi_major, d.abi_minor
        ));
    }
    if d.struct_size < std::mem::size_of::<PluginDescriptor>() {
        return Err(format!(
            "descriptor is {} bytes, expected at least {}",
            d.struct_size,
            std::mem::size_of::<PluginDescriptor>()
        ));
    }
    Ok(())
}

fn component(vtable: &'static ComponentVTable) -> Result<Component, String> {
    let kind = match vtable.kind {
        Kind::SOURCE => StageKind::Source,
        Kind::TRANSFORM => StageKind::Transform,
        Kind::SINK => StageKind::Sink,
        Kind(other) => return Err(format!("component has unknown kind {other}")),
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
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Component {
        kind,
        name: text(vtable.name, "component name")?,
        description: text(vtable.description, "component description")?,
        options,
        vtable,
    })
}

/// A descriptor string as `&'static str`.
fn text(s: Str, what: &str) -> Result<&'static str, String> {
    // SAFETY: descriptor strings are static data of a library that is never unloaded.
    let bytes: &'static [u8] = unsafe { s.as_bytes() };
    std::str::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))
}

/// The plugin files named by `path`: the file itself, or every shared library in a directory.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
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
