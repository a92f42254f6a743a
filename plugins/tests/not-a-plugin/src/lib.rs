//! A shared library that is not a weir plugin: it exports something, but not the entry symbol.

/// Some unrelated exported function.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_plugin_answer() -> i32 {
    42
}
