//! Running one test against a pipeline's transforms, deterministically: the transforms are built
//! as `weir run` builds them (one instance each), sources and sinks are not; records enter where
//! a step injects them and flow through the graph at once; event time moves only when a step sets
//! the watermark, processing time only when a step advances the virtual clock (timers due on the
//! way fire at their due time). What each component puts out is kept until a step checks it.
//! Each transform is driven by the engine's own rule (`stage::TransformDriver`): watermarks per
//! input, the smallest of them passed on when it advances. What a transform rejects leaves
//! through its errors stream (`X.errors`, when the pipeline reads one) after each call, as the
//! engine flushes it, so a test can expect error records like any other output.

use super::compare::{Row, check};
use super::spec::{Action, Step, TIME_FIELD, TestCase};
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Schema};
use crate::stage::{
    BuildContext, Happening, Rejects, RunResources, Stage, StageKind, Transform, TransformDriver,
    error_stream,
};
use crate::time::VirtualClock;
use crate::topology::plan::Plan;
use std::collections::VecDeque;
use std::sync::Arc;

/// Why a test failed: the step (or the test, for set-up), and what went wrong.
#[derive(Debug)]
pub struct Failure {
    /// Where: the failing step, or the test.
    pub origin: crate::config::Origin,
    /// What went wrong, possibly several lines (a diff).
    pub message: String,
}

/// The transforms of a plan, driven by a test.
struct Harness<'p> {
    plan: &'p Plan,
    /// Built transforms, by plan index (`None` for sources and sinks).
    transforms: Vec<Option<Box<dyn Transform>>>,
    /// Each transform's rejects and the plan index of its errors stream, when one is read.
    rejects: Vec<Option<(Rejects, usize)>>,
    /// Error batches out of the last calls, by the errors stream they leave from.
    rejected: VecDeque<(usize, Batch)>,
    /// Transforms in an order where every stage comes after its inputs.
    order: Vec<usize>,
    /// What each stage put out (for a sink: what reached it) since the last check.
    produced: Vec<Vec<Batch>>,
    /// The watermark each stage's output carries.
    watermark_out: Vec<Option<Millis>>,
    /// Each transform's driver (by plan index; sources and sinks have one too, unused).
    drivers: Vec<TransformDriver>,
    /// When each ticking transform's timer fires next.
    next_tick: Vec<Option<Millis>>,
    clock: VirtualClock,
    now: Millis,
    ended: bool,
}

/// Runs `test` on fresh transforms of `plan`.
pub fn run(plan: &Plan, test: &TestCase) -> Result<(), Failure> {
    let mut harness = Harness::new(plan, test)?;
    for (number, step) in test.steps.iter().enumerate() {
        harness.step(step).map_err(|message| Failure {
            origin: step.origin.clone(),
            message: format!("step {}: {message}", number + 1),
        })?;
    }
    Ok(())
}

