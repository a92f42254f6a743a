//! A stage's inputs: one bounded channel per incoming edge, read fairly. (The event-time
//! watermark across them, the smallest of each live input's latest, is `stage::Watermarks`.)

use crate::record::{Batch, Millis};
use crate::stage::Message;
use std::future::poll_fn;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// Something that arrived on a stage's inputs.
#[derive(Debug)]
pub enum InputEvent {
    /// A batch from input `port`.
    Batch(usize, Batch),
    /// A watermark from input `port`.
    Watermark(usize, Millis),
    /// Input `port` has ended.
    Ended(usize),
}

/// The receiving ends of a stage's incoming edges.
pub struct Inputs {
    receivers: Vec<Option<mpsc::Receiver<Message>>>,
    open: usize,
    next: usize,
}

impl Inputs {
    /// Inputs over `receivers`, port `i` being `receivers[i]`.
    pub fn new(receivers: Vec<mpsc::Receiver<Message>>) -> Self {
        Inputs {
            open: receivers.len(),
            receivers: receivers.into_iter().map(Some).collect(),
            next: 0,
        }
    }

    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.receivers.len()
    }

    /// The next event, or `None` once every input has ended.
    pub async fn next(&mut self) -> Option<InputEvent> {
        if self.open == 0 {
            return None;
        }
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<InputEvent>> {
        let n = self.receivers.len();
        for k in 0..n {
            // Start after the port served last, so one busy input cannot starve the others.
            let port = (self.next + k) % n;
            let Some(rx) = self.receivers[port].as_mut() else {
                continue;
            };
            match rx.poll_recv(cx) {
                Poll::Ready(Some(message)) => {
                    self.next = port + 1;
                    return Poll::Ready(Some(match message {
                        Message::Batch(batch) => InputEvent::Batch(port, batch),
                        Message::Watermark(t) => InputEvent::Watermark(port, t),
                    }));
                }
                Poll::Ready(None) => {
                    self.receivers[port] = None;
                    self.open -= 1;
                    return Poll::Ready(Some(InputEvent::Ended(port)));
                }
                Poll::Pending => {}
            }
        }
        if self.open == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, Schema};
    use std::sync::Arc;

    fn at(times: &[Millis]) -> Batch {
        let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["x"])), times.len());
        for &t in times {
            b.push_str("x");
            b.end_row(t);
        }
        b.build()
    }

    #[tokio::test]
    async fn inputs_interleave_and_report_each_end() {
        let (tx0, rx0) = mpsc::channel(4);
        let (tx1, rx1) = mpsc::channel(4);
        let mut inputs = Inputs::new(vec![rx0, rx1]);
        tx0.send(Message::Batch(at(&[1]))).await.unwrap();
        tx0.send(Message::Watermark(2)).await.unwrap();
        tx1.send(Message::Batch(at(&[3]))).await.unwrap();
        drop(tx1);
        let mut seen = Vec::new();
        drop(tx0);
        while let Some(event) = inputs.next().await {
            seen.push(match event {
                InputEvent::Batch(port, b) => format!("{port}:{}", b.times()[0]),
                InputEvent::Watermark(port, t) => format!("{port}:wm{t}"),
                InputEvent::Ended(port) => format!("{port}:end"),
            });
        }
        assert_eq!(seen, ["0:1", "1:3", "0:wm2", "1:end", "0:end"]);
    }
}
