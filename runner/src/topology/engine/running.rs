//! A pipeline while it runs: [`RunningPipeline`] owns its plan, stages' tasks and the handles
//! edits reach them by. Starting a pipeline and adding a stage on reload take one path: build the
//! stage, give it an output others can join, join its inputs to the outputs it reads, then spawn
//! its task.

use super::super::counts::StageCounts;
use super::super::inputs::Inputs;
use super::super::plan::{Plan, PlannedStage};
use super::super::reload::{
    Changes, REMOVED, ReloadError, ReloadOutcome, Retune, Running, SinkSwap, Swap,
    TransformControl, TransformEdit, changes,
};
use super::super::view::RunView;
use super::build::{
    Built, build_instances, connect_rejects, counts, failure, transforms_of, watched,
};
use super::drive::{
    CHANNEL_MESSAGES, Ports, Wiring, guarded, run_sink, run_source, run_transform, spawn_instances,
};
use super::report::{RunReport, StageFailure};
use crate::stage::{
    BuildContext, EditRefusal, Joiner, Message, Output, Rejects, RunHealth, RunResources,
    ShutdownTrigger, Stage, StageError, StageKind, StageMetrics, StageResult, WeakRejects,
};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};

/// How the controller reaches running stages to apply edits: per stage position, the transform
/// tasks that take edits (one per instance), the sink tasks that take replacements, and every
/// stage's output joiner (for added sinks).
#[derive(Default)]
struct Wires {
    editors: HashMap<usize, Vec<mpsc::Sender<TransformControl>>>,
    swaps: HashMap<usize, mpsc::Sender<SinkSwap>>,
    joiners: Vec<Joiner>,
    /// Each stage's rejects, for a replacement built while it runs (weak: a stage's errors
    /// stream ends when the stage does).
    rejects: Vec<WeakRejects>,
}

/// A pipeline while it runs.
pub(super) struct RunningPipeline<'a> {
    plan: Plan,
    /// What runs, by stage position, as an edit compares it.
    running: Vec<Running>,
    metrics: Vec<Arc<StageMetrics>>,
    resources: Arc<RunResources>,
    wires: Wires,
    tasks: JoinSet<StageResult>,
    /// The stage each task belongs to.
    task_stage: HashMap<tokio::task::Id, usize>,
    health: RunHealth,
    trigger: &'a ShutdownTrigger,
    view: &'a RunView,
}

