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

use crate::record::{Batch, Millis};
use async_trait::async_trait;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why a stage stopped with an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError(String);

impl StageError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        StageError(message.into())
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StageError {}

impl From<String> for StageError {
    fn from(message: String) -> Self {
        StageError(message)
    }
}

impl From<&str> for StageError {
    fn from(message: &str) -> Self {
        StageError(message.to_string())
    }
}

/// Result of a stage operation.
pub type StageResult<T = ()> = Result<T, StageError>;

/// Produces batches. `run` returns when the input is exhausted (a finite source), when
/// [`SourceContext::shutdown`] fires, or when nothing downstream reads any more.
#[async_trait]
pub trait Source: Send {
    /// Runs the source to completion.
    async fn run(self: Box<Self>, cx: SourceContext) -> StageResult;
}

/// Turns batches into batches.
pub trait Transform: Send {
    /// Handles one input batch, pushing any output batches onto `out`.
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult;

    /// How often [`on_tick`](Self::on_tick) should run; `None` (the default) for never.
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
    fn on_tick(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        Ok(())
    }

    /// Called once when every input has ended; emits whatever is still held.
    fn finish(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        Ok(())
    }
}

/// Delivers batches out of the pipeline.
#[async_trait]
pub trait Sink: Send {
    /// Delivers one batch.
    async fn write(&mut self, batch: Batch) -> StageResult;

    /// Called once when every input has ended: flush and close.
    async fn finish(&mut self) -> StageResult;
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

/// Whether a run has failed; one shared flag per run. Set by the engine *before* a failed
/// stage's queued batches are dropped, so delivery tickets settling afterwards can tell that
/// they were not delivered.
#[derive(Clone, Debug, Default)]
pub struct RunHealth(Arc<std::sync::atomic::AtomicBool>);

impl RunHealth {
    /// Marks the run as failed.
    pub fn fail(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once any stage failed.
    pub fn has_failed(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Counters every stage keeps; the engine prints them when the run ends.
#[derive(Debug, Default)]
pub struct StageMetrics {
    /// Records that came in.
    pub received: AtomicU64,
    /// Records sent on.
    pub emitted: AtomicU64,
    /// Records (or input rows) dropped as bad or late; each drop is also logged.
    pub dropped: AtomicU64,
}

impl StageMetrics {
    /// Adds `n` dropped records.
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads (received, emitted, dropped).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.emitted.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
        )
    }
}

/// Everything downstream of a stage is gone (it failed or stopped); the stage should stop too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownstreamClosed;

/// What travels on an edge between two stages.
#[derive(Debug, Clone)]
pub enum Message {
    /// Records.
    Batch(Batch),
    /// The sender will send no record with an event time at or before this any more (beyond
    /// what the receiver's own lateness allows).
    Watermark(Millis),
}

/// A stage's outgoing edges. Fan-out sends each batch to every consumer.
pub struct Output {
    senders: Vec<mpsc::Sender<Message>>,
    had_consumers: bool,
    metrics: Arc<StageMetrics>,
    /// Sources announce their progress themselves: after each batch, the latest event time so
    /// far becomes the watermark.
    derive_watermarks: bool,
    latest: Millis,
    watermark: Millis,
}

impl Output {
    /// A transform's output feeding `senders` and counting into `metrics`; watermarks are sent
    /// explicitly with [`send_watermark`](Self::send_watermark).
    pub fn new(senders: Vec<mpsc::Sender<Message>>, metrics: Arc<StageMetrics>) -> Self {
        Output {
            had_consumers: !senders.is_empty(),
            senders,
            metrics,
            derive_watermarks: false,
            latest: Millis::MIN,
            watermark: Millis::MIN,
        }
    }

    /// A source's output: after every batch it sends the latest event time seen as watermark.
    pub fn for_source(senders: Vec<mpsc::Sender<Message>>, metrics: Arc<StageMetrics>) -> Self {
        Output {
            derive_watermarks: true,
            ..Output::new(senders, metrics)
        }
    }

    /// Sends `batch` to every consumer, waiting while any of them is full (backpressure).
    pub async fn send(&mut self, batch: Batch) -> Result<(), DownstreamClosed> {
        if batch.is_empty() {
            return Ok(());
        }
        let watermark = self.count(&batch);
        self.send_message(Message::Batch(batch)).await?;
        match watermark {
            Some(t) => self.send_watermark(t).await,
            None => Ok(()),
        }
    }

    /// Tells every consumer that no record at or before `watermark` will follow (only sent when
    /// it advances).
    pub async fn send_watermark(&mut self, watermark: Millis) -> Result<(), DownstreamClosed> {
        if !self.advance(watermark) {
            return Ok(());
        }
        self.send_message(Message::Watermark(watermark)).await
    }

