//! Renders a plan as Graphviz DOT or as a table for the terminal (`weir graph`).

use super::plan::Plan;
use crate::stage::StageKind;
use std::fmt::Write;

/// The plan as a DOT digraph, data flowing left to right.
pub fn to_dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&plan.file.path));
    out.push_str("  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=11];\n");
    for stage in &plan.stages {
        let shape = match stage.kind {
            StageKind::Source => "cds",
            StageKind::Transform => "box",
            StageKind::Sink => "house\", orientation=\"270",
        };
        let label = format!("{}\n{} {}", stage.id, stage.type_name, stage.kind);
        let _ = writeln!(
            out,
            "  {} [shape=\"{shape}\", label={}];",
            quote(&stage.id),
            quote(&label)
        );
    }
    for stage in &plan.stages {
        for &input in &stage.inputs {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(&plan.stages[input].id),
                quote(&stage.id)
            );
        }
        // A stage's rejected records flow to its errors stream.
        if let Some(of) = stage.errors_of {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed];",
                quote(&plan.stages[of].id),
                quote(&stage.id)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// The plan as aligned rows: id, role, type, and what each stage reads.
pub fn to_text(plan: &Plan) -> String {
    let id_width = plan
        .stages
        .iter()
        .map(|s| s.id.chars().count())
        .max()
        .unwrap_or(0);
    let type_width = plan
        .stages
        .iter()
        .map(|s| s.type_name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for stage in &plan.stages {
        let inputs: Vec<&str> = stage
            .inputs
            .iter()
            .map(|&i| plan.stages[i].id.as_str())
            .collect();
        let arrow = match stage.errors_of {
            Some(of) => format!("  <- rejected by {}", plan.stages[of].id),
            None if inputs.is_empty() => String::new(),
            None => format!("  <- {}", inputs.join(", ")),
        };
        let line = format!(
            "{:<id_width$}  {:<9}  {:<type_width$}{arrow}",
            stage.id,
            stage.kind.noun(),
            stage.type_name
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn quote(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}
