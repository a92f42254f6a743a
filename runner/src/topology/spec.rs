//! The pipeline's components as declared: `[sources.ID]`, `[transforms.ID]` and `[sinks.ID]`
//! tables, each with a `type` and (for transforms and sinks) `inputs`. What each type's other
//! keys mean is up to the stage type (its factory in the registry); the graph is checked in
//! `plan`.

use crate::config::{Diagnostic, Document, Node, NodeValue, Origin, SourceFile, did_you_mean};
use crate::stage::StageKind;
use std::sync::Arc;

/// One declared component.
#[derive(Clone, Debug)]
pub struct ComponentSpec {
    /// The component's id (the `ID` in `[sources.ID]`).
    pub id: String,
    /// Its role.
    pub kind: StageKind,
    /// Its key path, e.g. `transforms.per_second`.
    pub path: String,
    /// Where the component's table is.
    pub origin: Origin,
    /// Its stage type name.
    pub type_name: String,
    /// Where `type` is.
    pub type_origin: Origin,
    /// Components it reads from.
    pub inputs: Vec<InputRef>,
    /// Its table without `type` and `inputs`: the options the stage type interprets.
    pub options: Node,
}

/// One entry of an `inputs` list.
#[derive(Clone, Debug)]
pub struct InputRef {
    /// The id named.
    pub id: String,
    /// Where it is written.
    pub origin: Origin,
    /// Its key path, e.g. `sinks.out.inputs[0]`.
    pub path: String,
}

/// All components of a pipeline document.
#[derive(Debug)]
pub struct PipelineSpec {
    /// The pipeline file.
    pub file: Arc<SourceFile>,
    /// Components in declaration order, sources first, then transforms, then sinks.
    pub components: Vec<ComponentSpec>,
}

/// Top-level tables a pipeline file may have (`plugins` is read by the `plugins` module; `kafka`
/// holds keys that every Kafka stage inherits).
pub const SECTIONS: [&str; 6] = [
    "sources",
    "transforms",
    "sinks",
    "plugins",
    "kafka",
    "tests",
];

