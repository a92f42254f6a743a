//! The one rule for driving a transform, shared by the engine's task loop, `weir test` and the
//! stage tests: what arrives on a transform's inputs (batches, watermarks per input, inputs
//! ending, timer ticks, the end of the run) becomes calls on the transform, with the input
//! watermark the smallest over the inputs still open, `on_watermark` called only when it
//! advances, and the watermark to pass downstream from `output_watermark`. Synchronous: the
//! caller owns the channels, the clock and what to do with the output.

use super::{StageResult, Transform};
use crate::record::{Batch, Millis};

/// Something that happens to a transform.
#[derive(Debug)]
pub enum Happening {
    /// A batch arrived on input `port`.
    Batch {
        /// The input.
        port: usize,
        /// The records.
        batch: Batch,
    },
    /// Input `port` will send nothing at or before `at`.
    Watermark {
        /// The input.
        port: usize,
        /// The event time it has passed.
        at: Millis,
    },
    /// Input `port` has ended.
    Ended {
        /// The input.
        port: usize,
    },
    /// The transform's timer fired.
    Tick,
    /// Every input ended: the transform emits what it holds.
    Finish,
    /// The run was asked to stop before its inputs ended.
    Stop,
}

/// Drives one transform by the engine's rule; see the module comment.
#[derive(Debug)]
pub struct TransformDriver {
    watermarks: Watermarks,
}

impl TransformDriver {
    /// A driver for a transform with `ports` inputs.
    pub fn new(ports: usize) -> TransformDriver {
        TransformDriver {
            watermarks: Watermarks::new(ports),
        }
    }

    /// Hands `happening` to `transform`, which appends what it emits to `out`. Returns the
    /// watermark to send downstream after `out`, when the input watermark advanced.
    pub fn handle(
        &mut self,
        transform: &mut dyn Transform,
        happening: Happening,
        out: &mut Vec<Batch>,
    ) -> StageResult<Option<Millis>> {
        let advanced = match happening {
            Happening::Batch { port, batch } => {
                return transform.process_from(port, batch, out).map(|()| None);
            }
            Happening::Tick => return transform.tick(out).map(|()| None),
            Happening::Finish => return transform.finish(out).map(|()| None),
            Happening::Stop => return transform.stop(out).map(|()| None),
            Happening::Watermark { port, at } => self.watermarks.observe(port, at),
            Happening::Ended { port } => self.watermarks.end(port),
        };
        let Some(watermark) = advanced else {
            return Ok(None);
        };
        transform.on_watermark(watermark, out)?;
        Ok(Some(transform.output_watermark(watermark)))
    }
}

/// Event-time progress per input port: the combined watermark is the smallest over the ports
/// still open.
#[derive(Debug)]
pub struct Watermarks {
    latest: Vec<Millis>,
    ended: Vec<bool>,
    current: Millis,
}

impl Watermarks {
    /// Tracking for `ports` inputs, none seen yet.
    pub fn new(ports: usize) -> Self {
        Watermarks {
            latest: vec![Millis::MIN; ports],
            ended: vec![false; ports],
            current: Millis::MIN,
        }
    }

    /// Notes a watermark from `port`; returns the combined watermark if it advanced.
    pub fn observe(&mut self, port: usize, watermark: Millis) -> Option<Millis> {
        self.latest[port] = self.latest[port].max(watermark);
        self.advance()
    }

    /// Notes that `port` ended; returns the new watermark if it advanced.
    pub fn end(&mut self, port: usize) -> Option<Millis> {
        self.ended[port] = true;
        self.advance()
    }

    fn advance(&mut self) -> Option<Millis> {
        let live = self
            .latest
            .iter()
            .zip(&self.ended)
            .filter(|(_, ended)| !**ended);
        let watermark = live.map(|(t, _)| *t).min()?;
        (watermark > self.current).then(|| {
            self.current = watermark;
            watermark
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_slowest_live_input() {
        let mut w = Watermarks::new(2);
        assert_eq!(w.observe(0, 300), None, "port 1 has not spoken");
        assert_eq!(w.observe(1, 50), Some(50));
        assert_eq!(w.observe(1, 500), Some(300));
        assert_eq!(w.observe(0, 200), None, "never goes back");
        assert_eq!(
            w.end(0),
            Some(500),
            "an ended input no longer holds it back"
        );
    }
}