impl<'p> Harness<'p> {
    fn new(plan: &'p Plan, test: &TestCase) -> Result<Self, Failure> {
        let clock = VirtualClock::start(test.start);
        let resources = Arc::new(RunResources::default());
        let pipeline = plan.pipeline_name();
        let mut transforms = Vec::with_capacity(plan.stages.len());
        let mut rejects = Vec::with_capacity(plan.stages.len());
        for (index, stage) in plan.stages.iter().enumerate() {
            let stream = plan.stages.iter().position(|s| s.errors_of == Some(index));
            let connected = match stream {
                Some(stream) if stage.kind == StageKind::Transform => {
                    Some((error_stream(&stage.id).0, stream))
                }
                _ => None,
            };
            if stage.kind != StageKind::Transform {
                transforms.push(None);
                rejects.push(None);
                continue;
            }
            let cx = BuildContext {
                pipeline: pipeline.clone(),
                path: stage.path.clone(),
                metrics: Arc::default(),
                resources: Arc::clone(&resources),
                rejects: connected
                    .as_ref()
                    .map_or_else(Rejects::disconnected, |(r, _)| r.clone()),
                inputs: plan.input_ids(index),
            };
            rejects.push(connected);
            match stage.config.build(&cx) {
                Ok(Stage::Transform(t)) => transforms.push(Some(t)),
                Ok(_) => unreachable!("a transform's config builds a transform"),
                Err(e) => {
                    return Err(Failure {
                        origin: test.origin.clone(),
                        message: format!("cannot build {}: {e}", stage.path),
                    });
                }
            }
        }
        let next_tick = transforms
            .iter()
            .map(|t| {
                t.as_ref()
                    .and_then(|t| t.tick_interval())
                    .map(|p| test.start.saturating_add(p.as_millis() as Millis))
            })
            .collect();
        let stages = plan.stages.len();
        Ok(Harness {
            plan,
            order: topological(plan),
            transforms,
            rejects,
            rejected: VecDeque::new(),
            produced: vec![Vec::new(); stages],
            watermark_out: vec![None; stages],
            drivers: plan
                .stages
                .iter()
                .map(|stage| TransformDriver::new(stage.inputs.len()))
                .collect(),
            next_tick,
            clock,
            now: test.start,
            ended: false,
        })
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match &step.action {
            Action::Inject { component, records } => {
                self.alive("inject")?;
                let index = self.component(component)?;
                if self.plan.stages[index].kind == StageKind::Sink {
                    return Err(format!(
                        "`{component}` is a sink: inject where records leave a stage"
                    ));
                }
                let batch = batch_of(records)?;
                self.flow(VecDeque::from([(index, batch)]))
            }
            Action::Watermark(t) => {
                self.alive("move the watermark")?;
                for (i, stage) in self.plan.stages.iter().enumerate() {
                    if stage.kind == StageKind::Source {
                        self.watermark_out[i] =
                            Some(self.watermark_out[i].map_or(*t, |w| w.max(*t)));
                    }
                }
                self.propagate_watermarks()
            }
            Action::Advance(by) => self.advance(self.now.saturating_add(*by)),
            Action::End => {
                self.alive("end the input")?;
                self.ended = true;
                for &i in &self.order.clone() {
                    let mut out = Vec::new();
                    self.drive(i, Happening::Finish, &mut out)?;
                    self.flow(out.into_iter().map(|b| (i, b)).collect())?;
                }
                Ok(())
            }
            Action::Expect {
                component,
                expectation,
            } => {
                let index = self.component(component)?;
                let rows: Vec<Row> = std::mem::take(&mut self.produced[index])
                    .iter()
                    .flat_map(Row::all)
                    .collect();
                check(component, expectation, &rows)
            }
        }
    }

    fn alive(&self, what: &str) -> Result<(), String> {
        if self.ended {
            Err(format!("cannot {what} after `end`"))
        } else {
            Ok(())
        }
    }

