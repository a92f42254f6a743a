//! Test plugin that claims the next major ABI version; the host must refuse it by name.

use weir_plugin_abi::{ABI_MAJOR, PluginDescriptor, Str};

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    abi_major: ABI_MAJOR + 1,
    abi_minor: 0,
    struct_size: std::mem::size_of::<PluginDescriptor>(),
    name: Str::from_static("future"),
    version: Str::from_static("9.0.0"),
    components: std::ptr::null(),
    components_len: 0,
    extensions: std::ptr::null(),
};

/// The entry point, with a descriptor from the future.
#[unsafe(no_mangle)]
pub extern "C" fn weir_plugin_descriptor() -> *const PluginDescriptor {
    &DESCRIPTOR
}
