//! Transform `dedupe`: drops a record when a record with the same key fields came at most
//! `within` before it in event time, exactly once across restarts like the window.
//!
//! Decisions are made in event-time order as the watermark passes (less `allowed_lateness`):
//! the records up to that point are sorted by time (arrival breaks ties), and each is kept unless
//! its key was last seen at most `within` earlier. So the outcome depends only on which records
//! have which times and keys, not on how partitions interleave, and a restart decides the same
//! way. Like the window, the stage marks its output "decided every record at or before T"
//! (`ack`); a resumed run counts rows at or before its mark as *replayed*: they only rebuild the
//! memory of keys seen. For that memory to be rebuilt, a batch's delivery tickets are held until
//! the decisions have passed its last record by `within`, so the sources' commit point stays
//! before every record a later decision may still need; a restart reads that much again.

use super::keys::KeyFields;
use super::late::{Decided, reject_late};
use crate::ack::Acks;
use crate::record::{Batch, Millis};
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
    /// Options of the `dedupe` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct DedupeConfig, documented in OPTIONS {
        keys: Vec<String> => OptionDoc::of("[string]", "required", "fields whose values together say two records are the same"),
        within: DurationSpec => OptionDoc::of("duration", "required", "drop a record when its key came at most this long before it, in event time (e.g. \"10m\")"),
        allowed_lateness: Option<DurationSpec> => OptionDoc::of("duration", "\"0s\"", "how far behind the newest record a record may be and still be decided; later ones go to errors"),
    }
}

/// The `dedupe` transform type.
pub fn factory() -> Builtin<DedupeConfig> {
    Builtin::new(
        StageKind::Transform,
        "dedupe",
        "Drops a record whose key fields came at most `within` before it (event time), exactly once across restarts",
        OPTIONS,
    )
}

impl BuiltinConfig for DedupeConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if self.keys.is_empty() {
            issues.push(OptionIssue::new("keys", "no key fields given").hint(
                "name the fields that identify a record, e.g. keys = [\"user_id\", \"item_id\"]",
            ));
        }
        if self.within.as_millis() <= 0 {
            issues.push(OptionIssue::new("within", "must be longer than 0s"));
        }
        issues
    }
}

impl StageConfig for DedupeConfig {
    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        crate::stage::union_of_fields(inputs)
    }

    fn fields_read(&self) -> Vec<FieldUse> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, name)| FieldUse {
                key: format!("keys[{i}]"),
                name: name.clone(),
                at: 0,
                input: None,
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
        let resumed = cx.resources.get::<Resumed>();
        // "Decided every record through T" means other decisions under other keys or horizon.
        resumed.declare(
            &cx.path,
            format!("keys={} within={within}ms", self.keys.join(",")),
        );
        Ok(Stage::Transform(Box::new(Dedupe {
            keys: KeyFields::new(self.keys.clone()),
            within,
            lateness: self.allowed_lateness.map_or(0, DurationSpec::as_millis),
            decided_through: Millis::MIN,
            resumed_through: None,
            resumed: Some(resumed),
            last_seen: HashMap::new(),
            decided_since_eviction: 0,
            pending: Vec::new(),
            held: Vec::new(),
            releasable: Acks::default(),
            mark: Arc::from(cx.path.as_str()),
            label: cx.path.clone(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
            dropped_duplicates: 0,
            replayed: 0,
        })))
    }
}

/// An input batch with records not yet decided (it keeps its delivery tickets).
struct Pending {
    batch: Batch,
    undecided: Vec<u32>,
}

/// The running `dedupe` transform.
struct Dedupe {
    keys: KeyFields,
    within: Millis,
    lateness: Millis,
    /// Every record at or before this was decided.
    decided_through: Millis,
    /// The mark an earlier run left: records at or before it are replayed.
    resumed_through: Option<Millis>,
    resumed: Option<Arc<Resumed>>,
    /// Per key (its fields' text), the latest event time it was seen at among decided records.
    last_seen: HashMap<Box<str>, Millis>,
    decided_since_eviction: usize,
    pending: Vec<Pending>,
    /// Tickets held for the memory of keys: released once decisions pass the time.
    held: Vec<(Millis, Acks)>,
    /// Tickets no longer needed, handed on with the next output (which carries a mark at least
    /// as far, so offsets never move past records a restart would still need).
    releasable: Acks,
    mark: Arc<str>,
    label: String,
    metrics: Arc<StageMetrics>,
    rejects: Rejects,
    dropped_duplicates: u64,
    replayed: u64,
}

