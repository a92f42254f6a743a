//! Stage plugins: shared libraries that offer stage types through the C ABI in
//! `plugins/abi`. A pipeline names them in `[plugins] paths = [...]` (files, or directories whose
//! shared libraries are all loaded) and uses their components as `type = "<plugin>.<component>"`;
//! `[plugins] sha256` pins libraries to their hashes (`pin`).
//! Loading (`library`), the host callbacks (`host`), the stage-type factory (`factory`) and the
//! engine adapters (`stages`) are the only places that know a stage is a plugin.

mod factory;
mod host;
pub mod library;
pub mod pin;
mod stages;

pub use factory::PluginFactory;

use crate::config::de::from_node;
use crate::config::{Diagnostic, Document};
use crate::registry::Registry;
use crate::stage::StageFactory;
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;

/// The `[plugins]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginsSection {
    #[serde(default)]
    paths: Vec<String>,
    /// Library path → the SHA-256 it must have.
    #[serde(default)]
    sha256: std::collections::BTreeMap<String, String>,
}

/// Loads the plugins `doc` names and registers their components. Returns every problem found.
pub fn register(doc: &Document, registry: &mut Registry) -> Vec<Diagnostic> {
    let Some(node) = doc.root.get("plugins") else {
        return Vec::new();
    };
    let section: PluginsSection = match from_node(node, "plugins") {
        Ok(section) => section,
        Err(errors) => return errors,
    };
    let mut errors = Vec::new();
    let pin_origin = |key: &str| {
        node.get("sha256")
            .and_then(|pins| pins.entry(key))
            .map_or_else(|| node.origin.clone(), |e| e.key_origin.clone())
    };
    let pinned: Vec<(String, String)> = section.sha256.into_iter().collect();
    let (mut pins, pin_errors) = pin::Pins::new(&pinned);
    for (key, e) in pin_errors {
        errors.push(Diagnostic::error(
            pin_origin(&key),
            format!("plugins.sha256.\"{key}\""),
            e.to_string(),
        ));
    }
    for (i, path) in section.paths.iter().enumerate() {
        let key = format!("plugins.paths[{i}]");
        let origin = node
            .find(&format!("paths[{i}]"))
            .map_or_else(|| node.origin.clone(), |n| n.origin.clone());
        let fail = |message: String| Diagnostic::error(origin.clone(), &key, message);
        let path = Path::new(path);
        if !path.exists() {
            errors.push(fail(format!("{} does not exist", path.display())).with_hint("build plugins with `cargo build --release --workspace`; relative paths are taken from the directory weir runs in"));
            continue;
        }
        let in_directory = path.is_dir();
        let files = match library::files(path) {
            Ok(files) => files,
            Err(e) => {
                errors.push(fail(format!("cannot list {}: {e}", path.display())));
                continue;
            }
        };
        for file in files {
            if let Err(e) = pins.check(&file) {
                errors.push(fail(format!("{}: {e}", file.display())));
                continue;
            }
            match library::load(&file) {
                Ok(plugin) => {
                    for index in 0..plugin.components.len() {
                        let factory = PluginFactory::new(Arc::clone(&plugin), index);
                        let (kind, name) = (factory.kind(), factory.type_name().to_string());
                        if registry.find(kind, &name).is_some() {
                            errors.push(fail(format!(
                                "{}: stage type `{name}` is already registered",
                                file.display()
                            )));
                        } else {
                            registry.register(Arc::new(factory));
                        }
                    }
                }
                Err(library::LoadError::NotAPlugin) if in_directory => {
                    tracing::debug!("{}: not a weir plugin; skipped", file.display());
                }
                Err(e) => errors.push(fail(format!("{}: {e}", file.display()))),
            }
        }
    }
    for key in pins.unmatched() {
        errors.push(
            Diagnostic::error(
                pin_origin(key),
                format!("plugins.sha256.\"{key}\""),
                format!("pins `{key}`, but no library in `paths` is that file"),
            )
            .with_hint("pin a library that `paths` loads, by the same path"),
        );
    }
    errors
}

/// `weir plugins`: what each library at `paths` offers, or why it cannot be loaded.
pub fn describe(paths: &[std::path::PathBuf]) -> (String, bool) {
    use std::fmt::Write;
    let mut out = String::new();
    let mut ok = true;
    for path in paths {
        let files = match library::files(path) {
            Ok(files) => files,
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "{}: error: cannot list it: {e}", path.display());
                continue;
            }
        };
        for file in files {
            match library::load(&file) {
                Ok(plugin) => out.push_str(&summary(&plugin)),
                Err(e) => {
                    ok = false;
                    let _ = writeln!(out, "{}: error: {e}", file.display());
                }
            }
        }
    }
    (out, ok)
}

/// What `weir plugins` prints for one loaded plugin: its file, name, version and ABI, then each
/// component with its options.
pub fn summary(plugin: &library::Plugin) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: plugin `{}` {} (ABI {}.{})",
        plugin.path.display(),
        plugin.name,
        plugin.version,
        plugin.abi.0,
        plugin.abi.1
    );
    for c in &plugin.components {
        let _ = writeln!(
            out,
            "  {:<9} {}.{:<14} {}",
            c.kind.noun(),
            plugin.name,
            c.name,
            c.description
        );
        for o in &c.options {
            let _ = writeln!(
                out,
                "      {:<14} {:<22} default {:<10} {}",
                o.name, o.ty, o.default, o.doc
            );
        }
    }
    out
}