    /// Records `watermark` as sent; false when it does not advance (nothing to send).
    fn advance(&mut self, watermark: Millis) -> bool {
        let advances = watermark > self.watermark;
        if advances {
            self.watermark = watermark;
        }
        advances
    }

    /// From now on this output sends only the watermarks it is given (for a source that tracks
    /// progress per input partition).
    pub fn manual_watermarks(&mut self) {
        self.derive_watermarks = false;
    }

    /// [`send_watermark`](Self::send_watermark) for code running on a blocking thread.
    pub fn blocking_send_watermark(&mut self, watermark: Millis) -> Result<(), DownstreamClosed> {
        if !self.advance(watermark) {
            return Ok(());
        }
        self.blocking_send_message(Message::Watermark(watermark))
    }

    /// [`send`](Self::send) for code running outside the async runtime (a blocking thread).
    pub fn blocking_send(&mut self, batch: Batch) -> Result<(), DownstreamClosed> {
        if batch.is_empty() {
            return Ok(());
        }
        let watermark = self.count(&batch);
        self.blocking_send_message(Message::Batch(batch))?;
        if let Some(t) = watermark {
            self.blocking_send_watermark(t)?;
        }
        Ok(())
    }

    /// Counts the batch; for sources, returns the watermark to announce after it.
    fn count(&mut self, batch: &Batch) -> Option<Millis> {
        self.metrics
            .emitted
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if !self.derive_watermarks {
            return None;
        }
        self.latest = self
            .latest
            .max(batch.times().iter().copied().max().unwrap_or(Millis::MIN));
        Some(self.latest)
    }

    async fn send_message(&mut self, message: Message) -> Result<(), DownstreamClosed> {
        let mut closed = Vec::new();
        let mut copies = copies(message, self.senders.len());
        for (i, sender) in self.senders.iter().enumerate() {
            if sender
                .send(copies.next().expect("one copy per sender"))
                .await
                .is_err()
            {
                closed.push(i);
            }
        }
        self.forget(closed)
    }

    fn blocking_send_message(&mut self, message: Message) -> Result<(), DownstreamClosed> {
        let mut closed = Vec::new();
        let mut copies = copies(message, self.senders.len());
        for (i, sender) in self.senders.iter().enumerate() {
            if sender
                .blocking_send(copies.next().expect("one copy per sender"))
                .is_err()
            {
                closed.push(i);
            }
        }
        self.forget(closed)
    }

    fn forget(&mut self, closed: Vec<usize>) -> Result<(), DownstreamClosed> {
        for i in closed.into_iter().rev() {
            self.senders.remove(i);
        }
        if self.had_consumers && self.senders.is_empty() {
            Err(DownstreamClosed)
        } else {
            Ok(())
        }
    }
}

/// `n` handles to `message`: clones for all but the last, which gets the original.
fn copies(message: Message, n: usize) -> impl Iterator<Item = Message> {
    let mut original = Some(message);
    (0..n).map(move |i| {
        if i + 1 == n {
            original.take().expect("taken once")
        } else {
            original.clone().expect("present until the last copy")
        }
    })
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

/// The receiving side of a stop request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown(watch::Receiver<bool>);

/// The sending side of a stop request.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A connected trigger and signal.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks every holder of the signal to stop.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// A new signal connected to this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// True once a stop was requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until a stop is requested (or the trigger is gone, which means the same).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Schema;

    fn batch(rows: usize) -> Batch {
        let mut b = crate::record::BatchBuilder::with_capacity(Arc::new(Schema::new(["a"])), rows);
        for i in 0..rows {
            b.push_str("x");
            b.end_row(i as i64);
        }
        b.build()
    }

    #[tokio::test]
    async fn fan_out_reaches_every_consumer_and_survives_one_closing() {
        let (tx1, mut rx1) = mpsc::channel(4);
        let (tx2, rx2) = mpsc::channel(4);
        let metrics = Arc::new(StageMetrics::default());
        let mut out = Output::for_source(vec![tx1, tx2], Arc::clone(&metrics));
        out.send(batch(2)).await.unwrap();
        drop(rx2);
        out.send(batch(3)).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(match rx1.recv().await.unwrap() {
                Message::Batch(b) => format!("batch {}", b.len()),
                Message::Watermark(t) => format!("watermark {t}"),
            });
        }
        assert_eq!(seen, ["batch 2", "watermark 1", "batch 3", "watermark 2"]);
        drop(rx1);
        assert_eq!(out.send(batch(1)).await, Err(DownstreamClosed));
        assert_eq!(metrics.snapshot().1, 6);
    }

    #[tokio::test]
    async fn shutdown_signal_fires_for_every_subscriber() {
        let (trigger, mut a) = shutdown_pair();
        let b = trigger.subscribe();
        assert!(!a.is_requested());
        trigger.trigger();
        a.requested().await;
        assert!(b.is_requested());
    }
}