impl Dedupe {
    fn resume_once(&mut self) {
        if let Some(resumed) = self.resumed.take()
            && let Some(through) = resumed.through(&self.mark)
        {
            tracing::info!(
                "{}: resuming after the records an earlier run decided (every record at or before \
                 {through})",
                self.label
            );
            self.decided_through = through;
            self.resumed_through = Some(through);
        }
    }

    /// Decides every pending record at or before `through`, in time order; pushes the kept ones.
    fn decide_through(&mut self, through: Millis, out: &mut Vec<Batch>) {
        if through <= self.decided_through {
            return;
        }
        let mut due: Vec<(Millis, usize, u32)> = Vec::new();
        for (p, pending) in self.pending.iter().enumerate() {
            let times = pending.batch.times();
            due.extend(
                pending
                    .undecided
                    .iter()
                    .filter(|&&row| times[row as usize] <= through)
                    .map(|&row| (times[row as usize], p, row)),
            );
        }
        due.sort_unstable();
        let mut kept: Vec<Vec<u32>> = vec![Vec::new(); self.pending.len()];
        let mut key = String::new();
        for &(t, p, row) in &due {
            self.keys
                .write(&self.pending[p].batch, row as usize, &mut key);
            let duplicate = self
                .last_seen
                .get(key.as_str())
                .is_some_and(|&seen| seen >= t.saturating_sub(self.within));
            see(&mut self.last_seen, &key, t);
            if duplicate {
                self.dropped_duplicates += 1;
            } else {
                kept[p].push(row);
            }
        }
        self.decided_through = through;
        self.decided_since_eviction += due.len();
        let from = out.len();
        for (pending, mut rows) in self.pending.iter_mut().zip(kept) {
            pending
                .undecided
                .retain(|&row| pending.batch.times()[row as usize] > through);
            if !rows.is_empty() {
                rows.sort_unstable();
                out.push(pending.batch.select(&rows));
            }
        }
        self.pending.retain(|p| !p.undecided.is_empty());
        // Tickets whose records no later decision needs go with this output.
        let horizon = through.saturating_sub(self.within);
        let (free, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(last, _)| *last < horizon);
        self.held = keep;
        for (_, acks) in free {
            self.releasable.absorb(acks);
        }
        if out.len() > from {
            let releasable = std::mem::take(&mut self.releasable);
            let last = out.len() - 1;
            out[last].attach_acks(releasable);
        }
        for batch in &mut out[from..] {
            let mut mark = Acks::default();
            mark.mark(Arc::clone(&self.mark), through);
            batch.attach_acks(mark);
        }
        if self.decided_since_eviction > self.last_seen.len().max(1024) {
            self.last_seen.retain(|_, seen| *seen >= horizon);
            self.decided_since_eviction = 0;
        }
    }

    fn report(&mut self) {
        if self.replayed > 0 {
            tracing::debug!(
                "{}: {} records read again were decided by an earlier run",
                self.label,
                self.replayed
            );
            self.replayed = 0;
        }
    }
}

/// Remembers that `key` was seen at `t`.
fn see(last_seen: &mut HashMap<Box<str>, Millis>, key: &str, t: Millis) {
    match last_seen.get_mut(key) {
        Some(at) => *at = (*at).max(t),
        None => {
            last_seen.insert(Box::from(key), t);
        }
    }
}

impl Transform for Dedupe {
    fn process(&mut self, batch: Batch, _out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        let mut undecided = Vec::new();
        let mut key = String::new();
        let mut late = Vec::new();
        for (row, &t) in batch.times().iter().enumerate() {
            if t > self.decided_through {
                undecided.push(row as u32);
            } else if self.resumed_through.is_some_and(|r| t <= r) {
                // Decided by an earlier run: only the memory of keys learns from it.
                self.keys.write(&batch, row, &mut key);
                see(&mut self.last_seen, &key, t);
                self.replayed += 1;
            } else {
                late.push(row);
            }
        }
        let decided = Decided {
            what: "decided",
            through: self.decided_through,
            lateness: self.lateness,
        };
        reject_late(&batch, &late, &decided, &self.rejects, &self.metrics);
        if let Some(&last) = batch.times().iter().max() {
            self.held.push((last, batch.acks().clone()));
        }
        if !undecided.is_empty() {
            self.pending.push(Pending { batch, undecided });
        }
        self.report();
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
        self.decide_through(Millis::MAX, out);
        // Nothing is left to decide: every ticket may go.
        self.held.clear();
        self.releasable = Acks::default();
        tracing::debug!(
            "{}: {} duplicates dropped",
            self.label,
            self.dropped_duplicates
        );
        Ok(())
    }

