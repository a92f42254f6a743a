//! The plugin descriptor reader, as `weir plugins` and every `[plugins]` load run it: ABI
//! versions, struct size, names, component kinds and option tables come from the input; the
//! component entry points are a real (do-nothing) transform's. The descriptor's memory is laid
//! out as a library would (tables and strings that say how long they are); what the input
//! controls is every value in them, including strings that are not UTF-8.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use weir::plugins::library::read_descriptor;
use weir_plugin::abi::{ComponentVTable, Kind, OptionDesc, PluginDescriptor, Str};
use weir_plugin::{Batch, Component, Host, Transform};

struct Nothing;

impl Component for Nothing {
    const NAME: &'static str = "nothing";
    const DESCRIPTION: &'static str = "does nothing";
    const OPTIONS: &'static [OptionDesc] = &[];
    type Config = toml::Table;

    fn new(_: Self::Config, _: &mut Host) -> Result<Self, String> {
        Ok(Nothing)
    }
}

impl Transform for Nothing {
    fn process(&mut self, _: &Batch<'_>, _: &mut Host) -> Result<(), String> {
        Ok(())
    }
}

/// Reads the input front to back; an exhausted input reads as zeros and empty strings.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    /// A string of up to 31 bytes, as the input has them.
    fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.byte() % 32).min(self.0.len());
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        text
    }
}

fn str_of(bytes: &[u8]) -> Str {
    Str {
        ptr: bytes.as_ptr(),
        len: bytes.len(),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let abi_major = [weir_plugin::abi::ABI_MAJOR, 0, 2, u32::MAX][usize::from(input.byte() % 4)];
    let abi_minor = [weir_plugin::abi::ABI_MINOR, 0, 7, u32::MAX][usize::from(input.byte() % 4)];
    let size = std::mem::size_of::<PluginDescriptor>();
    let struct_size = [size, 0, size - 1, usize::MAX][usize::from(input.byte() % 4)];
    let name = input.bytes();
    let version = input.bytes();
    // Every table and string lives in these vectors until the plugin read from them is dropped.
    let components_len = usize::from(input.byte() % 4);
    let mut options: Vec<Vec<OptionDesc>> = Vec::new();
    let mut heads = Vec::new();
    for _ in 0..components_len {
        let kind = Kind(u32::from(input.byte() % 5));
        let (name, description) = (input.bytes(), input.bytes());
        let table: Vec<OptionDesc> = (0..input.byte() % 4)
            .map(|_| OptionDesc {
                name: str_of(input.bytes()),
                ty: str_of(input.bytes()),
                default: str_of(input.bytes()),
                doc: str_of(input.bytes()),
            })
            .collect();
        options.push(table);
        heads.push((kind, name, description));
    }
    let components: Vec<ComponentVTable> = heads
        .iter()
        .zip(&options)
        .map(|((kind, name, description), table)| ComponentVTable {
            kind: *kind,
            name: str_of(name),
            description: str_of(description),
            options: table.as_ptr(),
            options_len: table.len(),
            ..weir_plugin::transform::<Nothing>()
        })
        .collect();
    let descriptor = PluginDescriptor {
        abi_major,
        abi_minor,
        struct_size,
        name: str_of(name),
        version: str_of(version),
        components: components.as_ptr(),
        components_len: components.len(),
        extensions: std::ptr::null(),
    };
    // SAFETY: every table and string above outlives `plugin`, which is dropped in this scope.
    let read = unsafe { read_descriptor(Path::new("fuzz.so"), &raw const descriptor) };
    if let Ok(plugin) = read {
        let text = weir::plugins::summary(&plugin);
        assert!(text.contains(plugin.name));
    }
});
