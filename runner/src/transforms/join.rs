//! Transform `join`: an interval join of two inputs. A record of the first input (the *left*
//! side) and a record of the second (the *right* side) make a pair when their `on` fields are
//! equal (a null or missing key field equals nothing) and the right one's event time is at most
//! `within` after the left one's and at most `before` before it. Each pair is emitted once, as
//! one record: the left record's fields, then the right record's other fields (a name the left
//! side has too gets `right_prefix`), at the later of the two event times. An inner join: a
//! record that finds no partner is not emitted.
//!
//! Pairs are decided in event-time order as the watermark (the slower input's, less
//! `allowed_lateness`) passes: the records up to that point are sorted by time, and each is
//! paired with the records of the other side already decided (so a pair is made once, when the
//! later of its two records is decided, and the output comes in event-time order). A decided
//! record is kept while a later record of the other side could still pair with it: a left record
//! for `within`, a right one for `before`. Like `dedupe`, the stage marks its output "decided every
//! record at or before T" (`ack`), and holds each input batch's delivery tickets until none of its
//! records can pair any more, so that after a restart the records read again rebuild what was
//! kept: those at or before the committed mark only refill the memory, the later ones are decided
//! again. Tickets released ride on the next pair emitted, which carries a mark at least as far.

use super::keys::KeyFields;
use super::late::{Decided, reject_late};
use crate::ack::Acks;
use crate::record::{Batch, BatchBuilder, Millis, Schema};
use crate::resume::Resumed;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, FieldUse, OptionDoc, OptionIssue, Rejects, Stage,
    StageConfig, StageError, StageKind, StageMetrics, StageResult, Transform,
};
use crate::time::DurationSpec;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `join` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct JoinConfig, documented in OPTIONS {
        on: Vec<String> => OptionDoc::of("[string]", "required", "fields both inputs have whose values must be equal for two records to pair"),
        within: DurationSpec => OptionDoc::of("duration", "required", "a right record pairs with a left one when its event time is at most this long after the left one's (e.g. \"10m\")"),
        before: Option<DurationSpec> => OptionDoc::of("duration", "\"0s\"", "... and at most this long before it"),
        right_prefix: Option<String> => OptionDoc::of("string", "\"right_\"", "put before the name of a right-side field that the left side has too"),
        allowed_lateness: Option<DurationSpec> => OptionDoc::of("duration", "\"0s\"", "how far behind the newest record a record may be and still be paired; later ones go to errors"),
    }
}

/// The `join` transform type.
pub fn factory() -> Builtin<JoinConfig> {
    Builtin::new(
        StageKind::Transform,
        "join",
        "Pairs records of two inputs whose `on` fields are equal and whose event times are close (an interval join), exactly once across restarts",
        OPTIONS,
    )
}

const DEFAULT_PREFIX: &str = "right_";

impl JoinConfig {
    fn prefix(&self) -> &str {
        self.right_prefix.as_deref().unwrap_or(DEFAULT_PREFIX)
    }
}

impl BuiltinConfig for JoinConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if self.on.is_empty() {
            issues.push(OptionIssue::new("on", "no key fields given").hint(
                "name the fields that must be equal on both sides, e.g. on = [\"user_id\", \"item_id\"]",
            ));
        }
        if self.right_prefix.as_deref() == Some("") {
            issues.push(
                OptionIssue::new("right_prefix", "must not be empty")
                    .hint("a right-side field named like a left-side one needs another name"),
            );
        }
        issues
    }
}

impl StageConfig for JoinConfig {
    fn inputs_expected(&self) -> Option<(usize, &'static str)> {
        Some((
            2,
            "a join reads two inputs, `inputs = [\"left\", \"right\"]`: each pair is a record of \
             the first and one of the second",
        ))
    }

    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let [Some(left), Some(right)] = inputs else {
            return None;
        };
        Some(joined_fields(left, right, &self.on, self.prefix()).0)
    }

    fn fields_read(&self) -> Vec<FieldUse> {
        (0..2)
            .flat_map(|side| {
                self.on.iter().enumerate().map(move |(i, name)| FieldUse {
                    key: format!("on[{i}]"),
                    name: name.clone(),
                    at: 0,
                    input: Some(side),
                })
            })
            .collect()
    }

    fn keeps_state(&self) -> bool {
        true
    }

    fn marks_progress(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let within = self.within.as_millis();
        let before = self.before.map_or(0, DurationSpec::as_millis);
        let resumed = cx.resources.get::<Resumed>();
        // "Decided every record through T" means other pairs under other keys or bounds.
        resumed.declare(
            &cx.path,
            format!(
                "on={} within={within}ms before={before}ms",
                self.on.join(",")
            ),
        );
        let mut join = Join::new(self.on.clone(), within, before, self.prefix().to_string());
        join.lateness = self.allowed_lateness.map_or(0, DurationSpec::as_millis);
        join.resumed = Some(resumed);
        join.mark = Arc::from(cx.path.as_str());
        join.label = cx.path.clone();
        join.metrics = Arc::clone(&cx.metrics);
        join.rejects = cx.rejects.clone();
        Ok(Stage::Transform(Box::new(join)))
    }
}

