//! Planning: loads the plugin libraries the document names, resolves every component's `type` in
//! the registry, checks its options, resolves `inputs` and checks the graph (dangling inputs,
//! cycles, no sources or sinks). Loading a plugin library runs its initialisers and its entry
//! function, which returns the descriptor; no stage is created and nothing else is opened or
//! connected, so `weir validate` and `weir graph` touch no data, broker or port.

use crate::config::{Diagnostic, Diagnostics, Document, Node, Origin, SourceFile, did_you_mean};
use crate::registry::Registry;
use crate::stage::{StageConfig, StageKind};
use crate::topology::spec::{ComponentSpec, PipelineSpec};
use std::sync::Arc;

/// A checked pipeline, ready to build and run.
#[derive(Debug)]
pub struct Plan {
    /// The pipeline file.
    pub file: Arc<SourceFile>,
    /// Stages in declaration order (sources, transforms, sinks).
    pub stages: Vec<PlannedStage>,
    /// The run ignores the progress earlier runs committed and starts every source over
    /// (`weir run --reset`; see `resume`).
    pub start_over: bool,
}

/// One checked component.
#[derive(Debug)]
pub struct PlannedStage {
    /// Component id.
    pub id: String,
    /// Key path, e.g. `sinks.out`.
    pub path: String,
    /// Role.
    pub kind: StageKind,
    /// Stage type.
    pub type_name: String,
    /// Positions in [`Plan::stages`] of the stages it reads from.
    pub inputs: Vec<usize>,
    /// Its checked options.
    pub config: Box<dyn StageConfig>,
    /// Its type, options (with what it inherits) and inputs as text: equal for components that
    /// would be built the same (a reload keeps such a component running).
    pub fingerprint: String,
    /// For an errors stream (`X.errors`, see `errors`): the position of the stage whose
    /// rejected records it carries.
    pub errors_of: Option<usize>,
}

impl Plan {
    /// The ids of stage `index`'s inputs, in order (`BuildContext::inputs`).
    pub fn input_ids(&self, index: usize) -> Vec<String> {
        self.stages[index]
            .inputs
            .iter()
            .filter_map(|&i| self.stages.get(i).map(|s| s.id.clone()))
            .collect()
    }

    /// The pipeline's name: its file name without the extension, e.g. `shopping_gender`
    /// (`BuildContext::pipeline`).
    pub fn pipeline_name(&self) -> String {
        std::path::Path::new(&self.file.path)
            .file_stem()
            .map_or_else(
                || "pipeline".to_string(),
                |s| s.to_string_lossy().into_owned(),
            )
    }

    /// Positions of the stages that read from stage `index`.
    pub fn consumers(&self, index: usize) -> Vec<usize> {
        (0..self.stages.len())
            .filter(|&i| self.stages[i].inputs.contains(&index))
            .collect()
    }
}

/// Checks `doc` against `registry`. Returns the plan when there are no errors, and every
/// diagnostic (errors and warnings) found.
pub fn plan(doc: &Document, registry: &Registry) -> (Option<Plan>, Diagnostics) {
    let mut registry = registry.clone();
    let plugin_errors = crate::plugins::register(doc, &mut registry);
    let registry = &registry;
    let (mut spec, structure_errors) = PipelineSpec::from_document(doc);
    let mut diagnostics = Diagnostics(plugin_errors);
    diagnostics.0.extend(structure_errors);
    diagnostics
        .0
        .extend(super::share::split_shared_windows(doc, &mut spec));
    let error_streams = super::errors::add_error_streams(&mut spec);
    let errors_of = |i: usize| {
        error_streams
            .iter()
            .find(|(s, _)| *s == i)
            .map(|(_, of)| *of)
    };
    let mut configs = Vec::with_capacity(spec.components.len());
    let mut fingerprints = Vec::with_capacity(spec.components.len());
    for (i, component) in spec.components.iter().enumerate() {
        let (config, options) = match errors_of(i) {
            Some(of) => {
                let config: Box<dyn StageConfig> = Box::new(super::errors::ErrorStreamConfig {
                    of_path: spec.components[of].path.clone(),
                });
                (Some(config), component.options.clone())
            }
            None => configure(doc, component, registry, &mut diagnostics),
        };
        configs.push(config);
        let inputs: Vec<&str> = component.inputs.iter().map(|i| i.id.as_str()).collect();
        fingerprints.push(format!(
            "{} {} inputs={:?} {}",
            component.kind.noun(),
            component.type_name,
            inputs,
            options.canonical()
        ));
    }
    let inputs: Vec<Vec<usize>> = spec
        .components
        .iter()
        .map(|c| resolve_inputs(c, &spec, &mut diagnostics))
        .collect();
    // An errors stream is fed by its stage, which matters for cycles (`t` reading `t.errors`).
    let mut flows = inputs.clone();
    for &(stream, of) in &error_streams {
        flows[stream].push(of);
    }
    check_graph(&spec, &inputs, &flows, &mut diagnostics);
    check_input_counts(&spec, &configs, &mut diagnostics);
    if !diagnostics.has_errors() {
        check_shares(&spec, &configs, &inputs, &mut diagnostics);
        super::fields::check_fields_read(&spec, &configs, &inputs, &mut diagnostics);
        super::mark_paths::check_mark_paths(&spec, &configs, &inputs, &mut diagnostics);
    }
    if diagnostics.has_errors() {
        return (None, diagnostics);
    }
    let stages = spec
        .components
        .into_iter()
        .zip(configs)
        .zip(inputs)
        .zip(fingerprints)
        .enumerate()
        .map(|(i, (((c, config), inputs), fingerprint))| PlannedStage {
            id: c.id,
            path: c.path,
            kind: c.kind,
            type_name: c.type_name,
            inputs,
            config: config.expect("no errors means every component configured"),
            fingerprint,
            errors_of: errors_of(i),
        })
        .collect();
    (
        Some(Plan {
            file: spec.file,
            stages,
            start_over: false,
        }),
        diagnostics,
    )
}

