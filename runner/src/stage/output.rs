//! A stage's outgoing edges: what travels on them ([`Message`]: batches and watermarks), fan-out
//! to every consumer with backpressure, the watermarks a source derives from its batches, and
//! consumers that join while the stage runs: stages added by an edit, and taps (`weir tap`),
//! which get copies only while they keep up and never slow the stage.

use super::metrics::StageMetrics;
use crate::record::{Batch, Millis};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

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
    /// Consumers that join while the stage runs (see [`Joiner`]).
    joining: Option<mpsc::UnboundedReceiver<Joining>>,
    taps: Vec<TapSender>,
}

/// A consumer joining a running stage's output.
#[derive(Debug)]
enum Joining {
    /// A stage: gets every message, with backpressure.
    Consumer(mpsc::Sender<Message>),
    /// A tap.
    Tap(TapSender),
}

/// The stage's end of a tap.
#[derive(Debug)]
struct TapSender {
    to: mpsc::Sender<Batch>,
    missed: Arc<AtomicU64>,
}

/// A tap on a stage's output: copies of the batches it sends (without their delivery tickets,
/// so holding one delays nothing), as many as the tap's buffer holds; the rest are counted in
/// `missed`, never waited for.
#[derive(Debug)]
pub struct Tap {
    /// The copies.
    pub batches: mpsc::Receiver<Batch>,
    /// Batches the tap missed because its buffer was full.
    pub missed: Arc<AtomicU64>,
}

/// Adds consumers to a running stage's output: from its next batch or watermark on, each
/// receives what the stage sends (what it sent before is not repeated).
#[derive(Clone, Debug)]
pub struct Joiner(mpsc::UnboundedSender<Joining>);

/// The stage has ended: nothing more will leave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageEnded;

impl Joiner {
    /// Adds `consumer`.
    pub fn join(&self, consumer: mpsc::Sender<Message>) -> Result<(), StageEnded> {
        self.0
            .send(Joining::Consumer(consumer))
            .map_err(|_| StageEnded)
    }

    /// Taps the output with a buffer of `buffer` batches.
    pub fn tap(&self, buffer: usize) -> Result<Tap, StageEnded> {
        let (to, batches) = mpsc::channel(buffer.max(1));
        let missed = Arc::new(AtomicU64::new(0));
        let sender = TapSender {
            to,
            missed: Arc::clone(&missed),
        };
        self.0.send(Joining::Tap(sender)).map_err(|_| StageEnded)?;
        Ok(Tap { batches, missed })
    }

    /// Whether the stage has ended (a [`join`](Self::join) would fail).
    pub fn ended(&self) -> bool {
        self.0.is_closed()
    }
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
            joining: None,
            taps: Vec::new(),
        }
    }

    /// A handle that adds consumers to this output while its stage runs.
    pub fn joiner(&mut self) -> Joiner {
        let (to, joining) = mpsc::unbounded_channel();
        self.joining = Some(joining);
        Joiner(to)
    }

    /// Takes in the consumers that joined since the last message.
    fn admit_joined(&mut self) {
        if let Some(joining) = &mut self.joining {
            while let Ok(joined) = joining.try_recv() {
                match joined {
                    Joining::Consumer(consumer) => {
                        self.senders.push(consumer);
                        self.had_consumers = true;
                    }
                    Joining::Tap(tap) => self.taps.push(tap),
                }
            }
        }
    }

    /// Offers each tap a copy of `batch` (without tickets); a full tap misses it.
    fn feed_taps(&mut self, batch: &Batch) {
        self.admit_joined();
        if self.taps.is_empty() {
            return;
        }
        self.taps.retain(|tap| match tap.to.try_reserve() {
            Ok(permit) => {
                let mut copy = batch.clone();
                drop(copy.take_acks());
                permit.send(copy);
                true
            }
            Err(mpsc::error::TrySendError::Full(())) => {
                tap.missed.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(())) => false,
        });
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
        self.feed_taps(&batch);
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
            self.metrics.watermark.store(watermark, Ordering::Relaxed);
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
        self.feed_taps(&batch);
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
        self.admit_joined();
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
        self.admit_joined();
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
    async fn a_consumer_that_joins_gets_what_is_sent_from_then_on() {
        let (tx1, mut rx1) = mpsc::channel(8);
        let mut out = Output::for_source(vec![tx1], Arc::default());
        let joiner = out.joiner();
        out.send(batch(2)).await.unwrap();
        let (tx2, mut rx2) = mpsc::channel(8);
        joiner.join(tx2).unwrap();
        out.send(batch(3)).await.unwrap();
        drop(out);
        let seen = |rx: &mut mpsc::Receiver<Message>| {
            let mut seen = Vec::new();
            while let Ok(m) = rx.try_recv() {
                seen.push(match m {
                    Message::Batch(b) => format!("batch {}", b.len()),
                    Message::Watermark(t) => format!("watermark {t}"),
                });
            }
            seen
        };
        assert_eq!(
            seen(&mut rx1),
            ["batch 2", "watermark 1", "batch 3", "watermark 2"]
        );
        assert_eq!(seen(&mut rx2), ["batch 3", "watermark 2"]);
        assert!(joiner.ended());
        let (tx3, _rx3) = mpsc::channel(1);
        assert_eq!(joiner.join(tx3), Err(StageEnded));
    }

    #[tokio::test]
    async fn a_tap_gets_copies_while_it_keeps_up_and_never_holds_the_stage() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut out = Output::new(vec![tx], Arc::default());
        let joiner = out.joiner();
        let mut tap = joiner.tap(2).unwrap();
        for rows in 1..=5 {
            out.send(batch(rows)).await.unwrap();
        }
        // The stage sent all five without waiting; the tap holds the first two.
        let mut consumer = 0;
        while let Ok(Message::Batch(b)) = rx.try_recv() {
            consumer += b.len();
        }
        assert_eq!(consumer, 15);
        assert_eq!(tap.batches.try_recv().unwrap().len(), 1);
        assert_eq!(tap.batches.try_recv().unwrap().len(), 2);
        assert!(tap.batches.try_recv().is_err());
        assert_eq!(tap.missed.load(Ordering::Relaxed), 3);
        // A tap that goes away is forgotten; the stage goes on.
        drop(tap);
        out.send(batch(1)).await.unwrap();
        assert!(out.taps.is_empty());
    }
}
