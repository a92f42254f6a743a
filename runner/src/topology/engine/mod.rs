//! The engine: builds every stage (`build`), connects them with bounded channels and runs each
//! as its own task (`running`, whose [`RunningPipeline`] also applies edits while it runs; the
//! task loops are in `drive`), and waits until all have finished.
//!
//! Ending: when every source has returned (finite input, or a stop request), their channels close
//! and each downstream stage drains what is queued, finishes (windows emit, sinks flush) and
//! closes its own output in turn. A failing or panicking stage is reported by its key path; the
//! run then asks the sources to stop and lets the rest drain.

mod build;
mod drive;
mod report;
mod running;

pub use report::{RunReport, StageFailure};

use super::plan::Plan;
use super::reload::Reload;
use super::view::RunView;
use crate::stage::ShutdownTrigger;
use running::RunningPipeline;
use tokio::sync::mpsc;

/// Builds and runs `plan` until it ends by itself, or `trigger` fires and it has drained.
pub async fn run(plan: Plan, trigger: &ShutdownTrigger) -> RunReport {
    let (_, reloads) = mpsc::channel(1);
    run_reloadable(plan, trigger, reloads, &RunView::new()).await
}

/// [`run`], applying each edited plan that arrives on `reloads` while it runs (see `reload`),
/// and showing its stages in `view` as it starts them.
pub async fn run_reloadable(
    plan: Plan,
    trigger: &ShutdownTrigger,
    mut reloads: mpsc::Receiver<Reload>,
    view: &RunView,
) -> RunReport {
    let mut pipeline = match RunningPipeline::start(plan, trigger, view) {
        Ok(pipeline) => pipeline,
        Err(not_started) => return not_started,
    };
    let mut failures = Vec::new();
    let mut reloads_open = true;
    loop {
        let joined = tokio::select! {
            joined = pipeline.next_finished() => joined,
            reload = reloads.recv(), if reloads_open => {
                match reload {
                    Some(reload) => {
                        let answer = pipeline.apply_reload(reload.plan).await;
                        let _ = reload.reply.send(answer);
                    }
                    None => reloads_open = false,
                }
                continue;
            }
        };
        let Some(joined) = joined else { break };
        if let Some(failure) = pipeline.finished(joined) {
            tracing::error!("{failure}; stopping the sources and draining the rest");
            failures.push(failure);
            trigger.trigger();
        }
    }
    RunReport {
        failures,
        counts: pipeline.counts(),
    }
}