/// The component's config (or its errors in `diagnostics`), and its options as configured
/// (with what it inherits).
fn configure(
    doc: &Document,
    c: &ComponentSpec,
    registry: &Registry,
    diagnostics: &mut Diagnostics,
) -> (Option<Box<dyn StageConfig>>, Node) {
    let Some(factory) = registry.find(c.kind, &c.type_name) else {
        diagnostics.push(registry.unknown_type(
            c.kind,
            &c.type_name,
            c.type_origin.clone(),
            &format!("{}.type", c.path),
        ));
        return (None, c.options.clone());
    };
    let options = factory
        .inherits()
        .and_then(|section| doc.root.get(section))
        .map_or_else(
            || c.options.clone(),
            |defaults| c.options.with_defaults(defaults),
        );
    match factory.configure(&options, &c.path) {
        Ok(configured) => {
            diagnostics.0.extend(configured.warnings);
            (Some(configured.config), options)
        }
        Err(errors) => {
            diagnostics.0.extend(errors);
            (None, options)
        }
    }
}

/// A stage that reads a fixed number of inputs (a join: two) is given that many.
fn check_input_counts(
    spec: &PipelineSpec,
    configs: &[Option<Box<dyn StageConfig>>],
    diagnostics: &mut Diagnostics,
) {
    for (component, config) in spec.components.iter().zip(configs) {
        let Some((expected, roles)) = config.as_deref().and_then(|c| c.inputs_expected()) else {
            continue;
        };
        let given = component.inputs.len();
        if given == expected {
            continue;
        }
        let origin = component
            .inputs
            .first()
            .map_or_else(|| component.origin.clone(), |input| input.origin.clone());
        diagnostics.push(
            Diagnostic::error(
                origin,
                format!("{}.inputs", component.path),
                format!(
                    "a `{}` reads {expected} inputs, {given} given",
                    component.type_name
                ),
            )
            .with_hint(roles),
        );
    }
}

fn resolve_inputs(
    c: &ComponentSpec,
    spec: &PipelineSpec,
    diagnostics: &mut Diagnostics,
) -> Vec<usize> {
    let mut resolved = Vec::new();
    for input in &c.inputs {
        let found = spec.components.iter().position(|o| o.id == input.id);
        let error = |message: String| Diagnostic::error(input.origin.clone(), &input.path, message);
        match found {
            None => {
                let readable = spec
                    .components
                    .iter()
                    .filter(|o| o.kind != StageKind::Sink)
                    .map(|o| o.id.as_str());
                let hint = did_you_mean(&input.id, readable)
                    .unwrap_or_else(|| "inputs name sources or transforms of this pipeline".into());
                diagnostics.push(
                    error(format!("no component `{}` to read from", input.id)).with_hint(hint),
                );
            }
            Some(i) if spec.components[i].kind == StageKind::Sink => {
                diagnostics.push(error(format!(
                    "`{}` is a sink; sinks have no output to read",
                    input.id
                )));
            }
            Some(i) if spec.components[i].id == c.id => {
                diagnostics.push(
                    error(format!("`{}` reads its own output", c.id))
                        .with_hint("a stage cannot be its own input"),
                );
            }
            Some(i) if resolved.contains(&i) => {
                diagnostics.push(error(format!("`{}` is listed twice", input.id)));
            }
            Some(i) => resolved.push(i),
        }
    }
    resolved
}