/// The output's field names for inputs with fields `left` and `right`, and the positions of the
/// right-side fields it carries: all left fields, then each right field but the `on` fields
/// (equal to the left ones), renamed with `prefix` while its name is taken.
fn joined_fields<S: AsRef<str>>(
    left: &[S],
    right: &[S],
    on: &[String],
    prefix: &str,
) -> (Vec<String>, Vec<usize>) {
    let mut names: Vec<String> = left.iter().map(|n| n.as_ref().to_string()).collect();
    let mut carried = Vec::new();
    for (position, name) in right.iter().enumerate() {
        let name = name.as_ref();
        if on.iter().any(|key| key == name) {
            continue;
        }
        let mut output_name = name.to_string();
        while names.contains(&output_name) {
            output_name.insert_str(0, prefix);
        }
        names.push(output_name);
        carried.push(position);
    }
    (names, carried)
}

const LEFT: usize = 0;
const RIGHT: usize = 1;

/// A decided record kept for pairing.
struct Kept {
    time: Millis,
    batch: Arc<Batch>,
    row: u32,
}

/// An input batch with records not yet decided (its tickets are held apart, in `Side::held`).
struct Pending {
    batch: Arc<Batch>,
    undecided: Vec<u32>,
}

/// One input's records: those waiting for the watermark, and the decided ones kept for pairing.
struct Side {
    keys: KeyFields,
    /// How long after its event time a decided record may still pair with a record of the
    /// other side decided later.
    keep_for: Millis,
    kept: HashMap<Box<str>, Vec<Kept>>,
    kept_rows: usize,
    /// `kept_rows` just after the last eviction.
    kept_after_eviction: usize,
    /// Evictions wait until at least twice this many records are kept.
    eviction_floor: usize,
    pending: Vec<Pending>,
    /// Tickets of this side's input, each with the time after which none of its records can
    /// pair any more (its latest event time plus `keep_for`).
    held: Vec<(Millis, Acks)>,
}

impl Side {
    fn new(on: Vec<String>, keep_for: Millis) -> Side {
        Side {
            keys: KeyFields::new(on),
            keep_for,
            kept: HashMap::new(),
            kept_rows: 0,
            kept_after_eviction: 0,
            eviction_floor: 1024,
            pending: Vec::new(),
            held: Vec::new(),
        }
    }

    fn keep(&mut self, key: &str, record: Kept) {
        self.kept_rows += 1;
        match self.kept.get_mut(key) {
            Some(records) => records.push(record),
            None => {
                self.kept.insert(Box::from(key), vec![record]);
            }
        }
    }

    /// Forgets the records no record after `through` can pair with, once enough have come
    /// since the last time (so the work is spread over the records kept).
    fn evict(&mut self, through: Millis) {
        if self.kept_rows < 2 * self.kept_after_eviction.max(self.eviction_floor) {
            return;
        }
        let horizon = through.saturating_sub(self.keep_for);
        let mut rows = 0;
        self.kept.retain(|_, records| {
            records.retain(|r| r.time > horizon);
            rows += records.len();
            !records.is_empty()
        });
        self.kept_rows = rows;
        self.kept_after_eviction = rows;
    }

    /// Moves the tickets no later decision needs (every decision is now past `through`) into
    /// `free`.
    fn release(&mut self, through: Millis, free: &mut Acks) {
        let (done, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(needed_until, _)| *needed_until < through);
        self.held = keep;
        for (_, acks) in done {
            free.absorb(acks);
        }
    }
}

/// How the pairs of a left schema and a right schema are laid out, with their rows so far.
struct Shape {
    left: Arc<Schema>,
    right: Arc<Schema>,
    carried: Vec<usize>,
    rows: BatchBuilder,
}

