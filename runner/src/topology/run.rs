//! The engine: builds every stage, connects them with bounded channels, runs each as its own
//! task, and waits until all have finished.
//!
//! Ending: when every source has returned (finite input, or a stop request), their channels close
//! and each downstream stage drains what is queued, finishes (windows emit, sinks flush) and
//! closes its own output in turn. A failing or panicking stage is reported by its key path; the
//! run then asks the sources to stop and lets the rest drain.

use super::counts::StageCounts;
use super::errors::ErrorStreams;
use super::inputs::{InputEvent, Inputs, Watermarks};
use super::parallel;
use super::plan::{Plan, PlannedStage};
use super::reload::{
    Changes, Discard, REMOVED, Reload, Running, SinkSwap, TransformControl, TransformEdit, changes,
};
use super::view::{RunView, Watched};
use crate::record::Batch;
use crate::stage::{
    BuildContext, Joiner, Message, Output, Parallel, Rejects, RunHealth, RunResources, Shutdown,
    ShutdownTrigger, Sink, Source, SourceContext, Stage, StageError, StageKind, StageMetrics,
    StageResult, Transform, WeakRejects, error_stream,
};
use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Messages (batches and watermarks) that may wait on one edge before the sender has to wait:
/// bounds memory per edge.
const CHANNEL_MESSAGES: usize = 16;

/// A stage that failed.
#[derive(Debug)]
pub struct StageFailure {
    /// Its key path, e.g. `sinks.out`.
    pub path: String,
    /// Its type.
    pub type_name: String,
    /// What happened.
    pub error: StageError,
}

impl std::fmt::Display for StageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {} ({}) failed: {}",
            self.path, self.type_name, self.error
        )
    }
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Stages that failed (empty for a clean run).
    pub failures: Vec<StageFailure>,
    /// Counts per stage, in plan order.
    pub counts: Vec<StageCounts>,
}

/// Builds and runs `plan` until it ends by itself, or `trigger` fires and it has drained.
pub async fn run(plan: Plan, trigger: &ShutdownTrigger) -> RunReport {
    let (_, reloads) = mpsc::channel(1);
    run_reloadable(plan, trigger, reloads, &RunView::new()).await
}

