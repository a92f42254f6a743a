//! Building a pipeline's stages: each stage's instances from its config (several for a keyed
//! transform with `parallelism`), the rejects it writes to, and what the view and the run report
//! show of it.

use super::super::counts::StageCounts;
use super::super::errors::ErrorStreams;
use super::super::plan::{Plan, PlannedStage};
use super::super::view::Watched;
use super::report::StageFailure;
use crate::stage::{
    BuildContext, Joiner, Message, Parallel, Rejects, RunResources, Stage, StageError, StageKind,
    StageMetrics, Transform, error_stream,
};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A stage as built: one instance, or one per instance of a keyed transform.
pub(super) struct Built {
    pub(super) instances: Vec<Stage>,
    /// How the instances share the work, when there are several.
    pub(super) parallel: Option<Parallel>,
}

/// Builds `stage` with `cx`: once, or once per instance of a keyed transform.
pub(super) fn build_instances(
    stage: &PlannedStage,
    cx: &BuildContext,
) -> Result<Built, StageError> {
    let parallel = match stage.kind {
        StageKind::Transform => stage.config.parallel().filter(|p| p.instances > 1),
        _ => None,
    };
    let count = parallel.as_ref().map_or(1, |p| p.instances);
    let instances = (0..count)
        .map(|_| stage.config.build(cx))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Built {
        instances,
        parallel,
    })
}

/// The rejects of stage `index`: connected to its errors stream when a component reads
/// `<id>.errors` (the stream's receiving end waits in the run's [`ErrorStreams`] for it).
pub(super) fn connect_rejects(plan: &Plan, index: usize, resources: &RunResources) -> Rejects {
    if !plan.stages.iter().any(|s| s.errors_of == Some(index)) {
        return Rejects::disconnected();
    }
    let stage = &plan.stages[index];
    let (rejects, stream) = error_stream(&stage.id);
    resources.get::<ErrorStreams>().offer(&stage.path, stream);
    rejects
}

/// The transforms among the instances built for one stage.
pub(super) fn transforms_of(built: Vec<Stage>) -> Vec<Box<dyn Transform>> {
    built
        .into_iter()
        .filter_map(|stage| match stage {
            Stage::Transform(transform) => Some(transform),
            _ => None,
        })
        .collect()
}

/// How the view shows `stage`.
pub(super) fn watched(
    stage: &PlannedStage,
    metrics: &Arc<StageMetrics>,
    joiner: &Joiner,
    queues: Vec<mpsc::WeakSender<Message>>,
) -> Watched {
    Watched {
        id: stage.id.clone(),
        path: stage.path.clone(),
        kind: stage.kind,
        type_name: stage.type_name.clone(),
        // An errors stream is drawn reading the stage that rejects (it has no input queue).
        inputs: stage
            .inputs
            .iter()
            .chain(&stage.errors_of)
            .copied()
            .collect(),
        metrics: Arc::clone(metrics),
        joiner: joiner.clone(),
        queues,
        removed: false,
    }
}

pub(super) fn failure(plan: &Plan, i: usize, error: StageError) -> StageFailure {
    StageFailure {
        path: plan.stages[i].path.clone(),
        type_name: plan.stages[i].type_name.clone(),
        error,
    }
}

pub(super) fn counts(plan: &Plan, metrics: &[Arc<StageMetrics>]) -> Vec<StageCounts> {
    plan.stages
        .iter()
        .zip(metrics)
        .map(|(s, m)| {
            let figures = m.figures();
            StageCounts {
                path: s.path.clone(),
                kind: s.kind,
                received: figures.received,
                emitted: figures.emitted,
                dropped: figures.dropped,
                dropped_by: figures.dropped_by,
                bytes_read: figures.bytes_read,
                bytes_written: figures.bytes_written,
            }
        })
        .collect()
}