    fn stop(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        // Undecided records and the memory of keys are left to the next run: their tickets fail,
        // so their offsets stay uncommitted and it reads them again.
        for pending in self.pending.drain(..) {
            pending.batch.acks().fail();
        }
        for (_, acks) in self.held.drain(..) {
            acks.fail();
        }
        std::mem::take(&mut self.releasable).fail();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchBuilder, Schema};

    fn batch(rows: &[(&str, Millis)]) -> Batch {
        let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["user"])), rows.len());
        for (user, t) in rows {
            b.push_str(user);
            b.end_row(*t);
        }
        b.build()
    }

    fn dedupe(within: Millis) -> Dedupe {
        Dedupe {
            keys: KeyFields::new(vec!["user".into()]),
            within,
            lateness: 0,
            decided_through: Millis::MIN,
            resumed_through: None,
            resumed: None,
            last_seen: HashMap::new(),
            decided_since_eviction: 0,
            pending: Vec::new(),
            held: Vec::new(),
            releasable: Acks::default(),
            mark: Arc::from("transforms.d"),
            label: "transforms.d".into(),
            metrics: Arc::default(),
            rejects: Rejects::default(),
            dropped_duplicates: 0,
            replayed: 0,
        }
    }

    fn kept(out: &[Batch]) -> Vec<(String, Millis)> {
        let mut rows: Vec<(String, Millis)> = out
            .iter()
            .flat_map(|b| {
                b.rows()
                    .map(|r| {
                        let mut text = String::new();
                        r.get(0).write_text(&mut text);
                        (text, r.event_time())
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort_by_key(|(user, t)| (*t, user.clone()));
        rows
    }

    #[test]
    fn a_key_seen_within_the_horizon_is_dropped_in_time_order_whatever_the_arrival() {
        let mut d = dedupe(10);
        let mut out = Vec::new();
        // Arrives out of order: a@12 first, then a@5; in time order a@5 is first.
        d.process(batch(&[("a", 12), ("b", 3)]), &mut out).unwrap();
        d.process(batch(&[("a", 5), ("a", 30), ("b", 14)]), &mut out)
            .unwrap();
        d.on_watermark(20, &mut out).unwrap();
        // a@12 is 7 after a@5; b@14 is 11 after b@3.
        assert_eq!(
            kept(&out),
            vec![("b".into(), 3), ("a".into(), 5), ("b".into(), 14)]
        );
        d.finish(&mut out).unwrap();
        // a@30 came 18 after the last a (12, itself a duplicate): kept.
        assert_eq!(
            kept(&out),
            vec![
                ("b".into(), 3),
                ("a".into(), 5),
                ("b".into(), 14),
                ("a".into(), 30)
            ]
        );
    }

    /// Any arrival order of the same records gives the same kept records.
    #[test]
    fn the_outcome_does_not_depend_on_arrival_order_or_batching() {
        let mut next = crate::stage::testing::xorshift(0x1234_5678_9abc_def1_u64);
        for _ in 0..100 {
            let records: Vec<(String, Millis)> = (0..next(60))
                .map(|_| (format!("k{}", next(5)), next(100) as Millis))
                .collect();
            let run = |order: &[(String, Millis)], cut: usize, wm: Millis| {
                let mut d = dedupe(15);
                let mut out = Vec::new();
                for chunk in order.chunks(cut.max(1)) {
                    let rows: Vec<(&str, Millis)> =
                        chunk.iter().map(|(k, t)| (k.as_str(), *t)).collect();
                    d.process(batch(&rows), &mut out).unwrap();
                }
                d.on_watermark(wm, &mut out).unwrap();
                d.finish(&mut out).unwrap();
                kept(&out)
            };
            let mut sorted = records.clone();
            sorted.sort_by_key(|(k, t)| (*t, k.clone()));
            let expected = run(&sorted, sorted.len(), Millis::MIN);
            let mut shuffled = records.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, next(i as u64 + 1) as usize);
            }
            // Only arrival order differs: the watermark passes nothing before the end.
            assert_eq!(run(&shuffled, 1 + next(7) as usize, Millis::MIN), expected);
            // An independent count: a record is kept when no record of its key came in the 15
            // before it (equal times: the first of them).
            let mut keep = Vec::new();
            for (i, (k, t)) in sorted.iter().enumerate() {
                let dup = sorted[..i].iter().any(|(k2, t2)| k2 == k && *t2 >= t - 15);
                if !dup {
                    keep.push((k.clone(), *t));
                }
            }
            keep.sort_by_key(|(k, t)| (*t, k.clone()));
            assert_eq!(expected, keep);
        }
    }
}
