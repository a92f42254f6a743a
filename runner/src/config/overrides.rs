//! Command-line edits of a pipeline: `--set KEY=VALUE` grafts a value onto the parsed document
//! at a dotted key path (a table value replaces the whole table there), `--unset KEY` removes
//! the key or table at a path.

use super::diagnostic::{Diagnostic, Origin};
use super::node::{Entry, Node, NodeValue, from_value};
use std::sync::Arc;
use toml::de::DeValue;

/// One command-line edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// `--set KEY=VALUE`.
    Set(String),
    /// `--unset KEY`.
    Unset(String),
}

impl Edit {
    /// Applies the edit to `root`.
    pub fn apply(&self, root: &mut Node) -> Result<(), Diagnostic> {
        match self {
            Edit::Set(arg) => apply(root, arg),
            Edit::Unset(key) => unset(root, key),
        }
    }
}

/// Removes the key or table at the dotted path `key`; a path that is not there is an error
/// that lists what is there.
pub fn unset(root: &mut Node, key: &str) -> Result<(), Diagnostic> {
    let origin = Origin::Unset(Arc::from(key));
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(Diagnostic::error(origin, key, "empty segment in key path")
            .with_hint("keys are dotted, like sinks.dashboard"));
    }
    let (last, parents) = path.split_last().expect("split never yields nothing");
    let mut table = root;
    for (depth, segment) in parents.iter().enumerate() {
        let NodeValue::Table(entries) = &mut table.value else {
            let at = path[..depth].join(".");
            return Err(Diagnostic::error(
                origin,
                key,
                format!("`{at}` is not a table"),
            ));
        };
        let Some(i) = entries.iter().position(|e| e.key == *segment) else {
            return Err(missing(&origin, key, &path[..=depth], entries));
        };
        table = &mut entries[i].node;
    }
    let NodeValue::Table(entries) = &mut table.value else {
        return Err(Diagnostic::error(
            origin,
            key,
            format!("`{}` is not a table", parents.join(".")),
        ));
    };
    match entries.iter().position(|e| e.key == *last) {
        Some(i) => {
            entries.remove(i);
            Ok(())
        }
        None => Err(missing(&origin, key, &path, entries)),
    }
}

/// "nothing at `a.b` to unset", with the keys that are there.
fn missing(origin: &Origin, key: &str, at: &[&str], entries: &[Entry]) -> Diagnostic {
    let there: Vec<String> = entries.iter().map(|e| format!("`{}`", e.key)).collect();
    let diagnostic = Diagnostic::error(
        origin.clone(),
        key,
        format!("nothing at `{}` to unset", at.join(".")),
    );
    if there.is_empty() {
        diagnostic
    } else {
        diagnostic.with_hint(format!("keys there: {}", there.join(", ")))
    }
}

/// Applies one `KEY=VALUE` argument to `root`. The value is parsed as a TOML value when it is one
/// (`10`, `"max"`, `[1, 2]`, `{ a = 1 }`); otherwise it is taken as a plain string (`file`).
pub fn apply(root: &mut Node, arg: &str) -> Result<(), Diagnostic> {
    let origin = Origin::Override(Arc::from(arg));
    let Some((key, raw)) = arg.split_once('=') else {
        return Err(Diagnostic::error(origin, "", "expected KEY=VALUE")
            .with_hint("for example --set sources.user_log.rate=100"));
    };
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(Diagnostic::error(origin, key, "empty segment in key path")
            .with_hint("keys are dotted, like sinks.out.format"));
    }
    let node = parse_value(raw.trim(), &origin, key.trim())?;
    set(root, &path, node, &origin, key.trim())
}

/// `raw` as a TOML value, or as a plain string when it is not one — except that a value that
/// opens a table or a list (`{`, `[`) must be a whole one: its TOML error is reported, with the
/// column, instead of the text being taken as a string.
fn parse_value(raw: &str, origin: &Origin, key: &str) -> Result<Node, Diagnostic> {
    match DeValue::parse(raw) {
        Ok(value) => Ok(from_value(value.get_ref(), 0, &|_| origin.clone())),
        Err(e) if raw.starts_with('{') || raw.starts_with('[') => {
            let column = e.span().map_or(String::new(), |span| {
                format!(" (column {} of the value)", span.start + 1)
            });
            Err(Diagnostic::error(
                origin.clone(),
                key,
                format!(
                    "the value is not valid TOML: {}{column}",
                    e.message().trim()
                ),
            )
            .with_hint("a table is written { key = \"text\", n = 1 }, a list [\"a\", \"b\"]"))
        }
        Err(_) => Ok(Node {
            origin: origin.clone(),
            value: NodeValue::Str(raw.to_string()),
        }),
    }
}