/// [`run`], applying each edited plan that arrives on `reloads` while it runs (see `reload`),
/// and showing its stages in `view` as it starts them.
pub async fn run_reloadable(
    mut plan: Plan,
    trigger: &ShutdownTrigger,
    mut reloads: mpsc::Receiver<Reload>,
    view: &RunView,
) -> RunReport {
    let mut metrics: Vec<Arc<StageMetrics>> = plan.stages.iter().map(|_| Arc::default()).collect();
    let mut built = Vec::with_capacity(plan.stages.len());
    let mut failures = Vec::new();
    let resources = Arc::new(RunResources::default());
    let pipeline = plan.pipeline_name();
    let mut rejects = Vec::with_capacity(plan.stages.len());
    for (i, (stage, metrics)) in plan.stages.iter().zip(&metrics).enumerate() {
        let cx = BuildContext {
            pipeline: pipeline.clone(),
            path: stage.path.clone(),
            metrics: Arc::clone(metrics),
            resources: Arc::clone(&resources),
            rejects: connect_rejects(&plan, i, &resources),
        };
        rejects.push(cx.rejects.clone());
        // A keyed transform with several instances is built once per instance.
        let parallel = match stage.kind {
            StageKind::Transform => stage.config.parallel().filter(|p| p.instances > 1),
            _ => None,
        };
        let instances = parallel.as_ref().map_or(1, |p| p.instances);
        let mut stages = Vec::with_capacity(instances);
        for _ in 0..instances {
            match stage.config.build(&cx) {
                Ok(s) => stages.push(s),
                Err(e) => {
                    failures.push(failure(&plan, i, e));
                    break;
                }
            }
        }
        built.push((stages, parallel));
    }
    if !failures.is_empty() {
        return RunReport {
            failures,
            counts: counts(&plan, &metrics),
        };
    }

    // One bounded channel per edge: stage i's port p reads from stage `inputs[p]`.
    let mut receivers: Vec<Vec<mpsc::Receiver<Message>>> =
        plan.stages.iter().map(|_| Vec::new()).collect();
    let mut senders: Vec<Vec<mpsc::Sender<Message>>> =
        plan.stages.iter().map(|_| Vec::new()).collect();
    let mut queues: Vec<Vec<mpsc::WeakSender<Message>>> =
        plan.stages.iter().map(|_| Vec::new()).collect();
    for (i, stage) in plan.stages.iter().enumerate() {
        for &upstream in &stage.inputs {
            let (tx, rx) = mpsc::channel::<Message>(CHANNEL_MESSAGES);
            queues[i].push(tx.downgrade());
            senders[upstream].push(tx);
            receivers[i].push(rx);
        }
    }
    let mut wires = Wires::default();
    let outputs: Vec<Output> = senders
        .into_iter()
        .zip(&metrics)
        .zip(&plan.stages)
        .map(|((to, metrics), stage)| {
            let mut output = match stage.kind {
                StageKind::Source => Output::for_source(to, Arc::clone(metrics)),
                _ => Output::new(to, Arc::clone(metrics)),
            };
            wires.joiners.push(output.joiner());
            output
        })
        .collect();
    for ((i, stage), queues) in plan.stages.iter().enumerate().zip(queues) {
        view.register(watched(stage, &metrics[i], &wires.joiners[i], queues));
    }
    let mut receivers = receivers.into_iter();

    let mut tasks = JoinSet::new();
    let mut task_stage = std::collections::HashMap::new();
    let health = RunHealth::default();
    wires.rejects = rejects.iter().map(Rejects::downgrade).collect();
    for (i, (((mut stages, parallel), output), rejects)) in
        built.into_iter().zip(outputs).zip(rejects).enumerate()
    {
        let input = Inputs::new(receivers.next().expect("one receiver list per stage"));
        let metrics = Arc::clone(&metrics[i]);
        let h = health.clone();
        if let Some(parallel) = parallel {
            let transforms = transforms_of(stages);
            let (handles, editors) = spawn_instances(
                &mut tasks,
                transforms,
                Wiring {
                    input,
                    output,
                    metrics,
                    rejects,
                    parallel,
                    mark: Arc::from(plan.stages[i].path.as_str()),
                },
                trigger,
                &health,
            );
            for handle in handles {
                task_stage.insert(handle, i);
            }
            wires.editors.insert(i, editors);
            tracing::debug!("started {} as several instances", plan.stages[i].path);
            continue;
        }
        let handle = match stages.pop().expect("all stages built") {
            Stage::Source(source) => tasks.spawn(guarded(
                health.clone(),
                run_source(source, output, rejects, trigger.subscribe(), h),
            )),
            Stage::Transform(transform) => {
                let (editor, edits) = mpsc::channel(1);
                wires.editors.insert(i, vec![editor]);
                tasks.spawn(guarded(
                    health.clone(),
                    run_transform(
                        transform,
                        Ports {
                            input,
                            output,
                            rejects,
                        },
                        metrics,
                        trigger.subscribe(),
                        h,
                        edits,
                    ),
                ))
            }
            Stage::Sink(sink) => {
                let (swap, swaps) = mpsc::channel(1);
                wires.swaps.insert(i, swap);
                tasks.spawn(guarded(
                    health.clone(),
                    run_sink(sink, input, rejects, metrics, h, swaps),
                ))
            }
        };
        task_stage.insert(handle.id(), i);
        tracing::debug!("started {}", plan.stages[i].path);
    }
    let mut running = Running::of(&plan);
    let mut reloads_open = true;
    loop {
        let joined = tokio::select! {
            joined = tasks.join_next_with_id() => joined,
            reload = reloads.recv(), if reloads_open => {
                match reload {
                    Some(reload) => {
                        let mut live = Live {
                            plan: &mut plan,
                            running: &mut running,
                            metrics: &mut metrics,
                            resources: &resources,
                            wires: &mut wires,
                            tasks: &mut tasks,
                            task_stage: &mut task_stage,
                            health: &health,
                            trigger,
                            view,
                        };
                        let answer = apply_reload(reload.plan, &mut live).await;
                        let _ = reload.reply.send(answer);
                    }
                    None => reloads_open = false,
                }
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            Err(e) => (e.id(), Err(StageError::joined("the stage's task", e))),
        };
        let i = task_stage[&id];
        match result {
            Ok(()) => tracing::debug!("{} finished", plan.stages[i].path),
            Err(error) => {
                let f = failure(&plan, i, error);
                tracing::error!("{f}; stopping the sources and draining the rest");
                failures.push(f);
                trigger.trigger();
            }
        }
    }
    RunReport {
        failures,
        counts: counts(&plan, &metrics),
    }
}

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

/// The running pipeline, as an edit changes it.
struct Live<'a> {
    plan: &'a mut Plan,
    running: &'a mut Vec<Running>,
    metrics: &'a mut Vec<Arc<StageMetrics>>,
    resources: &'a Arc<RunResources>,
    wires: &'a mut Wires,
    tasks: &'a mut JoinSet<StageResult>,
    task_stage: &'a mut HashMap<tokio::task::Id, usize>,
    health: &'a RunHealth,
    trigger: &'a ShutdownTrigger,
    view: &'a RunView,
}

