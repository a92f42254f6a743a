//! `--set KEY=VALUE` overrides: graft a value onto the parsed document at a dotted key path.

use super::diagnostic::{Diagnostic, Origin};
use super::node::{Entry, Node, NodeValue, from_value};
use std::sync::Arc;
use toml::de::DeValue;

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
    let node = parse_value(raw.trim(), &origin);
    set(root, &path, node, &origin, key.trim())
}

fn parse_value(raw: &str, origin: &Origin) -> Node {
    match DeValue::parse(raw) {
        Ok(value) => from_value(value.get_ref(), 0, &|_| origin.clone()),
        Err(_) => Node {
            origin: origin.clone(),
            value: NodeValue::Str(raw.to_string()),
        },
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