    fn component(&self, id: &str) -> Result<usize, String> {
        self.plan
            .stages
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| {
                let ids: Vec<_> = self
                    .plan
                    .stages
                    .iter()
                    .map(|s| format!("`{}`", s.id))
                    .collect();
                format!("no component `{id}` (there are {})", ids.join(", "))
            })
    }

    fn transform(&mut self, index: usize) -> &mut dyn Transform {
        self.transforms[index]
            .as_deref_mut()
            .expect("only transforms are driven")
    }

    /// Hands `happening` to transform `index` by the engine's rule; returns the watermark its
    /// output passes on, when it moved.
    fn drive(
        &mut self,
        index: usize,
        happening: Happening,
        out: &mut Vec<Batch>,
    ) -> Result<Option<Millis>, String> {
        let transform = self.transforms[index]
            .as_deref_mut()
            .expect("only transforms are driven");
        let passed_on = self.drivers[index]
            .handle(transform, happening, out)
            .map_err(|e| format!("{} failed: {e}", self.plan.stages[index].path));
        if let Some((rejects, stream)) = &self.rejects[index]
            && let Some(batch) = rejects.drain()
        {
            self.rejected.push_back((*stream, batch));
        }
        passed_on
    }

    /// Hands each batch (leaving stage `from`) to the stages that read `from`, and what they
    /// produce on to theirs, until nothing moves.
    fn flow(&mut self, mut queue: VecDeque<(usize, Batch)>) -> Result<(), String> {
        while let Some((from, batch)) = queue.pop_front().or_else(|| self.rejected.pop_front()) {
            for consumer in self.plan.consumers(from) {
                match self.plan.stages[consumer].kind {
                    StageKind::Transform => {
                        let mut out = Vec::new();
                        let port = self.plan.stages[consumer]
                            .inputs
                            .iter()
                            .position(|&input| input == from)
                            .expect("a consumer reads from its input");
                        let happening = Happening::Batch {
                            port,
                            batch: batch.clone(),
                        };
                        self.drive(consumer, happening, &mut out)?;
                        queue.extend(out.into_iter().map(|b| (consumer, b)));
                    }
                    StageKind::Sink => self.produced[consumer].push(batch.clone()),
                    StageKind::Source => {}
                }
            }
            self.produced[from].push(batch);
        }
        Ok(())
    }

    /// Tells each transform, inputs first, each input's watermark; the driver passes the
    /// smallest on when it moves, as the engine does.
    fn propagate_watermarks(&mut self) -> Result<(), String> {
        for &i in &self.order.clone() {
            for port in 0..self.plan.stages[i].inputs.len() {
                let Some(at) = self.watermark_out[self.plan.stages[i].inputs[port]] else {
                    continue;
                };
                let mut out = Vec::new();
                if let Some(passed_on) =
                    self.drive(i, Happening::Watermark { port, at }, &mut out)?
                {
                    self.watermark_out[i] = Some(passed_on);
                }
                self.flow(out.into_iter().map(|b| (i, b)).collect())?;
            }
        }
        Ok(())
    }

    /// Moves processing time to `until`, firing every timer due on the way at its due time.
    fn advance(&mut self, until: Millis) -> Result<(), String> {
        loop {
            let due = self
                .order
                .iter()
                .filter_map(|&i| self.next_tick[i].map(|t| (t, i)))
                .filter(|&(t, _)| t <= until)
                .min();
            let Some((at, i)) = due else { break };
            self.now = at;
            self.clock.set(at);
            let mut out = Vec::new();
            self.drive(i, Happening::Tick, &mut out)?;
            let period = self
                .transform(i)
                .tick_interval()
                .map_or(1, |p| p.as_millis().max(1));
            self.next_tick[i] = Some(at.saturating_add(period as Millis));
            self.flow(out.into_iter().map(|b| (i, b)).collect())?;
        }
        self.now = until;
        self.clock.set(until);
        Ok(())
    }
}

/// Transforms of `plan` in an order where each comes after every transform it reads.
fn topological(plan: &Plan) -> Vec<usize> {
    let mut order = Vec::new();
    let mut placed = vec![false; plan.stages.len()];
    for (i, stage) in plan.stages.iter().enumerate() {
        placed[i] = stage.kind == StageKind::Source;
    }
    // The plan has no cycles (planning refuses them), so each pass places at least one.
    while let Some(i) = (0..plan.stages.len()).find(|&i| {
        !placed[i]
            && plan.stages[i].kind == StageKind::Transform
            && plan.stages[i].inputs.iter().all(|&input| placed[input])
    }) {
        placed[i] = true;
        order.push(i);
    }
    order
}

/// A batch of `records`: their fields (in the order they first appear; missing ones are null)
/// and `_time` as the event time.
fn batch_of(records: &[toml::Table]) -> Result<Batch, String> {
    let mut names: Vec<&str> = Vec::new();
    for record in records {
        for key in record.keys() {
            if key != TIME_FIELD && !names.contains(&key.as_str()) {
                names.push(key);
            }
        }
    }
    let schema = Arc::new(Schema::new(&names));
    let mut builder = BatchBuilder::with_capacity(schema, records.len());
    for (n, record) in records.iter().enumerate() {
        for name in &names {
            match record.get(*name) {
                None => builder.push(FieldRef::Null),
                Some(toml::Value::String(s)) => builder.push_str(s),
                Some(toml::Value::Integer(i)) => builder.push(FieldRef::Int(*i)),
                Some(toml::Value::Float(f)) => builder.push(FieldRef::Float(*f)),
                Some(toml::Value::Boolean(b)) => builder.push(FieldRef::Bool(*b)),
                Some(other) => {
                    return Err(format!(
                        "record {}: field `{name}` is a {}; fields are strings, numbers or booleans",
                        n + 1,
                        other.type_str()
                    ));
                }
            }
        }
        let time = match record.get(TIME_FIELD) {
            None => 0,
            Some(value) => super::compare::time_of(value)
                .ok_or_else(|| format!("record {}: `_time` is not a time", n + 1))?,
        };
        builder.end_row(time);
    }
    Ok(builder.build())
}