/// The running `join` transform.
struct Join {
    sides: [Side; 2],
    on: Vec<String>,
    within: Millis,
    before: Millis,
    prefix: String,
    lateness: Millis,
    /// Every record at or before this was decided.
    decided_through: Millis,
    /// The mark an earlier run left: records at or before it are replayed.
    resumed_through: Option<Millis>,
    resumed: Option<Arc<Resumed>>,
    shapes: Vec<Shape>,
    /// Tickets no longer needed, handed on with the next output.
    releasable: Acks,
    mark: Arc<str>,
    label: String,
    metrics: Arc<StageMetrics>,
    rejects: Rejects,
    pairs: u64,
    replayed: u64,
}

impl Join {
    fn new(on: Vec<String>, within: Millis, before: Millis, prefix: String) -> Join {
        Join {
            sides: [Side::new(on.clone(), within), Side::new(on.clone(), before)],
            on,
            within,
            before,
            prefix,
            lateness: 0,
            decided_through: Millis::MIN,
            resumed_through: None,
            resumed: None,
            shapes: Vec::new(),
            releasable: Acks::default(),
            mark: Arc::from("transforms.join"),
            label: "transforms.join".into(),
            metrics: Arc::default(),
            rejects: Rejects::default(),
            pairs: 0,
            replayed: 0,
        }
    }

    fn resume_once(&mut self) {
        if let Some(resumed) = self.resumed.take()
            && let Some(through) = resumed.through(&self.mark)
        {
            tracing::info!(
                "{}: resuming after the records an earlier run paired (every record at or before \
                 {through})",
                self.label
            );
            self.decided_through = through;
            self.resumed_through = Some(through);
        }
    }

    /// The event times, relative to a record of `side` at `t`, of the records of the other side
    /// it pairs with.
    fn partners(&self, side: usize, t: Millis) -> (Millis, Millis) {
        if side == LEFT {
            (t.saturating_sub(self.before), t.saturating_add(self.within))
        } else {
            (t.saturating_sub(self.within), t.saturating_add(self.before))
        }
    }

    /// Decides every pending record at or before `through`, in time order, pushing the pairs.
    fn decide_through(&mut self, through: Millis, out: &mut Vec<Batch>) {
        if through <= self.decided_through {
            return;
        }
        let mut due: Vec<(Millis, usize, usize, u32)> = Vec::new();
        for (s, side) in self.sides.iter().enumerate() {
            for (p, pending) in side.pending.iter().enumerate() {
                let times = pending.batch.times();
                due.extend(
                    pending
                        .undecided
                        .iter()
                        .filter(|&&row| times[row as usize] <= through)
                        .map(|&row| (times[row as usize], s, p, row)),
                );
            }
        }
        due.sort_unstable();
        let mut key = String::new();
        for &(t, s, p, row) in &due {
            let batch = Arc::clone(&self.sides[s].pending[p].batch);
            if !self.sides[s].keys.write(&batch, row as usize, &mut key) {
                continue; // a null key pairs with nothing
            }
            let (from, to) = self.partners(s, t);
            if let Some(others) = self.sides[1 - s].kept.get(key.as_str()) {
                for other in others.iter().filter(|o| o.time >= from && o.time <= to) {
                    let (left, right) = if s == LEFT {
                        ((&batch, row), (&other.batch, other.row))
                    } else {
                        ((&other.batch, other.row), (&batch, row))
                    };
                    push_pair(&mut self.shapes, &self.on, &self.prefix, left, right, t);
                    self.pairs += 1;
                }
            }
            self.sides[s].keep(
                &key,
                Kept {
                    time: t,
                    batch,
                    row,
                },
            );
        }
        self.decided_through = through;
        for side in &mut self.sides {
            for pending in &mut side.pending {
                let times = pending.batch.times();
                pending
                    .undecided
                    .retain(|&row| times[row as usize] > through);
            }
            side.pending.retain(|p| !p.undecided.is_empty());
            side.evict(through);
            side.release(through, &mut self.releasable);
        }
        let from = out.len();
        out.extend(
            self.shapes
                .drain(..)
                .filter(|shape| !shape.rows.is_empty())
                .map(|shape| shape.rows.build()),
        );
        if out.len() > from {
            let last = out.len() - 1;
            out[last].attach_acks(std::mem::take(&mut self.releasable));
        }
        for batch in &mut out[from..] {
            let mut mark = Acks::default();
            mark.mark(Arc::clone(&self.mark), through);
            batch.attach_acks(mark);
        }
    }

