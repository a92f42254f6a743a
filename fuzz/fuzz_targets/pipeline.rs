//! The pipeline file: `${VAR}` substitution, TOML with spans, command-line edits (the lines
//! after a NUL byte: `--set` arguments, and `--unset` ones where the line starts with `!`), then the whole check `weir validate` runs (component types, every stage's
//! options, inputs, the graph, windows shared by consumer groups). A `[plugins]` table is left
//! out: loading a library named by the input would run arbitrary code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static REGISTRY: OnceLock<weir::registry::Registry> = OnceLock::new();
    let registry = REGISTRY.get_or_init(weir::builtins::registry);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (text, overrides) = text.split_once('\0').unwrap_or((text, ""));
    let overrides: Vec<weir::config::Edit> = overrides
        .lines()
        .map(|line| match line.strip_prefix('!') {
            Some(key) => weir::config::Edit::Unset(key.to_string()),
            None => weir::config::Edit::Set(line.to_string()),
        })
        .collect();
    let lookup = |name: &str| (name == "FUZZ").then(|| "value".to_string());
    let Ok(doc) = weir::config::parse_text("fuzz.toml", text.to_string(), &overrides, lookup)
    else {
        return;
    };
    if doc.root.get("plugins").is_some() {
        return;
    }
    let _ = weir::topology::plan::plan(&doc, registry);
});