impl<'a> RunningPipeline<'a> {
    /// Builds every stage of `plan` and starts them; nothing starts unless all build (the
    /// report then names every stage that did not).
    pub(super) fn start(
        plan: Plan,
        trigger: &'a ShutdownTrigger,
        view: &'a RunView,
    ) -> Result<RunningPipeline<'a>, RunReport> {
        let metrics: Vec<Arc<StageMetrics>> = plan.stages.iter().map(|_| Arc::default()).collect();
        let resources = Arc::new(RunResources::default());
        if plan.start_over {
            resources.get::<crate::resume::Resumed>().start_over();
        }
        let mut built = Vec::with_capacity(plan.stages.len());
        let mut rejects = Vec::with_capacity(plan.stages.len());
        let mut failures = Vec::new();
        for (i, stage) in plan.stages.iter().enumerate() {
            let cx = BuildContext {
                pipeline: plan.pipeline_name(),
                path: stage.path.clone(),
                metrics: Arc::clone(&metrics[i]),
                resources: Arc::clone(&resources),
                rejects: connect_rejects(&plan, i, &resources),
                inputs: plan.input_ids(i),
            };
            rejects.push(cx.rejects.clone());
            match build_instances(stage, &cx) {
                Ok(stage) => built.push(stage),
                Err(e) => failures.push(failure(&plan, i, e)),
            }
        }
        if !failures.is_empty() {
            return Err(RunReport {
                failures,
                counts: counts(&plan, &metrics),
            });
        }
        let mut pipeline = RunningPipeline {
            running: Running::of(&plan),
            plan,
            metrics,
            resources,
            wires: Wires::default(),
            tasks: JoinSet::new(),
            task_stage: HashMap::new(),
            health: RunHealth::default(),
            trigger,
            view,
        };
        pipeline.wires.rejects = rejects.iter().map(Rejects::downgrade).collect();
        // Every stage's output, then every stage's inputs joined to the outputs they read, and
        // only then any task: a stage that starts sending finds all its readers joined.
        let outputs: Vec<Output> = (0..built.len()).map(|i| pipeline.output(i)).collect();
        let inputs: Vec<Inputs> = (0..built.len())
            .map(|i| pipeline.connect_inputs(i))
            .collect();
        for (i, ((built, output), (input, rejects))) in built
            .into_iter()
            .zip(outputs)
            .zip(inputs.into_iter().zip(rejects))
            .enumerate()
        {
            let several = built.parallel.is_some();
            pipeline.spawn(i, built, input, output, rejects);
            if several {
                tracing::debug!(
                    "started {} as several instances",
                    pipeline.plan.stages[i].path
                );
            } else {
                tracing::debug!("started {}", pipeline.plan.stages[i].path);
            }
        }
        Ok(pipeline)
    }

    /// Stage `index`'s output, with a joiner for its readers (added to the wires).
    fn output(&mut self, index: usize) -> Output {
        let metrics = Arc::clone(&self.metrics[index]);
        let mut output = match self.plan.stages[index].kind {
            StageKind::Source => Output::for_source(Vec::new(), metrics),
            _ => Output::new(Vec::new(), metrics),
        };
        self.wires.joiners.push(output.joiner());
        output
    }

    /// One bounded channel per input of stage `index`, joined to the output it reads; the stage
    /// is shown in the view with its queues.
    fn connect_inputs(&mut self, index: usize) -> Inputs {
        let stage = &self.plan.stages[index];
        let mut receivers = Vec::with_capacity(stage.inputs.len());
        let mut queues = Vec::with_capacity(stage.inputs.len());
        for &upstream in &stage.inputs {
            let (tx, rx) = mpsc::channel::<Message>(CHANNEL_MESSAGES);
            queues.push(tx.downgrade());
            if self.wires.joiners[upstream].join(tx).is_err() {
                tracing::warn!(
                    "{}: its input `{}` ended while it was added",
                    stage.path,
                    self.plan.stages[upstream].id
                );
            }
            receivers.push(rx);
        }
        self.view.register(watched(
            stage,
            &self.metrics[index],
            &self.wires.joiners[index],
            queues,
        ));
        Inputs::new(receivers)
    }

    /// Runs stage `index` as built: a task per source, transform or sink, and for a keyed
    /// transform with several instances, one per instance between a router and a merge. Its
    /// transforms take edits and its sinks replacements through the wires.
    fn spawn(
        &mut self,
        index: usize,
        built: Built,
        input: Inputs,
        output: Output,
        rejects: Rejects,
    ) {
        let metrics = Arc::clone(&self.metrics[index]);
        let health = self.health.clone();
        let Built {
            mut instances,
            parallel,
        } = built;
        let handles = if let Some(parallel) = parallel {
            let (handles, editors) = spawn_instances(
                &mut self.tasks,
                transforms_of(instances),
                Wiring {
                    input,
                    output,
                    metrics,
                    rejects,
                    parallel,
                    mark: Arc::from(self.plan.stages[index].path.as_str()),
                },
                self.trigger,
                &self.health,
            );
            self.wires.editors.insert(index, editors);
            handles
        } else {
            let task = match instances.pop().expect("a stage builds at least once") {
                Stage::Source(source) => self.tasks.spawn(guarded(
                    health.clone(),
                    run_source(source, output, rejects, self.trigger.subscribe(), health),
                )),
                Stage::Transform(transform) => {
                    let (editor, edits) = mpsc::channel(1);
                    self.wires.editors.insert(index, vec![editor]);
                    self.tasks.spawn(guarded(
                        health.clone(),
                        run_transform(
                            transform,
                            Ports {
                                input,
                                output,
                                rejects,
                            },
                            metrics,
                            self.trigger.subscribe(),
                            health,
                            edits,
                        ),
                    ))
                }
                Stage::Sink(sink) => {
                    let (swap, swaps) = mpsc::channel(1);
                    self.wires.swaps.insert(index, swap);
                    self.tasks.spawn(guarded(
                        health.clone(),
                        run_sink(sink, input, rejects, metrics, health, swaps),
                    ))
                }
            };
            vec![task.id()]
        };
        for handle in handles {
            self.task_stage.insert(handle, index);
        }
    }

    /// The next task to end, or `None` when all have.
    pub(super) async fn next_finished(
        &mut self,
    ) -> Option<Result<(tokio::task::Id, StageResult), JoinError>> {
        self.tasks.join_next_with_id().await
    }

    /// Notes a task's end; returns its stage's failure, if it failed.
    pub(super) fn finished(
        &mut self,
        joined: Result<(tokio::task::Id, StageResult), JoinError>,
    ) -> Option<StageFailure> {
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => (e.id(), Err(StageError::joined("the stage's task", e))),
        };
        let i = self.task_stage[&id];
        match result {
            Ok(()) => {
                tracing::debug!("{} finished", self.plan.stages[i].path);
                None
            }
            Err(error) => Some(failure(&self.plan, i, error)),
        }
    }

    /// Counts per stage so far, in plan order.
    pub(super) fn counts(&self) -> Vec<StageCounts> {
        counts(&self.plan, &self.metrics)
    }

    fn build_context(&self, index: usize) -> BuildContext {
        BuildContext {
            pipeline: self.plan.pipeline_name(),
            path: self.plan.stages[index].path.clone(),
            metrics: Arc::clone(&self.metrics[index]),
            resources: Arc::clone(&self.resources),
            rejects: self
                .wires
                .rejects
                .get(index)
                .map_or_else(Rejects::disconnected, WeakRejects::upgrade),
            inputs: self.plan.input_ids(index),
        }
    }

    /// Applies an edited plan (see `reload`): transforms first (each must accept its edit, or
    /// none takes it), then sink replacements, then added stages, then removed transforms. Says
    /// what changed, or why nothing did.
    pub(super) async fn apply_reload(
        &mut self,
        edited: Plan,
    ) -> Result<ReloadOutcome, ReloadError> {
        let Changes {
            retunes,
            swaps,
            added,
            added_inputs,
            retired,
        } = changes(&self.running, edited)?;
        if let Some(&several) = retired
            .iter()
            .find(|i| self.wires.editors.get(i).is_some_and(|e| e.len() > 1))
        {
            return Err(ReloadError::NeedsRestart(format!(
                "{} runs as several instances, and such a transform cannot be removed while \
                 running",
                self.plan.stages[several].path
            )));
        }
        let mut changed = self.offer_edits(retunes).await?;
        changed.extend(self.swap_sinks(swaps).await?);
        changed.extend(self.add_stages(added, added_inputs)?);
        changed.extend(self.retire(retired).await);
        Ok(ReloadOutcome { changed })
    }

    /// Offers every instance of every changed transform its edited self, and has them take the
    /// edits only if all accept.
    async fn offer_edits(&mut self, retunes: Vec<Retune>) -> Result<Vec<String>, ReloadError> {
        let mut changed = Vec::new();
        if retunes.is_empty() {
            return Ok(changed);
        }
        // Offer every instance of every changed transform its edited self; take the edits only
        // if all accept.
        let mut commits = Vec::new();
        let mut refusal = None;
        for retune in &retunes {
            let path = self.plan.stages[retune.index].path.clone();
            let editors = self
                .wires
                .editors
                .get(&retune.index)
                .cloned()
                .unwrap_or_default();
            let instances = retune.config.parallel().map_or(1, |p| p.instances);
            if editors.len() != instances {
                refusal = Some(ReloadError::Refused {
                    refusal: EditRefusal::new(format!(
                        "it runs as {} instances, the edit asks for {instances}",
                        editors.len()
                    )),
                    stage: path,
                });
                break;
            }
            let cx = self.build_context(retune.index);
            for editor in editors {
                let edited = match retune.config.build(&cx) {
                    Ok(Stage::Transform(t)) => t,
                    Ok(_) => unreachable!("a transform's config builds a transform"),
                    Err(e) => {
                        refusal = Some(ReloadError::NotStarted {
                            stage: path.clone(),
                            reason: e.to_string(),
                        });
                        break;
                    }
                };
                let (verdict, answer) = tokio::sync::oneshot::channel();
                let (commit, commit_rx) = tokio::sync::oneshot::channel();
                let offered = TransformEdit {
                    edited,
                    verdict,
                    commit: commit_rx,
                };
                if editor.send(TransformControl::Offer(offered)).await.is_err() {
                    refusal = Some(ReloadError::Ended {
                        stage: path.clone(),
                    });
                    break;
                }
                commits.push(commit);
                match answer.await {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => {
                        refusal = Some(ReloadError::Refused {
                            stage: path.clone(),
                            refusal: why,
                        });
                        break;
                    }
                    Err(_) => {
                        refusal = Some(ReloadError::Ended {
                            stage: path.clone(),
                        });
                        break;
                    }
                }
            }
            if refusal.is_some() {
                break;
            }
        }
        let take = refusal.is_none();
        for commit in commits {
            let _ = commit.send(take);
        }
        if let Some(why) = refusal {
            return Err(why);
        }
        for retune in retunes {
            changed.push(format!(
                "{} changed (its state kept)",
                self.plan.stages[retune.index].path
            ));
            self.running[retune.index] = retune.running;
        }
        Ok(changed)
    }

    /// Replaces or removes sinks; each answers once the new sink is in place.
    async fn swap_sinks(&mut self, swaps: Vec<Swap>) -> Result<Vec<String>, ReloadError> {
        let mut changed = Vec::new();
        for swap in swaps {
            let path = self.plan.stages[swap.index].path.clone();
            let Some(sender) = self.wires.swaps.get(&swap.index) else {
                return Err(ReloadError::Ended { stage: path });
            };
            let removed = swap.config.is_none();
            let (done, in_place) = tokio::sync::oneshot::channel();
            let told = SinkSwap {
                config: swap.config,
                cx: self.build_context(swap.index),
                done,
            };
            if sender.send(told).await.is_err() {
                return Err(ReloadError::Ended { stage: path });
            }
            // Answer only once the new sink is in place (its port bound, its file open).
            match in_place.await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    return Err(ReloadError::NotStarted {
                        stage: path,
                        reason,
                    });
                }
                Err(_) => return Err(ReloadError::Ended { stage: path }),
            }
            if removed {
                self.view.remove(swap.index);
            }
            changed.push(format!(
                "{path} {}",
                if removed { "removed" } else { "replaced" }
            ));
            self.running[swap.index] = swap.running;
        }
        Ok(changed)
    }

    /// Adds stages once their inputs run (an added transform may read another).
    fn add_stages(
        &mut self,
        added: Vec<PlannedStage>,
        added_inputs: Vec<Vec<String>>,
    ) -> Result<Vec<String>, ReloadError> {
        let mut changed = Vec::new();
        let mut pending: Vec<_> = added.into_iter().zip(added_inputs).collect();
        while !pending.is_empty() {
            let resolved = |ids: &[String], running: &[Running]| -> Option<Vec<usize>> {
                ids.iter()
                    .map(|id| {
                        running.iter().position(|r| {
                            r.kind != StageKind::Sink && r.fingerprint != REMOVED && &r.id == id
                        })
                    })
                    .collect()
            };
            let Some((at, inputs)) = pending
                .iter()
                .enumerate()
                .find_map(|(at, (_, ids))| resolved(ids, &self.running).map(|inputs| (at, inputs)))
            else {
                return Err(ReloadError::NeedsRestart(
                    "the added stages' inputs do not resolve".into(),
                ));
            };
            let (mut stage, _) = pending.remove(at);
            stage.inputs = inputs;
            changed.push(self.add_stage(stage)?);
        }
        Ok(changed)
    }

    /// Removes transforms, last: once whatever replaces them reads their inputs.
    async fn retire(&mut self, retired: Vec<usize>) -> Vec<String> {
        let mut changed = Vec::new();
        for index in retired {
            for editor in self.wires.editors.remove(&index).unwrap_or_default() {
                let _ = editor.send(TransformControl::Retire).await;
            }
            self.running[index].fingerprint = REMOVED.into();
            self.view.remove(index);
            changed.push(format!("{} removed", self.plan.stages[index].path));
        }
        changed
    }

    /// Builds an added transform or sink, joins it to the outputs it reads and runs it, as
    /// [`start`](Self::start) does each stage.
    fn add_stage(&mut self, stage: PlannedStage) -> Result<String, ReloadError> {
        let path = stage.path.clone();
        if let Some(&ended) = stage
            .inputs
            .iter()
            .find(|&&i| self.wires.joiners[i].ended())
        {
            return Err(ReloadError::NotStarted {
                reason: format!(
                    "cannot be added: its input `{}` has ended",
                    self.plan.stages[ended].id
                ),
                stage: path,
            });
        }
        let metrics: Arc<StageMetrics> = Arc::default();
        // Nothing can read the errors of a stage an edit adds (that would add a source).
        let cx = BuildContext {
            pipeline: self.plan.pipeline_name(),
            path: path.clone(),
            metrics: Arc::clone(&metrics),
            resources: Arc::clone(&self.resources),
            rejects: Rejects::disconnected(),
            inputs: stage
                .inputs
                .iter()
                .filter_map(|&i| self.plan.stages.get(i).map(|s| s.id.clone()))
                .collect(),
        };
        let built = build_instances(&stage, &cx).map_err(|e| ReloadError::NotStarted {
            stage: path.clone(),
            reason: e.to_string(),
        })?;
        let index = self.plan.stages.len();
        self.plan.stages.push(stage);
        self.metrics.push(metrics);
        self.running.push(Running::of_stage(&self.plan, index));
        self.wires.rejects.push(WeakRejects::default());
        let output = self.output(index);
        let input = self.connect_inputs(index);
        self.spawn(index, built, input, output, Rejects::disconnected());
        tracing::info!("{path}: started (added by an edit)");
        Ok(format!("{path} added"))
    }
}