    /// Takes `batch` from input `side`: its records after the decided point wait for the
    /// watermark; those an earlier run decided refill the memory; any other is late.
    fn take(&mut self, side: usize, mut batch: Batch) {
        self.resume_once();
        let mut undecided = Vec::new();
        let mut replayed = Vec::new();
        let mut late = Vec::new();
        for (row, &t) in batch.times().iter().enumerate() {
            if t > self.decided_through {
                undecided.push(row as u32);
            } else if self.resumed_through.is_some_and(|r| t <= r) {
                replayed.push(row as u32);
            } else {
                late.push(row);
            }
        }
        let decided = Decided {
            what: "paired",
            through: self.decided_through,
            lateness: self.lateness,
        };
        reject_late(&batch, &late, &decided, &self.rejects, &self.metrics);
        let this = &mut self.sides[side];
        if let Some(&last) = batch.times().iter().max() {
            let needed_until = last.saturating_add(this.keep_for);
            this.held.push((needed_until, batch.take_acks()));
        }
        let batch = Arc::new(batch);
        let mut key = String::new();
        for &row in &replayed {
            if this.keys.write(&batch, row as usize, &mut key) {
                let time = batch.times()[row as usize];
                let batch = Arc::clone(&batch);
                this.keep(&key, Kept { time, batch, row });
            }
        }
        self.replayed += replayed.len() as u64;
        if !undecided.is_empty() {
            this.pending.push(Pending { batch, undecided });
        }
    }
}

/// Appends the pair of row `left.1` of `left.0` and row `right.1` of `right.0`, at `time`, to the
/// rows of its shape.
fn push_pair(
    shapes: &mut Vec<Shape>,
    on: &[String],
    prefix: &str,
    left: (&Arc<Batch>, u32),
    right: (&Arc<Batch>, u32),
    time: Millis,
) {
    let (left_schema, right_schema) = (left.0.schema(), right.0.schema());
    let same = |a: &Arc<Schema>, b: &Arc<Schema>| Arc::ptr_eq(a, b) || a == b;
    let index = match shapes
        .iter()
        .position(|s| same(&s.left, left_schema) && same(&s.right, right_schema))
    {
        Some(index) => index,
        None => {
            let left_names: Vec<&str> = left_schema.names().collect();
            let right_names: Vec<&str> = right_schema.names().collect();
            let (names, carried) = joined_fields(&left_names, &right_names, on, prefix);
            shapes.push(Shape {
                left: Arc::clone(left_schema),
                right: Arc::clone(right_schema),
                carried,
                rows: BatchBuilder::with_capacity(Arc::new(Schema::new(names)), 64),
            });
            shapes.len() - 1
        }
    };
    let shape = &mut shapes[index];
    let left_row = left.0.row(left.1 as usize);
    for field in 0..left_schema.len() {
        shape.rows.push(left_row.get(field));
    }
    let right_row = right.0.row(right.1 as usize);
    for &field in &shape.carried {
        shape.rows.push(right_row.get(field));
    }
    shape.rows.end_row(time);
}

impl Transform for Join {
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        self.process_from(LEFT, batch, out)
    }

    fn process_from(&mut self, port: usize, batch: Batch, _out: &mut Vec<Batch>) -> StageResult {
        // Two inputs are checked at validation; a third would be read as the right side.
        self.take(port.min(RIGHT), batch);
        if self.replayed > 0 {
            tracing::debug!(
                "{}: {} records read again were paired by an earlier run",
                self.label,
                self.replayed
            );
            self.replayed = 0;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        self.decide_through(watermark.saturating_sub(self.lateness), out);
        Ok(())
    }

    fn output_watermark(&self, input: Millis) -> Millis {
        input.saturating_sub(self.lateness)
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        let from = out.len();
        self.decide_through(Millis::MAX, out);
        // Nothing is left to decide: every ticket goes with the last pair, or now.
        let mut rest = std::mem::take(&mut self.releasable);
        for side in &mut self.sides {
            for (_, acks) in side.held.drain(..) {
                rest.absorb(acks);
            }
        }
        if out.len() > from {
            let last = out.len() - 1;
            out[last].attach_acks(rest);
        }
        tracing::debug!("{}: {} pairs", self.label, self.pairs);
        Ok(())
    }

    fn stop(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        // Undecided records and what is kept for pairing are left to the next run: their
        // tickets fail, so their offsets stay uncommitted and it reads them again.
        for side in &mut self.sides {
            side.pending.clear();
            for (_, acks) in side.held.drain(..) {
                acks.fail();
            }
        }
        std::mem::take(&mut self.releasable).fail();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
