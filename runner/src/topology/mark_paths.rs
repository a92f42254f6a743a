//! One path from each marking stage to the transactions that commit its marks. A stage that
//! marks its output with how far it has emitted (a window, a session window, dedupe, a csv
//! source; see `ack`) resumes after a restart from the one mark committed with its output. When
//! its output reaches sinks that commit progress (Kafka sinks writing exactly once, `postgres`)
//! along two or more paths (fanned out to
//! two sinks, or to a sink and into a second window that holds the results for seconds), the
//! paths commit at different moments: one path's commit says "emitted through T" while another
//! still holds results before T, and a restart then skips those for good (or, with the smaller
//! mark, writes the first path's results twice). One mark cannot say how far each path got, so
//! such a pipeline is refused; the message names the paths and the ways out.

use crate::config::{Diagnostic, Diagnostics};
use crate::stage::StageConfig;
use crate::topology::spec::PipelineSpec;

/// Checks that every marking stage of `spec` reaches progress-committing sinks along at most one
/// path. `configs` and `inputs` are per component; the graph has no cycle.
pub fn check_mark_paths(
    spec: &PipelineSpec,
    configs: &[Option<Box<dyn StageConfig>>],
    inputs: &[Vec<usize>],
    diagnostics: &mut Diagnostics,
) {
    let consumers: Vec<Vec<usize>> = (0..inputs.len())
        .map(|i| {
            (0..inputs.len())
                .filter(|&c| inputs[c].contains(&i))
                .collect()
        })
        .collect();
    let commits = |i: usize| configs[i].as_deref().is_some_and(|c| c.commits_progress());
    let marks = |i: usize| configs[i].as_deref().is_some_and(|c| c.marks_progress());
    let mut paths_from: Vec<Option<Vec<Vec<usize>>>> = vec![None; inputs.len()];
    let paths: Vec<Vec<Vec<usize>>> = (0..inputs.len())
        .map(|stage| {
            if !marks(stage) {
                return Vec::new();
            }
            consumers[stage]
                .iter()
                .flat_map(|&c| paths_to_commits(c, &consumers, &commits, &mut paths_from))
                .collect()
        })
        .collect();
    let refused = |stage: usize| paths[stage].len() >= 2;
    for (stage, component) in spec.components.iter().enumerate() {
        if !refused(stage) {
            continue;
        }
        // A stage upstream of a refused one that every path passes through is fixed with it:
        // only the fan-out nearest the sinks is reported.
        let on_every_path = |m: usize| paths[stage].iter().all(|path| path.contains(&m));
        if (0..inputs.len()).any(|m| m != stage && refused(m) && on_every_path(m)) {
            continue;
        }
        let shown: Vec<String> = paths[stage]
            .iter()
            .map(|path| {
                std::iter::once(component.id.as_str())
                    .chain(path.iter().map(|&i| spec.components[i].id.as_str()))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            })
            .collect();
        diagnostics.push(
            Diagnostic::error(
                component.origin.clone(),
                &component.path,
                format!(
                    "`{}` resumes after a restart from how far its output was committed, but its \
                     output reaches sinks that commit progress (Kafka sinks writing exactly \
                     once, postgres) along {} paths ({}); they \
                     commit at different moments, so a restart would lose or repeat results",
                    component.id,
                    shown.len(),
                    shown.join("; ")
                ),
            )
            .with_hint(
                "write it to one topic and read that topic in a second pipeline for the other \
                 paths (docs/kafka.md, \"One path per marking stage\"), or give the other sinks \
                 `guarantee = \"at-least-once\"`",
            ),
        );
    }
}

/// Every path from stage `at` down to a progress-committing sink (each path listed from `at`),
/// memoised in `paths_from`. Paths grow with the graph's fan-outs; a pipeline file has few.
fn paths_to_commits(
    at: usize,
    consumers: &[Vec<usize>],
    commits: &dyn Fn(usize) -> bool,
    paths_from: &mut Vec<Option<Vec<Vec<usize>>>>,
) -> Vec<Vec<usize>> {
    if let Some(known) = &paths_from[at] {
        return known.clone();
    }
    let mut paths = Vec::new();
    if commits(at) {
        paths.push(vec![at]);
    }
    for &next in &consumers[at] {
        for tail in paths_to_commits(next, consumers, commits, paths_from) {
            let mut path = vec![at];
            path.extend(tail);
            paths.push(path);
        }
    }
    paths_from[at] = Some(paths.clone());
    paths
}