impl Live<'_> {
    fn build_context(&self, index: usize) -> BuildContext {
        BuildContext {
            pipeline: self.plan.pipeline_name(),
            path: self.plan.stages[index].path.clone(),
            metrics: Arc::clone(&self.metrics[index]),
            resources: Arc::clone(self.resources),
            rejects: self
                .wires
                .rejects
                .get(index)
                .map_or_else(Rejects::disconnected, WeakRejects::upgrade),
        }
    }
}

/// Applies an edited plan (see `reload`): transforms first (each must accept its edit, or
/// none takes it), then sink replacements, then added sinks. Says what changed, or why nothing
/// did.
async fn apply_reload(edited: Plan, live: &mut Live<'_>) -> Result<String, String> {
    let Changes {
        retunes,
        swaps,
        added,
        added_inputs,
        retired,
    } = changes(live.running, edited)?;
    if let Some(&several) = retired
        .iter()
        .find(|i| live.wires.editors.get(i).is_some_and(|e| e.len() > 1))
    {
        return Err(format!(
            "{} runs as several instances, and such a transform cannot be removed while \
             running; restart to apply",
            live.plan.stages[several].path
        ));
    }
    let mut changed = Vec::new();
    if !retunes.is_empty() {
        // Offer every instance of every changed transform its edited self; take the edits only
        // if all accept.
        let mut commits = Vec::new();
        let mut refusal = None;
        for retune in &retunes {
            let path = live.plan.stages[retune.index].path.clone();
            let editors = live
                .wires
                .editors
                .get(&retune.index)
                .cloned()
                .unwrap_or_default();
            let instances = retune.config.parallel().map_or(1, |p| p.instances);
            if editors.len() != instances {
                refusal = Some(format!(
                    "{path} cannot take the edit: it runs as {} instances, the edit asks for {instances}",
                    editors.len()
                ));
                break;
            }
            let cx = live.build_context(retune.index);
            for editor in editors {
                let edited = match retune.config.build(&cx) {
                    Ok(Stage::Transform(t)) => t,
                    Ok(_) => unreachable!("a transform's config builds a transform"),
                    Err(e) => {
                        refusal = Some(format!("{path}: {e}"));
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
                    refusal = Some(format!("{path} has already ended"));
                    break;
                }
                commits.push(commit);
                match answer.await {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => {
                        refusal = Some(format!("{path} cannot take the edit: {why}"));
                        break;
                    }
                    Err(_) => {
                        refusal = Some(format!("{path} has already ended"));
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
            return Err(format!("{why}; restart to apply"));
        }
        for retune in retunes {
            changed.push(format!(
                "{} changed (its state kept)",
                live.plan.stages[retune.index].path
            ));
            live.running[retune.index] = retune.running;
        }
    }
    for swap in swaps {
        let path = live.plan.stages[swap.index].path.clone();
        let Some(sender) = live.wires.swaps.get(&swap.index) else {
            return Err(format!("{path} has already ended"));
        };
        let removed = swap.config.is_none();
        let (done, in_place) = tokio::sync::oneshot::channel();
        let told = SinkSwap {
            config: swap.config,
            cx: live.build_context(swap.index),
            done,
        };
        if sender.send(told).await.is_err() {
            return Err(format!("{path} has already ended"));
        }
        // Answer only once the new sink is in place (its port bound, its file open).
        match in_place.await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => return Err(format!("{path}: {why}")),
            Err(_) => return Err(format!("{path} has already ended")),
        }
        if removed {
            live.view.remove(swap.index);
        }
        changed.push(format!(
            "{path} {}",
            if removed { "removed" } else { "replaced" }
        ));
        live.running[swap.index] = swap.running;
    }
    // Added stages once their inputs run (an added transform may read another).
    let mut pending: Vec<_> = added.into_iter().zip(added_inputs).collect();
    while !pending.is_empty() {
        let resolved = |ids: &[String], live: &Live<'_>| -> Option<Vec<usize>> {
            ids.iter()
                .map(|id| {
                    live.running.iter().position(|r| {
                        r.kind != StageKind::Sink && r.fingerprint != REMOVED && &r.id == id
                    })
                })
                .collect()
        };
        let Some((at, inputs)) = pending
            .iter()
            .enumerate()
            .find_map(|(at, (_, ids))| resolved(ids, live).map(|inputs| (at, inputs)))
        else {
            return Err("the added stages' inputs do not resolve".into());
        };
        let (mut stage, _) = pending.remove(at);
        stage.inputs = inputs;
        changed.push(add_stage(stage, live)?);
    }
    // Removed transforms last, once whatever replaces them reads their inputs.
    for index in retired {
        for editor in live.wires.editors.remove(&index).unwrap_or_default() {
            let _ = editor.send(TransformControl::Retire).await;
        }
        live.running[index].fingerprint = REMOVED.into();
        live.view.remove(index);
        changed.push(format!("{} removed", live.plan.stages[index].path));
    }
    if changed.is_empty() {
        return Ok("nothing changed".into());
    }
    Ok(changed.join(", "))
}

/// Builds an added transform or sink, joins it to the outputs it reads and runs it.
fn add_stage(stage: PlannedStage, live: &mut Live<'_>) -> Result<String, String> {
    let path = stage.path.clone();
    if let Some(&ended) = stage
        .inputs
        .iter()
        .find(|&&i| live.wires.joiners[i].ended())
    {
        return Err(format!(
            "{path} cannot be added: its input `{}` has ended",
            live.plan.stages[ended].id
        ));
    }
    let metrics: Arc<StageMetrics> = Arc::default();
    // Nothing can read the errors of a stage an edit adds (that would add a source).
    let cx = BuildContext {
        pipeline: live.plan.pipeline_name(),
        path: path.clone(),
        metrics: Arc::clone(&metrics),
        resources: Arc::clone(live.resources),
        rejects: Rejects::disconnected(),
    };
    let parallel = match stage.kind {
        StageKind::Transform => stage.config.parallel().filter(|p| p.instances > 1),
        _ => None,
    };
    let mut built = Vec::new();
    for _ in 0..parallel.as_ref().map_or(1, |p| p.instances) {
        built.push(
            stage
                .config
                .build(&cx)
                .map_err(|e| format!("{path}: {e}"))?,
        );
    }
    let mut receivers = Vec::new();
    let mut queues = Vec::new();
    for &upstream in &stage.inputs {
        let (tx, rx) = mpsc::channel::<Message>(CHANNEL_MESSAGES);
        queues.push(tx.downgrade());
        if live.wires.joiners[upstream].join(tx).is_err() {
            tracing::warn!(
                "{path}: its input `{}` ended while it was added",
                live.plan.stages[upstream].id
            );
        }
        receivers.push(rx);
    }
    let input = Inputs::new(receivers);
    let mut output = Output::new(Vec::new(), Arc::clone(&metrics));
    let index = live.plan.stages.len();
    live.wires.joiners.push(output.joiner());
    live.wires.rejects.push(WeakRejects::default());
    live.view.register(watched(
        &stage,
        &metrics,
        &live.wires.joiners[index],
        queues,
    ));
    live.plan.stages.push(stage);
    live.metrics.push(Arc::clone(&metrics));
    live.running.push(Running::of_stage(live.plan, index));
    let health = live.health.clone();
    let handles = match (built.pop().expect("built at least once"), parallel) {
        (Stage::Transform(first), Some(parallel)) => {
            let mut transforms = transforms_of(built);
            transforms.push(first);
            let (handles, editors) = spawn_instances(
                live.tasks,
                transforms,
                Wiring {
                    input,
                    output,
                    metrics,
                    rejects: Rejects::disconnected(),
                    parallel,
                    mark: Arc::from(path.as_str()),
                },
                live.trigger,
                live.health,
            );
            live.wires.editors.insert(index, editors);
            handles
        }
        (Stage::Transform(transform), None) => {
            let (editor, edits) = mpsc::channel(1);
            live.wires.editors.insert(index, vec![editor]);
            let task = run_transform(
                transform,
                Ports {
                    input,
                    output,
                    rejects: Rejects::disconnected(),
                },
                metrics,
                live.trigger.subscribe(),
                health.clone(),
                edits,
            );
            vec![live.tasks.spawn(guarded(health, task)).id()]
        }
        (Stage::Sink(sink), _) => {
            let (swap, swaps) = mpsc::channel(1);
            live.wires.swaps.insert(index, swap);
            let task = run_sink(
                sink,
                input,
                Rejects::disconnected(),
                metrics,
                health.clone(),
                swaps,
            );
            vec![live.tasks.spawn(guarded(health, task)).id()]
        }
        (Stage::Source(_), _) => unreachable!("sources are never added while running"),
    };
    for handle in handles {
        live.task_stage.insert(handle, index);
    }
    tracing::info!("{path}: started (added by an edit)");
    Ok(format!("{path} added"))
}

/// Where a stage with several instances is connected.
struct Wiring {
    /// The stage's inputs (the router reads them).
    input: Inputs,
    /// The stage's output (the merge feeds it).
    output: Output,
    /// The stage's counters: the instances count what they receive and drop, the merge what the
    /// stage emits.
    metrics: Arc<StageMetrics>,
    /// The stage's rejects, flushed by each instance.
    rejects: Rejects,
    parallel: Parallel,
    /// The stage's name in progress marks.
    mark: Arc<str>,
}

/// Runs `instances` of a keyed transform between a router and a merge (see `parallel`); returns
/// the ids of the tasks, which all count as the stage's.
fn spawn_instances(
    tasks: &mut JoinSet<StageResult>,
    instances: Vec<Box<dyn Transform>>,
    wiring: Wiring,
    trigger: &ShutdownTrigger,
    health: &RunHealth,
) -> (Vec<tokio::task::Id>, Vec<mpsc::Sender<TransformControl>>) {
    let Wiring {
        input,
        output,
        metrics,
        rejects,
        parallel,
        mark,
    } = wiring;
    let mut to_instances = Vec::with_capacity(instances.len());
    let mut from_instances = Vec::with_capacity(instances.len());
    let mut ids = Vec::with_capacity(instances.len() + 2);
    let mut editors = Vec::with_capacity(instances.len());
    for transform in instances {
        let (editor, edits) = mpsc::channel(1);
        editors.push(editor);
        let (to_instance, instance_input) = mpsc::channel::<Message>(CHANNEL_MESSAGES);
        let (to_merge, merge_input) = mpsc::channel::<Message>(CHANNEL_MESSAGES);
        // What an instance emits is counted once, by the merge.
        to_instances.push(Output::new(vec![to_instance], Arc::default()));
        from_instances.push(merge_input);
        let instance = run_transform(
            transform,
            Ports {
                input: Inputs::new(vec![instance_input]),
                output: Output::new(vec![to_merge], Arc::default()),
                rejects: rejects.clone(),
            },
            Arc::clone(&metrics),
            trigger.subscribe(),
            health.clone(),
            edits,
        );
        ids.push(tasks.spawn(guarded(health.clone(), instance)).id());
    }
    let router = parallel::route(input, to_instances, parallel);
    ids.push(tasks.spawn(guarded(health.clone(), router)).id());
    let merge = parallel::merge(Inputs::new(from_instances), output, mark);
    ids.push(tasks.spawn(guarded(health.clone(), merge)).id());
    (ids, editors)
}

/// The rejects of stage `index`: connected to its errors stream when a component reads
/// `<id>.errors` (the stream's receiving end waits in the run's [`ErrorStreams`] for it).
fn connect_rejects(plan: &Plan, index: usize, resources: &RunResources) -> Rejects {
    if !plan.stages.iter().any(|s| s.errors_of == Some(index)) {
        return Rejects::disconnected();
    }
    let stage = &plan.stages[index];
    let (rejects, stream) = error_stream(&stage.id);
    resources.get::<ErrorStreams>().offer(&stage.path, stream);
    rejects
}

/// The transforms among the instances built for one stage.
fn transforms_of(built: Vec<Stage>) -> Vec<Box<dyn Transform>> {
    built
        .into_iter()
        .filter_map(|stage| match stage {
            Stage::Transform(transform) => Some(transform),
            _ => None,
        })
        .collect()
}

/// How the view shows `stage`.
fn watched(
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

fn failure(plan: &Plan, i: usize, error: StageError) -> StageFailure {
    StageFailure {
        path: plan.stages[i].path.clone(),
        type_name: plan.stages[i].type_name.clone(),
        error,
    }
}

fn counts(plan: &Plan, metrics: &[Arc<StageMetrics>]) -> Vec<StageCounts> {
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

/// Runs one stage's task, turning a panic into an error. On failure the run is marked failed
/// *before* the stage's state (and any batch it held) is dropped.
async fn guarded(health: RunHealth, stage: impl Future<Output = StageResult>) -> StageResult {
    let mut stage = std::pin::pin!(AssertUnwindSafe(stage).catch_unwind());
    let result = match stage.as_mut().await {
        Ok(result) => result,
        Err(payload) => Err(StageError::Panicked(crate::stage::panic_message(payload))),
    };
    if result.is_err() {
        health.fail();
    }
    result
}

async fn run_source(
    source: Box<dyn Source>,
    output: Output,
    rejects: Rejects,
    shutdown: Shutdown,
    health: RunHealth,
) -> StageResult {
    let result = source
        .run(SourceContext {
            output,
            shutdown,
            health,
        })
        .await;
    rejects.flush().await;
    result
}

/// Marks the run failed and the batch's tickets undelivered, then returns `error`.
fn fail_with(health: &RunHealth, acks: &crate::ack::Acks, error: StageError) -> StageResult {
    health.fail();
    acks.fail();
    Err(error)
}

/// Runs a transform until its inputs end. The transform (and whatever records it holds), its
/// inputs and its pending output are owned here and outlive [`drive_transform`], so when any call
/// fails the run is marked failed before they are dropped: tickets let go afterwards know that
/// their records were not delivered.
async fn run_transform(
    mut transform: Box<dyn Transform>,
    mut ports: Ports,
    metrics: Arc<StageMetrics>,
    shutdown: Shutdown,
    health: RunHealth,
    mut edits: mpsc::Receiver<TransformControl>,
) -> StageResult {
    let mut produced = Vec::new();
    let result = drive_transform(
        transform.as_mut(),
        &mut ports,
        &mut produced,
        &metrics,
        &shutdown,
        &health,
        &mut edits,
    )
    .await;
    if result.is_err() {
        health.fail();
    }
    result
}

/// A transform's input and outputs.
struct Ports {
    input: Inputs,
    output: Output,
    /// Where what it rejects goes; flushed after every call into the transform.
    rejects: Rejects,
}

/// What wakes a transform task.
enum Wake {
    Input(Option<InputEvent>),
    Tick,
    Edit(TransformControl),
}

async fn drive_transform(
    transform: &mut dyn Transform,
    ports: &mut Ports,
    produced: &mut Vec<Batch>,
    metrics: &StageMetrics,
    shutdown: &Shutdown,
    health: &RunHealth,
    edits: &mut mpsc::Receiver<TransformControl>,
) -> StageResult {
    let Ports {
        input,
        output,
        rejects,
    } = ports;
    let mut edits_open = true;
    let mut watermarks = Watermarks::new(input.ports());
    let mut ticker = transform.tick_interval().map(|period| {
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        let wake = tokio::select! {
            event = input.next() => Wake::Input(event),
            _ = async { ticker.as_mut().expect("ticking").tick().await }, if ticker.is_some() => Wake::Tick,
            edit = edits.recv(), if edits_open => match edit {
                Some(edit) => Wake::Edit(edit),
                None => {
                    edits_open = false;
                    continue;
                }
            },
        };
        let next = match wake {
            Wake::Input(event) => event.map(Some),
            Wake::Tick => Some(None),
            Wake::Edit(TransformControl::Retire) => break,
            Wake::Edit(TransformControl::Offer(edit)) => {
                // Between two batches: the transform says whether it can take its edited
                // self, then takes it once every transform of the edit has said yes.
                let verdict = transform.can_adopt(edit.edited.as_ref());
                let accepted = verdict.is_ok();
                let _ = edit.verdict.send(verdict);
                if accepted && edit.commit.await == Ok(true) {
                    transform.adopt(edit.edited);
                }
                continue;
            }
        };
        let mut advanced = None;
        match next {
            Some(Some(InputEvent::Batch(_, batch))) => {
                metrics
                    .received
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let acks = batch.acks().clone();
                let started = std::time::Instant::now();
                if let Err(e) = transform.process(batch, produced) {
                    return fail_with(health, &acks, e);
                }
                metrics.add_batch(started.elapsed());
            }
            Some(Some(InputEvent::Watermark(port, t))) => {
                advanced = watermarks.observe(port, t);
            }
            Some(Some(InputEvent::Ended(port))) => {
                advanced = watermarks.end(port);
            }
            Some(None) => transform.tick(produced)?,
            None => break,
        }
        let mut forward = None;
        if let Some(watermark) = advanced {
            transform.on_watermark(watermark, produced)?;
            forward = Some(transform.output_watermark(watermark));
        }
        for batch in produced.drain(..) {
            if output.send(batch).await.is_err() {
                // Everything downstream is gone, so a stage after this one failed: what is
                // still queued here will not be delivered.
                health.fail();
                return Ok(());
            }
        }
        if let Some(watermark) = forward
            && output.send_watermark(watermark).await.is_err()
        {
            health.fail();
            return Ok(());
        }
        rejects.flush().await;
    }
    if shutdown.is_requested() {
        transform.stop(produced)?;
    } else {
        transform.finish(produced)?;
    }
    for batch in produced.drain(..) {
        if output.send(batch).await.is_err() {
            health.fail();
            break;
        }
    }
    rejects.flush().await;
    Ok(())
}

async fn run_sink(
    mut sink: Box<dyn Sink>,
    mut input: Inputs,
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
    health: RunHealth,
    mut swaps: mpsc::Receiver<SinkSwap>,
) -> StageResult {
    let mut swaps_open = true;
    loop {
        tokio::select! {
            biased;
            swap = swaps.recv(), if swaps_open => match swap {
                // Between two batches: the old sink flushes what it has, then goes (freeing
                // its port or file) before the new one is built.
                Some(swap) => {
                    if let Err(e) = sink.finish().await {
                        health.fail();
                        return Err(e);
                    }
                    drop(std::mem::replace(&mut sink, Box::new(Discard)));
                    sink = match swap.config.map(|c| c.build(&swap.cx)) {
                        None => Box::new(Discard),
                        Some(Ok(Stage::Sink(new))) => new,
                        Some(Ok(_)) => unreachable!("a sink's config builds a sink"),
                        Some(Err(e)) => {
                            health.fail();
                            let _ = swap.done.send(Err(e.to_string()));
                            return Err(e);
                        }
                    };
                    tracing::info!("{}: replaced by the edited sink", swap.cx.path);
                    let _ = swap.done.send(Ok(()));
                }
                None => swaps_open = false,
            },
            event = input.next() => match event {
                Some(InputEvent::Batch(_, batch)) => {
                    metrics
                        .received
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    // Not a clone of the tickets: one held here would keep them from settling
                    // while the sink commits (a Kafka transaction takes the offsets of what has
                    // settled). A sink that fails marks the tickets of what it drops itself;
                    // this catches what it holds.
                    let on_failure = batch.acks().on_failure();
                    let started = std::time::Instant::now();
                    if let Err(e) = sink.write(batch).await {
                        health.fail();
                        on_failure.fail();
                        return Err(e);
                    }
                    metrics.add_batch(started.elapsed());
                    rejects.flush().await;
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    let finished = if health.has_failed() {
        sink.finish_failed_run().await
    } else {
        sink.finish().await
    };
    if finished.is_err() {
        health.fail();
    }
    rejects.flush().await;
    finished
}
