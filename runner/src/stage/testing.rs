//! The one way unit tests drive a stage: build it with its factory from a TOML snippet of its
//! options, push batches through it the way the engine does (after each batch the watermark
//! advances to the latest event time seen, as with one input), and read what it emitted as JSON
//! lines; and the seeded generator property tests draw from. Only compiled for tests.

use super::drive::{Happening, TransformDriver};
use super::error::StageResult;
use super::factory::{BuildContext, RunResources, StageFactory};
use super::metrics::StageMetrics;
use super::runtime::{Stage, Transform};
use crate::config::{Diagnostic, Node, parse_document_for_tests};
use crate::record::{Batch, BatchBuilder, JsonWriter, Millis, Schema};
use std::sync::Arc;
use std::time::Duration;

/// Parses `options` (a component's keys, without `type` and `inputs`) as a document's root.
pub fn options(options: &str) -> Node {
    parse_document_for_tests(options)
}

/// The errors `factory` reports for `options` of a component at `path`, as the user reads them
/// (`t.toml:LINE:COL: error: PATH.KEY: message`).
pub fn option_errors(factory: &dyn StageFactory, path: &str, options: &str) -> Vec<String> {
    match factory.configure(&self::options(options), path) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(Diagnostic::to_string).collect(),
    }
}

/// A built stage of `factory` with `options`, at path `s`, counting into `metrics`.
pub fn build(factory: &dyn StageFactory, options: &str, metrics: Arc<StageMetrics>) -> Stage {
    build_in(factory, options, metrics, Default::default())
}

/// Why a stage of `factory` with `options` (which check) does not build.
pub fn build_error(factory: &dyn StageFactory, options: &str) -> String {
    match try_build(factory, options, Arc::default(), Default::default()) {
        Ok(_) => panic!("the stage builds"),
        Err(e) => e.to_string(),
    }
}

/// [`build`] with the run's shared `resources` given (to share them between runs under test).
pub fn build_in(
    factory: &dyn StageFactory,
    options: &str,
    metrics: Arc<StageMetrics>,
    resources: Arc<RunResources>,
) -> Stage {
    try_build(factory, options, metrics, resources)
        .unwrap_or_else(|e| panic!("stage does not build: {e}"))
}

/// A stage of `factory` with `options` (which must check), built at path `s`, or why not.
fn try_build(
    factory: &dyn StageFactory,
    options: &str,
    metrics: Arc<StageMetrics>,
    resources: Arc<RunResources>,
) -> Result<Stage, super::StageError> {
    let configured = factory
        .configure(&self::options(options), "s")
        .unwrap_or_else(|e| panic!("options do not check: {e:?}"));
    let cx = BuildContext {
        pipeline: "test".into(),
        path: "s".into(),
        metrics,
        resources,
        rejects: super::Rejects::disconnected(),
        inputs: Vec::new(),
    };
    configured.config.build(&cx)
}

/// A transform of `factory` with `options`, ready to be driven.
pub fn transform(factory: &dyn StageFactory, options: &str) -> Driver {
    transform_in(factory, options, Default::default())
}

/// [`transform`] built with the run's shared `resources` given.
pub fn transform_in(
    factory: &dyn StageFactory,
    options: &str,
    resources: Arc<RunResources>,
) -> Driver {
    transform_with_inputs(factory, options, resources, 1)
}

/// [`transform_in`] for a transform with `inputs` inputs (a join's two sides), each with its
/// own watermark.
pub fn transform_with_inputs(
    factory: &dyn StageFactory,
    options: &str,
    resources: Arc<RunResources>,
    inputs: usize,
) -> Driver {
    let metrics = Arc::new(StageMetrics::default());
    match build_in(factory, options, Arc::clone(&metrics), resources) {
        Stage::Transform(transform) => Driver {
            transform,
            driver: TransformDriver::new(inputs),
            latest: vec![Millis::MIN; inputs],
            metrics,
        },
        _ => panic!("{} does not build a transform", factory.type_name()),
    }
}

/// A transform under test, driven by the engine's rule ([`TransformDriver`]) with inputs whose
/// watermarks follow the latest event time of the batches each was given, as a source's does.
pub struct Driver {
    transform: Box<dyn Transform>,
    driver: TransformDriver,
    latest: Vec<Millis>,
    /// The stage's counters.
    pub metrics: Arc<StageMetrics>,
}

impl Driver {
    /// Processes `batch`, then advances the watermark to the latest event time seen.
    pub fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        self.process_from(0, batch, out)
    }

    /// Processes `batch` arriving on input `port`, then advances that input's watermark to the
    /// latest event time it has seen.
    pub fn process_from(&mut self, port: usize, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let latest = batch.times().iter().copied().max().unwrap_or(Millis::MIN);
        self.latest[port] = self.latest[port].max(latest);
        let happening = Happening::Batch { port, batch };
        self.driver
            .handle(self.transform.as_mut(), happening, out)?;
        let at = self.latest[port];
        self.driver.handle(
            self.transform.as_mut(),
            Happening::Watermark { port, at },
            out,
        )?;
        Ok(())
    }

    /// Input `port` ends (the others may go on).
    pub fn end_input(&mut self, port: usize, out: &mut Vec<Batch>) -> StageResult {
        let ended = Happening::Ended { port };
        self.driver
            .handle(self.transform.as_mut(), ended, out)
            .map(drop)
    }

    /// Offers the transform its edited self (as `weir run --watch` does); takes it if it can.
    pub fn offer(&mut self, edited: Driver) -> Result<(), super::EditRefusal> {
        self.transform.can_adopt(edited.transform.as_ref())?;
        self.transform.adopt(edited.transform);
        Ok(())
    }

    /// The transform's clock-driven work.
    pub fn tick(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.driver
            .handle(self.transform.as_mut(), Happening::Tick, out)
            .map(drop)
    }

    /// How often the engine would call [`tick`](Self::tick).
    pub fn tick_interval(&self) -> Option<Duration> {
        self.transform.tick_interval()
    }

    /// End of input.
    pub fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.driver
            .handle(self.transform.as_mut(), Happening::Finish, out)
            .map(drop)
    }

    /// The run was asked to stop before the input ended.
    pub fn stop(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.driver
            .handle(self.transform.as_mut(), Happening::Stop, out)
            .map(drop)
    }

    /// Processes `batch` and returns what came out as JSON lines.
    pub fn lines_of(&mut self, batch: Batch) -> Vec<String> {
        let mut out = Vec::new();
        self.process(batch, &mut out)
            .expect("the batch is processed");
        lines(&out)
    }
}

/// A batch with string fields `fields`, one row per `(event time, values)`.
pub fn batch(fields: &[&str], rows: &[(Millis, &[&str])]) -> Batch {
    let mut b =
        BatchBuilder::with_capacity(Arc::new(Schema::new(fields.iter().copied())), rows.len());
    for (time, values) in rows {
        for value in *values {
            b.push_str(value);
        }
        b.end_row(*time);
    }
    b.build()
}

/// The records of `batches` as JSON lines.
pub fn lines(batches: &[Batch]) -> Vec<String> {
    let mut bytes = Vec::new();
    let mut writer = JsonWriter::default();
    for b in batches {
        writer.write_batch(b, &mut bytes);
    }
    String::from_utf8(bytes)
        .expect("JSON is UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A xorshift generator seeded with `seed` (not 0): each call gives a number below its argument.
/// Property tests draw their random cases from it, so a failure repeats with the same seed.
pub fn xorshift(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |below| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    }
}
