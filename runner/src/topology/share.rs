//! Windows over a topic shared by a consumer group (docs/scaling.md): every `window` that reads a
//! `kafka` source with `assignment = "group"` is split, before the components are configured,
//! into the two halves that let N processes of the same pipeline file count together:
//!
//! ```text
//! source (with_origin) → ID__partial (window, part = "partial") → ID__partials_out (kafka sink)
//!                         ID__partials_in (kafka source, group) → ID (window, part = "merge") → …
//! ```
//!
//! The partials topic (`<source group>.<ID>.partials`, one partition) carries each member's
//! per-partition partial results; whichever member the group gives that partition merges them.
//! The merging half keeps the window's id, so its consumers, `weir graph` and the progress marks
//! are unchanged. Shared windows need exactly-once writes (the default): a partial and the input
//! offsets it covers are committed together, so each is merged once.

use crate::config::node::Entry;
use crate::config::{Diagnostic, Document, Node, NodeValue, Origin};
use crate::stage::StageKind;
use crate::topology::spec::{ComponentSpec, InputRef, PipelineSpec};
use crate::transforms::window::PARTIAL_FIELDS;

/// Splits every window that reads a consumer-group source; returns the problems that prevent it.
pub fn split_shared_windows(doc: &Document, spec: &mut PipelineSpec) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let kafka_defaults = doc.root.get("kafka");
    let setting = |c: &ComponentSpec, key: &str| -> Option<String> {
        c.options
            .get(key)
            .or_else(|| kafka_defaults.and_then(|k| k.get(key)))
            .and_then(Node::as_str)
            .map(str::to_string)
    };
    let is_group_source = |c: &ComponentSpec| {
        c.kind == StageKind::Source
            && c.type_name == "kafka"
            && setting(c, "assignment").as_deref() == Some("group")
    };
    let windows: Vec<usize> = (0..spec.components.len())
        .filter(|&i| {
            let c = &spec.components[i];
            c.kind == StageKind::Transform
                && c.type_name == "window"
                && c.options.get("part").is_none()
                && c.inputs
                    .iter()
                    .any(|input| spec.component(&input.id).is_some_and(&is_group_source))
        })
        .collect();
    for index in windows {
        let window = spec.components[index].clone();
        let sources: Vec<ComponentSpec> = window
            .inputs
            .iter()
            .filter_map(|input| spec.component(&input.id).cloned())
            .collect();
        if let Some(other) = sources.iter().find(|s| !is_group_source(s)) {
            errors.push(
                Diagnostic::error(
                    window.origin.clone(),
                    &window.path,
                    format!(
                        "`{}` reads a consumer-group source and `{}`; a window shared by a \
                         group reads only kafka sources with `assignment = \"group\"`",
                        window.id, other.id
                    ),
                )
                .with_hint("give the other input its own window, or join the group with it too"),
            );
            continue;
        }
        if let Some(at_least_once) = sources
            .iter()
            .find(|s| setting(s, "guarantee").as_deref() == Some("at-least-once"))
        {
            errors.push(
                Diagnostic::error(
                    window.origin.clone(),
                    &window.path,
                    format!(
                        "`{}` keeps state across records, but `{}` reads only the partitions its \
                         consumer group gives this process; merging the members' partial windows \
                         needs exactly-once writes",
                        window.id, at_least_once.id
                    ),
                )
                .with_hint(
                    "remove `guarantee = \"at-least-once\"` (exactly once is the default), or run \
                     one process with `assignment = \"all\"`",
                ),
            );
            continue;
        }
        let names = Names::of(&window.id);
        if let Some(taken) = [&names.partial, &names.out, &names.input]
            .into_iter()
            .find(|id| spec.component(id).is_some())
        {
            errors.push(Diagnostic::error(
                window.origin.clone(),
                &window.path,
                format!(
                    "`{}` is shared by a consumer group and needs the component id `{taken}`, \
                     which is taken",
                    window.id
                ),
            ));
            continue;
        }
        let first = &sources[0];
        let group = setting(first, "group_id").unwrap_or_else(|| format!("weir.{}", first.path));
        let topic = format!("{group}.{}.partials", window.id);
        let origin = window.origin.clone();
        let node = |value: NodeValue| Node {
            origin: origin.clone(),
            value,
        };
        let text = |s: &str| node(NodeValue::Str(s.to_string()));
        // Connection settings written on the source itself (not in [kafka]) go with it.
        let connection: Vec<Entry> = first
            .options
            .entries()
            .unwrap_or_default()
            .iter()
            .filter(|e| CONNECTION_KEYS.contains(&e.key.as_str()))
            .cloned()
            .collect();
        let entry = |key: &str, value: Node| Entry {
            key: key.to_string(),
            key_origin: origin.clone(),
            node: value,
        };
        for source in &sources {
            if let Some(c) = spec.components.iter_mut().find(|c| c.id == source.id) {
                set(
                    &mut c.options,
                    entry("with_origin", node(NodeValue::Bool(true))),
                );
            }
        }
        let fields: Vec<Node> = ["window_start", "window_end"]
            .into_iter()
            .chain(PARTIAL_FIELDS)
            .map(str::to_string)
            .chain(string_list(window.options.get("group_by")))
            .chain(aggregate_names(window.options.get("aggregates")))
            .map(|f| text(&f))
            .collect();
        let mut partial_options = window.options.clone();
        set(&mut partial_options, entry("part", text("partial")));
        let mut sink_options = table(&connection);
        for (key, value) in [
            ("topic", text(&topic)),
            ("codec", text("json")),
            ("create_topic", node(NodeValue::Bool(true))),
            ("partitions", node(NodeValue::Int(1))),
        ] {
            set(&mut sink_options, entry(key, value));
        }
        let mut source_options = table(&connection);
        for (key, value) in [
            ("topic", text(&topic)),
            ("codec", text("json")),
            ("fields", node(NodeValue::Array(fields))),
            ("assignment", text("group")),
            ("with_origin", node(NodeValue::Bool(true))),
            ("create_topic", node(NodeValue::Bool(true))),
            ("partitions", node(NodeValue::Int(1))),
        ] {
            set(&mut source_options, entry(key, value));
        }
        let input = |id: &str, path: &str| InputRef {
            id: id.to_string(),
            origin: origin.clone(),
            path: format!("{path}.inputs[0]"),
        };
        let generated =
            |kind: StageKind, id: &str, type_name: &str, inputs, options| ComponentSpec {
                id: id.to_string(),
                kind,
                path: format!("{}.{id}", kind.section()),
                origin: origin.clone(),
                type_name: type_name.to_string(),
                type_origin: origin.clone(),
                inputs,
                options,
            };
        let out_path = format!("sinks.{}", names.out);
        let partial = generated(
            StageKind::Transform,
            &names.partial,
            "window",
            window.inputs.clone(),
            partial_options,
        );
        let out = generated(
            StageKind::Sink,
            &names.out,
            "kafka",
            vec![input(&names.partial, &out_path)],
            sink_options,
        );
        let from_partials = generated(
            StageKind::Source,
            &names.input,
            "kafka",
            Vec::new(),
            source_options,
        );
        let merge = &mut spec.components[index];
        set(&mut merge.options, entry("part", text("merge")));
        merge.inputs = vec![input(&names.input, &merge.path.clone())];
        spec.components.insert(index, partial);
        let sources_end = spec
            .components
            .iter()
            .position(|c| c.kind != StageKind::Source)
            .unwrap_or(spec.components.len());
        spec.components.insert(sources_end, from_partials);
        spec.components.push(out);
    }
    errors
}

