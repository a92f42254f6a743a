//! Which fields each stage's records have, as far as the pipeline file says (a csv source's
//! `columns`, a Kafka source's codec fields, a select's `keep` and `compute`, a window's groups
//! and aggregates), and the check of
//! the field names expressions read against them: a misspelt field would read as null and
//! silently change what a filter keeps, so `weir validate` reports it at its place in the
//! expression, with the closest name. Where a stage's input fields are not known before records
//! flow (a plugin, a csv header), nothing is checked.

use crate::config::{Diagnostic, Diagnostics, NodeValue, did_you_mean};
use crate::stage::{StageConfig, union_of_fields};
use crate::topology::spec::PipelineSpec;

/// Checks every expression's field names against the fields its stage's inputs are known to
/// have. `configs` and `inputs` are per component of `spec`; the graph has no cycle.
pub fn check_fields_read(
    spec: &PipelineSpec,
    configs: &[Option<Box<dyn StageConfig>>],
    inputs: &[Vec<usize>],
    diagnostics: &mut Diagnostics,
) {
    let mut known: Vec<Option<Option<Vec<String>>>> = vec![None; configs.len()];
    for (i, config) in configs.iter().enumerate() {
        let Some(config) = config else { continue };
        let reads = config.fields_read();
        if reads.is_empty() {
            continue;
        }
        let from: Vec<Option<Vec<String>>> = inputs[i]
            .iter()
            .map(|&input| fields_of(input, configs, inputs, &mut known))
            .collect();
        let component = &spec.components[i];
        for read in reads {
            // A field read from one input is looked for there; any other among all of them.
            let (available, read_from) = match read.input {
                Some(port) if port < from.len() => (from[port].clone(), &inputs[i][port..port + 1]),
                Some(_) => continue,
                None => (union_of_fields(&from), &inputs[i][..]),
            };
            let Some(available) = available else {
                continue;
            };
            if available.contains(&read.name) {
                continue;
            }
            let origin = match component.options.find(&read.key) {
                Some(node) => match &node.value {
                    NodeValue::Str(text) => node.origin.within_string(text, read.at),
                    _ => node.origin.clone(),
                },
                None => component.options.origin.clone(),
            };
            let hint = did_you_mean(&read.name, available.iter().map(String::as_str))
                .unwrap_or_else(|| format!("its input has {}", available.join(", ")));
            diagnostics.push(
                Diagnostic::error(
                    origin,
                    format!("{}.{}", component.path, read.key),
                    format!(
                        "no field `{}` in the records of {}",
                        read.name,
                        read_from
                            .iter()
                            .map(|&s| spec.components[s].id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_hint(hint),
            );
        }
    }
}

/// The fields of component `i`'s records, if known (memoised in `known`).
fn fields_of(
    i: usize,
    configs: &[Option<Box<dyn StageConfig>>],
    inputs: &[Vec<usize>],
    known: &mut Vec<Option<Option<Vec<String>>>>,
) -> Option<Vec<String>> {
    if let Some(fields) = &known[i] {
        return fields.clone();
    }
    let from: Vec<Option<Vec<String>>> = inputs[i]
        .iter()
        .map(|&input| fields_of(input, configs, inputs, known))
        .collect();
    let fields = configs[i].as_ref().and_then(|c| c.output_fields(&from));
    known[i] = Some(fields.clone());
    fields
}
