//! The task loops of a running pipeline: one per source, transform (or each instance of a keyed
//! transform, between a router and a merge) and sink. Each owns its stage and its channels; a
//! failing or panicking stage marks the run failed before what it holds is dropped.

use super::super::inputs::{InputEvent, Inputs};
use super::super::parallel;
use super::super::reload::{Discard, SinkSwap, TransformControl};
use crate::record::Batch;
use crate::stage::{
    Happening, Message, Output, Parallel, Rejects, RunHealth, Shutdown, ShutdownTrigger, Sink,
    Source, SourceContext, Stage, StageError, StageMetrics, StageResult, Transform,
    TransformDriver,
};
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Messages (batches and watermarks) that may wait on one edge before the sender has to wait:
/// bounds memory per edge.
pub(super) const CHANNEL_MESSAGES: usize = 16;

/// Runs one stage's task, turning a panic into an error. On failure the run is marked failed
/// *before* the stage's state (and any batch it held) is dropped.
pub(super) async fn guarded(
    health: RunHealth,
    stage: impl Future<Output = StageResult>,
) -> StageResult {
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

pub(super) async fn run_source(
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
pub(super) async fn run_transform(
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
pub(super) struct Ports {
    pub(super) input: Inputs,
    pub(super) output: Output,
    /// Where what it rejects goes; flushed after every call into the transform.
    pub(super) rejects: Rejects,
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
    let mut driver = TransformDriver::new(input.ports());
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
        let happening = match next {
            Some(Some(InputEvent::Batch(port, batch))) => {
                metrics
                    .received
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                let acks = batch.acks().clone();
                let started = std::time::Instant::now();
                if let Err(e) = driver.handle(transform, Happening::Batch { port, batch }, produced)
                {
                    return fail_with(health, &acks, e);
                }
                metrics.add_batch(started.elapsed());
                None
            }
            Some(Some(InputEvent::Watermark(port, at))) => Some(Happening::Watermark { port, at }),
            Some(Some(InputEvent::Ended(port))) => Some(Happening::Ended { port }),
            Some(None) => Some(Happening::Tick),
            None => break,
        };
        let forward = match happening {
            Some(happening) => driver.handle(transform, happening, produced)?,
            None => None,
        };
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
    let end = if shutdown.is_requested() {
        Happening::Stop
    } else {
        Happening::Finish
    };
    driver.handle(transform, end, produced)?;
    for batch in produced.drain(..) {
        if output.send(batch).await.is_err() {
            health.fail();
            break;
        }
    }
    rejects.flush().await;
    Ok(())
}

pub(super) async fn run_sink(
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
                Some(InputEvent::Batch(port, batch)) => {
                    metrics
                        .received
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    // Not a clone of the tickets: one held here would keep them from settling
                    // while the sink commits (a Kafka transaction takes the offsets of what has
                    // settled). A sink that fails marks the tickets of what it drops itself;
                    // this catches what it holds.
                    let on_failure = batch.acks().on_failure();
                    let started = std::time::Instant::now();
                    if let Err(e) = sink.write_from(port, batch).await {
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

/// Where a stage with several instances is connected.
pub(super) struct Wiring {
    /// The stage's inputs (the router reads them).
    pub(super) input: Inputs,
    /// The stage's output (the merge feeds it).
    pub(super) output: Output,
    /// The stage's counters: the instances count what they receive and drop, the merge what the
    /// stage emits.
    pub(super) metrics: Arc<StageMetrics>,
    /// The stage's rejects, flushed by each instance.
    pub(super) rejects: Rejects,
    pub(super) parallel: Parallel,
    /// The stage's name in progress marks.
    pub(super) mark: Arc<str>,
}

/// Runs `instances` of a keyed transform between a router and a merge (see `parallel`); returns
/// the ids of the tasks, which all count as the stage's.
pub(super) fn spawn_instances(
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