fn set(
    table: &mut Node,
    path: &[&str],
    value: Node,
    origin: &Origin,
    key: &str,
) -> Result<(), Diagnostic> {
    let type_name = table.value.type_name();
    let NodeValue::Table(entries) = &mut table.value else {
        return Err(Diagnostic::error(
            origin.clone(),
            key,
            format!("cannot set a key below a value of type {type_name}"),
        ));
    };
    let (first, rest) = path.split_first().expect("path is never empty");
    let position = entries.iter().position(|e| e.key == *first);
    if rest.is_empty() {
        match position {
            Some(i) => entries[i].node = value,
            None => entries.push(Entry {
                key: first.to_string(),
                key_origin: origin.clone(),
                node: value,
            }),
        }
        return Ok(());
    }
    let i = match position {
        Some(i) => i,
        None => {
            entries.push(Entry {
                key: first.to_string(),
                key_origin: origin.clone(),
                node: Node::empty_table(origin.clone()),
            });
            entries.len() - 1
        }
    };
    set(&mut entries[i].node, rest, value, origin, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_document_for_tests as parse;

    #[test]
    fn replaces_adds_and_parses_values() {
        let mut root = parse("[sources.a]\ntype = \"csv\"\nrate = 10\n");
        apply(&mut root, "sources.a.rate=\"max\"").unwrap();
        apply(&mut root, "sinks.f.type=file").unwrap();
        apply(&mut root, "sinks.f.inputs=[\"a\"]").unwrap();
        let a = root.get("sources").unwrap().get("a").unwrap();
        assert_eq!(a.get("rate").unwrap().as_str(), Some("max"));
        assert_eq!(
            a.get("rate").unwrap().origin,
            Origin::Override("sources.a.rate=\"max\"".into())
        );
        let f = root.get("sinks").unwrap().get("f").unwrap();
        assert_eq!(f.get("type").unwrap().as_str(), Some("file"));
        assert!(matches!(&f.get("inputs").unwrap().value, NodeValue::Array(v) if v.len() == 1));
    }

    #[test]
    fn unset_removes_a_table_and_set_replaces_one_whole() {
        let mut root = parse(
            "[sinks.dashboard]\ntype = \"socketio\"\nlisten = \"x\"\n[sinks.keep]\ntype = \"file\"\n",
        );
        Edit::Set("sinks.keep={ type = \"console\" }".into())
            .apply(&mut root)
            .unwrap();
        let keep = root.get("sinks").unwrap().get("keep").unwrap();
        assert_eq!(keep.get("type").unwrap().as_str(), Some("console"));
        Edit::Unset("sinks.dashboard".into())
            .apply(&mut root)
            .unwrap();
        assert!(root.get("sinks").unwrap().get("dashboard").is_none());
        let again = Edit::Unset("sinks.dashboard".into())
            .apply(&mut root)
            .unwrap_err();
        assert!(
            again.message.contains("nothing at `sinks.dashboard`"),
            "{again:?}"
        );
        assert!(again.hint.as_deref().unwrap().contains("`keep`"));
        let deeper = unset(&mut root, "sinks.keep.type.x").unwrap_err();
        assert!(
            deeper.message.contains("`sinks.keep.type` is not a table"),
            "{deeper:?}"
        );
        assert_eq!(
            format!("{}", again.origin),
            "--unset sinks.dashboard",
            "errors name the argument"
        );
    }

    #[test]
    fn rejects_malformed_arguments() {
        let mut root = parse("a = 1");
        assert!(
            apply(&mut root, "novalue")
                .unwrap_err()
                .message
                .contains("KEY=VALUE")
        );
        assert!(
            apply(&mut root, "a.b=2")
                .unwrap_err()
                .message
                .contains("below a value of type integer")
        );
        assert!(
            apply(&mut root, "x..y=2")
                .unwrap_err()
                .message
                .contains("empty segment")
        );
    }
}
