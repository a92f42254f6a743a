//! A plugin component as a stage type: the same [`StageFactory`] the built-ins implement. Option
//! errors are reported like a built-in's: unknown keys by the host (with "did you mean"), the
//! rest by the plugin's own config check, mapped back to file:line:col.

use super::host::{CallContext, HOST_API};
use super::library::{Component, Plugin};
use super::stages;
use crate::config::node::{Node, NodeValue};
use crate::config::{Diagnostic, did_you_mean};
use crate::stage::{
    BuildContext, Configured, OptionDoc, Stage, StageConfig, StageError, StageFactory, StageKind,
};
use std::ffi::c_void;
use std::fmt;
use std::sync::Arc;
use weir_plugin_abi::{Status, Str};

/// One component of a loaded plugin, registered as `<plugin>.<component>`.
pub struct PluginFactory {
    plugin: Arc<Plugin>,
    index: usize,
    type_name: String,
}

impl PluginFactory {
    /// The factory for component `index` of `plugin`.
    pub fn new(plugin: Arc<Plugin>, index: usize) -> Self {
        let type_name = format!("{}.{}", plugin.name, plugin.components[index].name);
        PluginFactory {
            plugin,
            index,
            type_name,
        }
    }

    fn component(&self) -> &Component {
        &self.plugin.components[self.index]
    }
}

impl StageFactory for PluginFactory {
    fn kind(&self) -> StageKind {
        self.component().kind
    }

    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn summary(&self) -> &str {
        self.component().description
    }

    fn options(&self) -> &[OptionDoc] {
        &self.component().options
    }

    fn configure(&self, options: &Node, path: &str) -> Result<Configured, Vec<Diagnostic>> {
        let component = self.component();
        let known = || component.options.iter().map(|o| o.name);
        let unknown: Vec<Diagnostic> = options
            .entries()
            .unwrap_or_default()
            .iter()
            .filter(|e| !known().any(|k| k == e.key))
            .map(|e| {
                let hint = did_you_mean(&e.key, known()).unwrap_or_else(|| {
                    format!(
                        "known keys here: {}",
                        known()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
                Diagnostic::error(
                    e.key_origin.clone(),
                    format!("{path}.{}", e.key),
                    format!("unknown key `{}`", e.key),
                )
                .with_hint(hint)
            })
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let config = ConfigText::from_options(options);
        let mut out = Vec::new();
        let mut schema = None;
        let mut cx = CallContext::new(path, &mut out, &mut schema, None);
        // SAFETY: the text and context outlive the call; `validate` may not keep them.
        let status = unsafe {
            (component.vtable.validate)(
                Str::new(&config.text),
                &HOST_API,
                (&raw mut cx).cast::<c_void>(),
            )
        };
        if status == Status::OK {
            return Ok(Configured {
                config: Box::new(PluginConfig {
                    plugin: Arc::clone(&self.plugin),
                    index: self.index,
                    text: config.text,
                }),
                warnings: Vec::new(),
            });
        }
        let mut errors: Vec<Diagnostic> = cx
            .errors
            .iter()
            .map(|(offset, message)| {
                let (key, node) = config
                    .key_at(*offset)
                    .and_then(|k| options.get(k).map(|n| (Some(k), n)))
                    .unwrap_or((None, options));
                let key_path = key.map_or_else(|| path.to_string(), |k| format!("{path}.{k}"));
                Diagnostic::error(node.origin.clone(), key_path, message.clone())
            })
            .collect();
        if errors.is_empty() {
            errors.push(Diagnostic::error(
                options.origin.clone(),
                path,
                format!("the plugin rejected the options ({status:?})"),
            ));
        }
        Err(errors)
    }
}

/// A component's options as the TOML text handed to the plugin, one top-level key per line,
/// with where each key's line starts (to map the plugin's error offsets back to keys).
struct ConfigText {
    text: String,
    lines: Vec<(usize, String)>,
}

impl ConfigText {
    fn from_options(options: &Node) -> ConfigText {
        let mut text = String::new();
        let mut lines = Vec::new();
        for entry in options.entries().unwrap_or_default() {
            lines.push((text.len(), entry.key.clone()));
            text.push_str(&toml_key(&entry.key));
            text.push_str(" = ");
            write_toml(&entry.node, &mut text);
            text.push('\n');
        }
        ConfigText { text, lines }
    }

    /// The key whose line holds byte `offset`; `None` for offsets before the first value (errors
    /// about the table as a whole, such as a missing key).
    fn key_at(&self, offset: i64) -> Option<&str> {
        if offset <= 0 {
            return None;
        }
        self.lines
            .iter()
            .rev()
            .find(|(start, _)| *start as i64 <= offset)
            .map(|(_, key)| key.as_str())
    }
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        toml_string(key)
    }
}

/// A TOML basic string (JSON's escapes are all valid TOML escapes).
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

fn write_toml(node: &Node, out: &mut String) {
    match &node.value {
        NodeValue::Str(s) => out.push_str(&toml_string(s)),
        NodeValue::Int(i) => out.push_str(&i.to_string()),
        NodeValue::Float(f) if f.is_nan() => out.push_str("nan"),
        NodeValue::Float(f) if f.is_infinite() => {
            out.push_str(if *f > 0.0 { "inf" } else { "-inf" })
        }
        NodeValue::Float(f) => out.push_str(&format!("{f:?}")),
        NodeValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        NodeValue::Datetime(d) => out.push_str(d),
        NodeValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_toml(item, out);
            }
            out.push(']');
        }
        NodeValue::Table(entries) => {
            out.push('{');
            for (i, e) in entries.iter().enumerate() {
                out.push_str(if i == 0 { " " } else { ", " });
                out.push_str(&toml_key(&e.key));
                out.push_str(" = ");
                write_toml(&e.node, out);
            }
            out.push_str(" }");
        }
    }
}

/// A plugin component's checked options, ready to create the stage.
pub struct PluginConfig {
    plugin: Arc<Plugin>,
    index: usize,
    text: String,
}

impl fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PluginConfig({}.{})",
            self.plugin.name, self.plugin.components[self.index].name
        )
    }
}

impl StageConfig for PluginConfig {
    fn keeps_state(&self) -> bool {
        self.plugin.components[self.index].emitted_through.is_some()
    }

    fn marks_progress(&self) -> bool {
        self.keeps_state()
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let component = &self.plugin.components[self.index];
        stages::create(component, &self.plugin.path, &self.text, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_document_for_tests;

    #[test]
    fn options_become_toml_the_plugin_can_parse_and_offsets_map_back() {
        let node = parse_document_for_tests(
            "path = \"a \\\"b\\\".csv\"\nrows = 5\nratio = 0.5\nlabels = { 0 = \"f\", \"x y\" = \"m\" }\nlist = [1, 2]",
        );
        let config = ConfigText::from_options(&node);
        let parsed: toml::Table = toml::from_str(&config.text).unwrap();
        assert_eq!(parsed["path"].as_str(), Some("a \"b\".csv"));
        assert_eq!(parsed["rows"].as_integer(), Some(5));
        assert_eq!(parsed["ratio"].as_float(), Some(0.5));
        assert_eq!(parsed["labels"]["x y"].as_str(), Some("m"));
        assert_eq!(parsed["list"].as_array().map(Vec::len), Some(2));
        let rows_value = config.text.find("5").unwrap() as i64;
        assert_eq!(config.key_at(rows_value), Some("rows"));
        assert_eq!(config.key_at(0), None);
    }
}
