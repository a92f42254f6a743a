//! The stage interface that every built-in and plugin stage implements.
//!
//! A pipeline is a graph of stages in three roles: a [`Source`] produces batches until it is done
//! or told to stop; a [`Transform`] turns each incoming batch into zero or more outgoing ones (and
//! may act on a timer or at end of input); a [`Sink`] delivers batches out of the pipeline. The
//! engine (`topology`) runs each stage as its own task and connects them with bounded channels of
//! [`Batch`]es, so a slow stage slows its inputs instead of growing memory.
//!
//! Transforms are synchronous on purpose: they are pure CPU work, and a plugin behind a C ABI can
//! implement them without an async runtime crossing the boundary.

use super::error::StageResult;
use super::output::Output;
use super::signals::{RunHealth, Shutdown};
use crate::record::{Batch, Millis};
use async_trait::async_trait;
use std::time::Duration;

/// Produces batches. `run` returns when the input is exhausted (a finite source), when
/// [`SourceContext::shutdown`] fires, or when nothing downstream reads any more.
#[async_trait]
pub trait Source: Send {
    /// Runs the source to completion.
    async fn run(self: Box<Self>, cx: SourceContext) -> StageResult;
}

/// Turns batches into batches. (`Any`: a running transform may look at the concrete type of its
/// edited self, see [`can_adopt`](Self::can_adopt).)
pub trait Transform: Send + std::any::Any {
    /// Handles one input batch, pushing any output batches onto `out`.
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult;

    /// Handles one batch that arrived on input `port` (the position of its input in the
    /// component's `inputs`). The default does not tell the inputs apart and calls
    /// [`process`](Self::process); a stage whose inputs play different parts (a join's two
    /// sides) overrides it.
    fn process_from(&mut self, port: usize, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let _ = port;
        self.process(batch, out)
    }

    /// How often [`tick`](Self::tick) should run; `None` (the default) for never.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }

    /// Called when the event-time watermark of the inputs advances: no record with an event
    /// time at or before `watermark` is expected any more (the engine takes, per input, the
    /// latest event time seen, and the smallest of those over the inputs still open).
    fn on_watermark(&mut self, _watermark: Millis, _out: &mut Vec<Batch>) -> StageResult {
        Ok(())
    }

    /// The watermark this transform's output carries when its input watermark is `input`:
    /// the default passes it on; a stage that may still emit older records holds it back.
    fn output_watermark(&self, input: Millis) -> Millis {
        input
    }

    /// Called every [`tick_interval`](Self::tick_interval), for work driven by the clock.
    fn tick(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        Ok(())
    }

    /// Called once when every input has ended; emits whatever is still held.
    fn finish(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        Ok(())
    }

    /// Called instead of [`finish`](Self::finish) when the inputs ended because the run was asked
    /// to stop (Ctrl-C, SIGTERM). The default finishes as usual; a stage holding records that a
    /// restart reads again (they carry delivery tickets) may instead let them go undelivered, so
    /// their offsets stay uncommitted and the next run sees them whole rather than emitting a
    /// partial result now.
    fn stop(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.finish(out)
    }

    /// Whether this running transform can take the settings of `edited` (the same component
    /// built from the edited pipeline file, `weir run --watch`) and keep everything it holds;
    /// if not, why. The default refuses: what a transform holds must not be lost silently.
    fn can_adopt(&self, _edited: &dyn Transform) -> Result<(), EditRefusal> {
        Err(EditRefusal::new(
            "this transform type cannot take an edit while running",
        ))
    }

    /// Takes the settings of `edited`, which [`can_adopt`](Self::can_adopt) accepted, between two
    /// batches.
    fn adopt(&mut self, _edited: Box<dyn Transform>) {}
}

/// For a transform that holds nothing between batches: `edited` is accepted when it is a `T`,
/// and then replaces `current` whole.
pub fn adopt_stateless<T: Transform>(current: &mut T, edited: Box<dyn Transform>) {
    let edited: Box<dyn std::any::Any> = edited;
    if let Ok(edited) = edited.downcast::<T>() {
        *current = *edited;
    }
}

/// [`Transform::can_adopt`] for a stateless `T`: any edited `T`.
pub fn can_adopt_stateless<T: Transform>(edited: &dyn Transform) -> Result<(), EditRefusal> {
    let edited: &dyn std::any::Any = edited;
    if edited.is::<T>() {
        Ok(())
    } else {
        Err(EditRefusal::new("its type changed"))
    }
}

/// Why a running transform cannot take its edited settings ([`Transform::can_adopt`]): what
/// stands in the way, told as the end of "<stage> cannot take the edit: …" (the reload adds
/// what to do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditRefusal(String);

impl EditRefusal {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> EditRefusal {
        EditRefusal(reason.into())
    }
}

impl std::fmt::Display for EditRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Delivers batches out of the pipeline.
#[async_trait]
pub trait Sink: Send {
    /// Delivers one batch. A sink that cannot deliver it marks its tickets undelivered
    /// (`batch.acks().fail()`) before letting go of it, then returns the error.
    async fn write(&mut self, batch: Batch) -> StageResult;

    /// Delivers one batch that came from input `input` (its place in the sink's `inputs`): for
    /// a sink that treats its inputs apart (a dashboard panel per input). By default, `write`.
    async fn write_from(&mut self, input: usize, batch: Batch) -> StageResult {
        let _ = input;
        self.write(batch).await
    }

    /// Called once when every input has ended: flush and close.
    async fn finish(&mut self) -> StageResult;

    /// Called instead of [`finish`](Self::finish) when another stage has already failed the
    /// run: flush what is held and close, but start nothing new (a sink that never connected
    /// need not wait for its cluster only to report the same failure). By default, `finish`.
    async fn finish_failed_run(&mut self) -> StageResult {
        self.finish().await
    }
}

/// A built stage, ready to run.
pub enum Stage {
    /// A source.
    Source(Box<dyn Source>),
    /// A transform.
    Transform(Box<dyn Transform>),
    /// A sink.
    Sink(Box<dyn Sink>),
}

/// What a running source gets from the engine.
pub struct SourceContext {
    /// Where its batches go.
    pub output: Output,
    /// Fires when the run is asked to stop (Ctrl-C, SIGTERM, or another stage failed).
    pub shutdown: Shutdown,
    /// Whether any stage of the run has failed (then batches may have been dropped unread, and
    /// a source that commits progress must stop committing).
    pub health: RunHealth,
}

/// Runs a call that may block (a plugin, a Kafka client) from async code without stalling the
/// runtime's workers: on the multi-threaded runtime the worker hands its other tasks off first.
pub fn blocking<R>(call: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(rt) if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}