/// Source keys about the connection that the generated partials sink and source copy.
const CONNECTION_KEYS: [&str; 8] = [
    "brokers",
    "embedded",
    "options",
    "connect_timeout",
    "guarantee",
    "transactional_id",
    "commit_interval",
    "replication_factor",
];

/// The ids of the generated components of window `id`.
struct Names {
    partial: String,
    out: String,
    input: String,
}

impl Names {
    fn of(id: &str) -> Names {
        Names {
            partial: format!("{id}__partial"),
            out: format!("{id}__partials_out"),
            input: format!("{id}__partials_in"),
        }
    }
}

fn table(entries: &[Entry]) -> Node {
    let origin = entries
        .first()
        .map_or(Origin::Override("generated".into()), |e| {
            e.key_origin.clone()
        });
    Node {
        origin,
        value: NodeValue::Table(entries.to_vec()),
    }
}

/// Sets `entry` in `table` (replacing a value of the same key).
fn set(table: &mut Node, entry: Entry) {
    if let NodeValue::Table(entries) = &mut table.value {
        match entries.iter_mut().find(|e| e.key == entry.key) {
            Some(existing) => *existing = entry,
            None => entries.push(entry),
        }
    }
}

fn string_list(node: Option<&Node>) -> Vec<String> {
    match node.map(|n| &n.value) {
        Some(NodeValue::Array(items)) => items
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The output names of a window's `aggregates` (default: one `count`), as the window names them.
fn aggregate_names(node: Option<&Node>) -> Vec<String> {
    let Some(NodeValue::Array(items)) = node.map(|n| &n.value) else {
        return vec!["count".to_string()];
    };
    items
        .iter()
        .filter_map(|item| {
            let named = |key: &str| item.get(key).and_then(Node::as_str);
            match (named("as"), named("op"), named("field")) {
                (Some(name), _, _) => Some(name.to_string()),
                (None, Some(op), None) => Some(op.to_string()),
                (None, Some(op), Some(field)) => Some(format!("{op}_{field}")),
                (None, None, _) => None,
            }
        })
        .collect()
}