/// Checks the graph: sources and sinks exist, no cycle (in `flows`: each stage's inputs, and for
/// an errors stream the stage it carries), every output is read (`inputs`).
fn check_graph(
    spec: &PipelineSpec,
    inputs: &[Vec<usize>],
    flows: &[Vec<usize>],
    diagnostics: &mut Diagnostics,
) {
    let file_origin = Origin::File {
        file: Arc::clone(&spec.file),
        offset: 0,
    };
    let has = |kind| spec.components.iter().any(|c| c.kind == kind);
    let errors_so_far = diagnostics.has_errors();
    if !has(StageKind::Source) && !errors_so_far {
        diagnostics.push(
            Diagnostic::error(
                file_origin.clone(),
                "sources",
                "the pipeline has no sources",
            )
            .with_hint("add a [sources.ID] table; `weir list` shows the types"),
        );
    }
    if !has(StageKind::Sink) && !errors_so_far {
        diagnostics.push(
            Diagnostic::error(file_origin, "sinks", "the pipeline has no sinks")
                .with_hint("add a [sinks.ID] table, e.g. type = \"console\""),
        );
    }
    for cycle in find_cycles(flows) {
        let first = &spec.components[cycle[0]];
        let names: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&cycle[0]))
            .map(|&i| spec.components[i].id.as_str())
            .collect();
        let origin = first
            .inputs
            .first()
            .map_or(first.origin.clone(), |i| i.origin.clone());
        diagnostics.push(
            Diagnostic::error(
                origin,
                format!("{}.inputs", first.path),
                format!("cycle: {}", names.join(" -> ")),
            )
            .with_hint("a pipeline must not feed a stage's output back into it"),
        );
    }
    if diagnostics.has_errors() {
        return; // a dead end is usually just the echo of an error above
    }
    for (i, c) in spec.components.iter().enumerate() {
        let read = inputs.iter().any(|ins| ins.contains(&i));
        if c.kind != StageKind::Sink && !read {
            diagnostics.push(
                Diagnostic::warning(
                    c.origin.clone(),
                    &c.path,
                    format!("nothing reads the output of `{}`", c.id),
                )
                .with_hint("list it in a transform's or sink's `inputs`"),
            );
        }
    }
}

/// A stage that keeps state must see all of its input: downstream of a source that reads only a
/// share (a consumer-group member), each process would emit partial results under the same keys.
/// Merging partial results across processes is not built (docs/scaling.md), so this is refused.
fn check_shares(
    spec: &PipelineSpec,
    configs: &[Option<Box<dyn StageConfig>>],
    inputs: &[Vec<usize>],
    diagnostics: &mut Diagnostics,
) {
    let config = |i: usize| configs[i].as_deref();
    for (source, c) in spec.components.iter().enumerate() {
        if !config(source).is_some_and(|c| c.reads_a_share()) {
            continue;
        }
        let mut seen = vec![false; spec.components.len()];
        let mut todo = vec![source];
        while let Some(at) = todo.pop() {
            for (next, ins) in inputs.iter().enumerate() {
                if ins.contains(&at) && !seen[next] {
                    seen[next] = true;
                    todo.push(next);
                }
            }
        }
        for (i, downstream) in spec.components.iter().enumerate() {
            if seen[i] && config(i).is_some_and(|c| c.keeps_state()) {
                diagnostics.push(
                    Diagnostic::error(
                        downstream.origin.clone(),
                        &downstream.path,
                        format!(
                            "`{}` keeps state across records, but `{}` reads only the partitions \
                             its consumer group gives this process (`assignment = \"group\"`): \
                             every process would emit partial results",
                            downstream.id, c.id
                        ),
                    )
                    .with_hint(
                        "run one process with `assignment = \"all\"`; merging partial results \
                         across processes is not built yet (docs/scaling.md)",
                    ),
                );
            }
        }
    }
}

/// Every cycle in the graph given as each node's inputs, each reported once (as the nodes on it,
/// in the order data flows).
fn find_cycles(inputs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit(
        n: usize,
        inputs: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        marks[n] = Mark::OnStack;
        stack.push(n);
        for &input in &inputs[n] {
            match marks[input] {
                Mark::New => visit(input, inputs, marks, stack, cycles),
                Mark::OnStack => {
                    let from = stack
                        .iter()
                        .position(|&s| s == input)
                        .expect("on the stack");
                    let mut cycle: Vec<usize> = stack[from..].to_vec();
                    cycle.reverse();
                    // Start at the component declared first, so the report reads naturally.
                    let first = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, n)| **n)
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(first);
                    cycles.push(cycle);
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks[n] = Mark::Done;
    }
    let mut marks = vec![Mark::New; inputs.len()];
    let mut cycles = Vec::new();
    for n in 0..inputs.len() {
        if marks[n] == Mark::New {
            visit(n, inputs, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_cycle_once() {
        // 0 <- 2, 1 <- 0, 2 <- 1 (a loop of three), 3 <- 3 is excluded upstream; 4 <- 0.
        let inputs = vec![vec![2], vec![0], vec![1], vec![], vec![0]];
        let cycles = find_cycles(&inputs);
        assert_eq!(cycles.len(), 1);
        let mut sorted = cycles[0].clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2]);
        assert!(find_cycles(&[vec![], vec![0], vec![0, 1]]).is_empty());
    }
}