impl PipelineSpec {
    /// Reads the component tables of `doc`. Components with structural errors are left out and
    /// their errors returned alongside.
    pub fn from_document(doc: &Document) -> (PipelineSpec, Vec<Diagnostic>) {
        let mut errors = Vec::new();
        let mut components: Vec<ComponentSpec> = Vec::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        let root_entries = doc.root.entries().unwrap_or_default();
        for entry in root_entries {
            if !SECTIONS.contains(&entry.key.as_str()) {
                errors.push(
                    Diagnostic::error(entry.key_origin.clone(), &entry.key, format!("unknown top-level table `{}`", entry.key))
                        .with_hint(did_you_mean(&entry.key, SECTIONS).unwrap_or_else(|| "a pipeline has `[sources.ID]`, `[transforms.ID]` and `[sinks.ID]` tables".into())),
                );
            }
        }
        for kind in StageKind::ALL {
            let Some(section) = doc.root.entry(kind.section()) else {
                continue;
            };
            let Some(entries) = section.node.entries() else {
                errors.push(not_a_table(
                    &section.node,
                    kind.section(),
                    "components, like [sources.my_id]",
                ));
                continue;
            };
            for entry in entries {
                let path = format!("{}.{}", kind.section(), entry.key);
                if let Some((_, other)) = seen.iter().find(|(id, _)| *id == entry.key) {
                    errors.push(
                        Diagnostic::error(
                            entry.key_origin.clone(),
                            &path,
                            format!("component id `{}` is already used by {other}", entry.key),
                        )
                        .with_hint("ids must be unique across sources, transforms and sinks"),
                    );
                    continue;
                }
                if let Some(bad) = entry
                    .key
                    .chars()
                    .find(|c| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
                {
                    errors.push(
                        Diagnostic::error(
                            entry.key_origin.clone(),
                            &path,
                            format!("component id `{}` has the character `{bad}`", entry.key),
                        )
                        .with_hint("use letters, digits, `_` and `-`"),
                    );
                    continue;
                }
                seen.push((entry.key.clone(), path.clone()));
                match component(kind, &entry.key, &path, &entry.node) {
                    Ok(c) => components.push(c),
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        let spec = PipelineSpec {
            file: Arc::clone(&doc.file),
            components,
        };
        (spec, errors)
    }

    /// The component with `id`.
    pub fn component(&self, id: &str) -> Option<&ComponentSpec> {
        self.components.iter().find(|c| c.id == id)
    }
}

fn not_a_table(node: &Node, path: &str, what: &str) -> Diagnostic {
    Diagnostic::error(
        node.origin.clone(),
        path,
        format!(
            "expected a table of {what}, found {}",
            node.value.type_name()
        ),
    )
}

fn component(
    kind: StageKind,
    id: &str,
    path: &str,
    node: &Node,
) -> Result<ComponentSpec, Vec<Diagnostic>> {
    if node.entries().is_none() {
        return Err(vec![not_a_table(node, path, "options")]);
    }
    let mut errors = Vec::new();
    let type_entry = node.entry("type");
    let type_name = match type_entry.map(|e| &e.node.value) {
        Some(NodeValue::Str(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(Diagnostic::error(
                node.get("type").unwrap().origin.clone(),
                format!("{path}.type"),
                format!("expected a string, found {}", other.type_name()),
            ));
            None
        }
        None => {
            errors.push(
                Diagnostic::error(
                    node.origin.clone(),
                    format!("{path}.type"),
                    "missing required key `type`",
                )
                .with_hint("`weir list` shows every stage type"),
            );
            None
        }
    };
    let inputs = match (kind, node.entry("inputs")) {
        (StageKind::Source, Some(e)) => {
            errors.push(
                Diagnostic::error(
                    e.key_origin.clone(),
                    format!("{path}.inputs"),
                    "a source has no inputs",
                )
                .with_hint("make it a transform or a sink, or remove `inputs`"),
            );
            Vec::new()
        }
        (StageKind::Source, None) => Vec::new(),
        (_, None) => {
            errors.push(
                Diagnostic::error(
                    node.origin.clone(),
                    format!("{path}.inputs"),
                    "missing required key `inputs`",
                )
                .with_hint(format!(
                    "a {kind} needs `inputs = [\"<id>\", ...]` naming what it reads"
                )),
            );
            Vec::new()
        }
        (_, Some(e)) => match input_list(&e.node, &format!("{path}.inputs")) {
            Ok(list) => list,
            Err(mut e) => {
                errors.append(&mut e);
                Vec::new()
            }
        },
    };
    match type_name {
        Some(type_name) if errors.is_empty() => Ok(ComponentSpec {
            id: id.to_string(),
            kind,
            path: path.to_string(),
            origin: node.origin.clone(),
            type_name,
            type_origin: type_entry
                .map(|e| e.node.origin.clone())
                .unwrap_or(Origin::Builtin),
            inputs,
            options: node.filtered(|k| k != "type" && k != "inputs"),
        }),
        _ => Err(errors),
    }
}

fn input_list(node: &Node, path: &str) -> Result<Vec<InputRef>, Vec<Diagnostic>> {
    let NodeValue::Array(items) = &node.value else {
        return Err(vec![
            Diagnostic::error(
                node.origin.clone(),
                path,
                format!(
                    "expected an array of component ids, found {}",
                    node.value.type_name()
                ),
            )
            .with_hint("write inputs = [\"my_source\"]"),
        ]);
    };
    if items.is_empty() {
        return Err(vec![
            Diagnostic::error(node.origin.clone(), path, "`inputs` is empty")
                .with_hint("name at least one component to read from"),
        ]);
    }
    let mut errors = Vec::new();
    let mut list = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        match item.as_str() {
            Some(id) => list.push(InputRef {
                id: id.to_string(),
                origin: item.origin.clone(),
                path: item_path,
            }),
            None => errors.push(Diagnostic::error(
                item.origin.clone(),
                item_path,
                format!(
                    "expected a component id (string), found {}",
                    item.value.type_name()
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(list)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_text;

    fn spec(text: &str) -> (PipelineSpec, Vec<String>) {
        let doc = parse_text("p.toml", text.into(), &[], |_| None).unwrap();
        let (spec, errors) = PipelineSpec::from_document(&doc);
        (spec, errors.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn reads_components_in_order_with_options() {
        let (spec, errors) = spec(
            "[sinks.out]\ntype = \"console\"\ninputs = [\"w\"]\n[sources.src]\ntype = \"csv\"\npath = \"x\"\n[transforms.w]\ntype = \"window\"\ninputs = [\"src\"]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let ids: Vec<&str> = spec.components.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["src", "w", "out"]);
        assert_eq!(spec.components[0].options.entries().unwrap().len(), 1);
        assert_eq!(spec.components[2].inputs[0].id, "w");
        assert_eq!(spec.components[2].inputs[0].path, "sinks.out.inputs[0]");
    }

    #[test]
    fn structural_errors_are_all_reported() {
        let (spec, errors) = spec(
            "[source.x]\ntype = \"csv\"\n[sources.a]\npath = \"x\"\n[sources.b]\ntype = \"csv\"\ninputs = [\"a\"]\n[sinks.c]\ntype = \"console\"\n[sinks.a]\ntype = \"console\"\ninputs = [1]\n",
        );
        assert!(spec.components.is_empty());
        let expected = [
            "p.toml:1:2: error: source: unknown top-level table `source`\n  hint: did you mean `sources`?",
            "p.toml:3:1: error: sources.a.type: missing required key `type`",
            "p.toml:7:1: error: sources.b.inputs: a source has no inputs",
            "p.toml:8:1: error: sinks.c.inputs: missing required key `inputs`",
            "p.toml:10:8: error: sinks.a: component id `a` is already used by sources.a",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (got, want) in errors.iter().zip(expected) {
            assert!(got.starts_with(want), "got {got:?}, want {want:?}");
        }
    }
}
