//! Transform `session`: per group, a session window holds records closer than `gap` to one
//! another in event time, and closes once the watermark (less `allowed_lateness`) has passed its
//! last record by `gap`; output like the window's (`window_start` = its first record's time,
//! `window_end` = its last record's time + `gap`, the `group_by` fields, the aggregates; event
//! time `window_end - 1`).
//!
//! A record may join two sessions into one (it falls within `gap` of both); their aggregates
//! merge. Restarts as with the window: output batches carry the mark "emitted every session
//! ending at or before T", open sessions hold their records' delivery tickets, and a resumed run
//! builds sessions from what it reads again but drops, unemitted, those ending at or before its
//! mark (they were emitted by the run before). Which records form a session depends on the
//! others of its group, so a record is late only when the session it would form or join on its
//! own would already have closed.

use super::aggregate::{Accumulator, AggregateOp, Fed};
use super::config::AggregateConfig;
use crate::ack::Acks;
use crate::record::json::row_json;
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Row, Schema};
use crate::resume::Resumed;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, OptionDoc, OptionIssue, Rejected, Rejects,
    Stage, StageConfig, StageError, StageKind, StageMetrics, StageResult, Transform,
};
use crate::time::DurationSpec;
use serde::Deserialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `session` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SessionConfig, documented in SESSION_OPTIONS {
        gap: DurationSpec => OptionDoc::of("duration", "required", "a session closes after this long without a record of its group, e.g. \"30m\""),
        #[serde(default)]
        group_by: Vec<String> => OptionDoc::of("[string]", "[]", "fields whose values form the group key (one session at a time per group)"),
        #[serde(default = "default_aggregates")]
        aggregates: Vec<AggregateConfig> => OptionDoc::of("[{ op, field, as }]", "[{ op = \"count\" }]", "as for `window`: op count | sum | min | max | avg | count_distinct"),
        allowed_lateness: Option<DurationSpec> => OptionDoc::of("duration", "\"0s\"", "how far behind the newest record a record may be and still count"),
    }
}

fn default_aggregates() -> Vec<AggregateConfig> {
    vec![AggregateConfig {
        op: AggregateOp::Count,
        field: None,
        name: None,
    }]
}

/// The `session` transform type.
pub fn session_factory() -> Builtin<SessionConfig> {
    Builtin::new(
        StageKind::Transform,
        "session",
        "Session windows per group over event time: closed after a gap without records, with the window's aggregates",
        SESSION_OPTIONS,
    )
}

impl BuiltinConfig for SessionConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if self.gap.as_millis() <= 0 {
            issues.push(OptionIssue::new("gap", "must be longer than 0s"));
        }
        for a in &self.aggregates {
            if a.op != AggregateOp::Count && a.field.is_none() {
                issues.push(OptionIssue::new(
                    "aggregates",
                    format!("`{}` needs a `field`", a.op.name()),
                ));
            }
        }
        issues
    }
}

impl StageConfig for SessionConfig {
    fn output_fields(&self, _inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(self.names())
    }

    fn keeps_state(&self) -> bool {
        true
    }

    fn marks_progress(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let gap = self.gap.as_millis();
        let resumed = cx.resources.get::<Resumed>();
        resumed.declare(&cx.path, format!("session gap={gap}ms"));
        Ok(Stage::Transform(Box::new(Sessions {
            gap,
            lateness: self.allowed_lateness.map_or(0, DurationSpec::as_millis),
            group_by: self.group_by.clone(),
            ops: self
                .aggregates
                .iter()
                .map(|a| (a.op, a.field.clone()))
                .collect(),
            schema: Arc::new(Schema::new(self.names())),
            resolved: None,
            groups: HashMap::new(),
            ends: BinaryHeap::new(),
            closed_through: Millis::MIN,
            resumed_through: None,
            resumed: Some(resumed),
            mark: Arc::from(cx.path.as_str()),
            label: cx.path.clone(),
            metrics: Arc::clone(&cx.metrics),
            rejects: cx.rejects.clone(),
            batches: 0,
        })))
    }
}

impl SessionConfig {
    fn names(&self) -> Vec<String> {
        ["window_start", "window_end"]
            .into_iter()
            .map(str::to_string)
            .chain(self.group_by.iter().cloned())
            .chain(self.aggregates.iter().map(AggregateConfig::output_name))
            .collect()
    }
}

/// A schema, and in it the positions of the group fields and of the aggregated fields.
type Resolved = (Arc<Schema>, Vec<Option<usize>>, Vec<Option<usize>>);

/// One open session of a group.
struct Session {
    first: Millis,
    last: Millis,
    accumulators: Vec<Accumulator>,
    acks: Acks,
    /// The last batch whose tickets `acks` took (each batch's once).
    batch: u64,
}

/// A group's values (for the output) and its open sessions, ordered by time, apart by `gap`.
struct Group {
    values: Vec<Option<Box<str>>>,
    sessions: Vec<Session>,
}

/// The running `session` transform.
struct Sessions {
    gap: Millis,
    lateness: Millis,
    group_by: Vec<String>,
    ops: Vec<(AggregateOp, Option<String>)>,
    schema: Arc<Schema>,
    /// Positions of the group and aggregate fields in the schema they were resolved for.
    resolved: Option<Resolved>,
    groups: HashMap<Box<str>, Group>,
    /// When sessions may end, and of which group (an entry may be stale: checked when taken).
    ends: BinaryHeap<Reverse<(Millis, Box<str>)>>,
    closed_through: Millis,
    resumed_through: Option<Millis>,
    resumed: Option<Arc<Resumed>>,
    mark: Arc<str>,
    label: String,
    metrics: Arc<StageMetrics>,
    rejects: Rejects,
    /// Batches taken in (numbers them for `Session::batch`).
    batches: u64,
}

impl Sessions {
    fn resume_once(&mut self) {
        if let Some(resumed) = self.resumed.take()
            && let Some(through) = resumed.through(&self.mark)
        {
            tracing::info!(
                "{}: resuming after the sessions an earlier run emitted (every session ending at \
                 or before {through})",
                self.label
            );
            self.resumed_through = Some(through);
            self.closed_through = self.closed_through.max(through);
        }
    }

    fn resolve(&mut self, schema: &Arc<Schema>) {
        if self
            .resolved
            .as_ref()
            .is_none_or(|(known, ..)| !Arc::ptr_eq(known, schema))
        {
            let groups = self.group_by.iter().map(|f| schema.index_of(f)).collect();
            let fields = self
                .ops
                .iter()
                .map(|(_, f)| f.as_deref().and_then(|f| schema.index_of(f)))
                .collect();
            self.resolved = Some((Arc::clone(schema), groups, fields));
        }
    }

    /// Adds `row` at `t` of the batch numbered `batch` (its tickets `acks`); false when it is
    /// late.
    fn add(&mut self, row: Row<'_>, t: Millis, batch: u64, acks: &Acks, key: &mut String) -> bool {
        let (_, group_fields, value_fields) = self.resolved.as_ref().expect("resolved");
        row.write_key(group_fields, key);
        let gap = self.gap;
        if !self.groups.contains_key(key.as_str()) {
            let values = group_fields
                .iter()
                .map(|position| match position.map(|p| row.get(p)) {
                    None | Some(FieldRef::Null) => None,
                    Some(value) => {
                        let mut text = String::new();
                        value.write_text(&mut text);
                        Some(text.into_boxed_str())
                    }
                })
                .collect();
            self.groups.insert(
                Box::from(key.as_str()),
                Group {
                    values,
                    sessions: Vec::new(),
                },
            );
        }
        let group = self.groups.get_mut(key.as_str()).expect("inserted above");
        // Sessions are ordered and `gap` apart: those this record is within `gap` of are a run.
        let sessions = &mut group.sessions;
        let from = sessions.partition_point(|s| s.last.saturating_add(gap) <= t);
        let mut to = from;
        while to < sessions.len() && sessions[to].first.saturating_sub(gap) < t {
            to += 1;
        }
        if from == to {
            let replaying = self
                .resumed_through
                .is_some_and(|r| t.saturating_add(gap) <= r);
            if t.saturating_add(gap) <= self.closed_through && !replaying {
                return false;
            }
            sessions.insert(
                from,
                Session {
                    first: t,
                    last: t,
                    accumulators: vec![Accumulator::default(); self.ops.len()],
                    acks: acks.clone(),
                    batch,
                },
            );
            to = from + 1;
            self.ends
                .push(Reverse((t.saturating_add(gap), Box::from(key.as_str()))));
        }
        // The record joins the first; the others it reaches join it too.
        for other in sessions.drain(from + 1..to).collect::<Vec<_>>() {
            let session = &mut sessions[from];
            session.last = session.last.max(other.last);
            for (mine, theirs) in session.accumulators.iter_mut().zip(other.accumulators) {
                mine.merge(theirs);
            }
            session.acks.absorb(other.acks);
        }
        let session = &mut sessions[from];
        session.first = session.first.min(t);
        session.last = session.last.max(t);
        if session.batch != batch {
            session.acks.absorb(acks.clone());
            session.batch = batch;
        }
        for (accumulator, ((op, _), position)) in session
            .accumulators
            .iter_mut()
            .zip(self.ops.iter().zip(value_fields))
        {
            let value = match op {
                AggregateOp::Count if position.is_none() => None,
                _ => Some(position.map_or(FieldRef::Null, |p| row.get(p))),
            };
            // A non-numeric value is left out of sum/min/max/avg, as in the window.
            let _: Fed = accumulator.feed(*op, value);
        }
        true
    }

    /// Emits every session ending at or before `through` (dropping those an earlier run
    /// emitted), in order of their ends.
    fn close_through(&mut self, through: Millis, out: &mut Vec<Batch>) {
        self.closed_through = self.closed_through.max(through);
        let mut builder: Option<BatchBuilder> = None;
        let mut acks = Acks::default();
        while let Some(Reverse((end, _))) = self.ends.peek() {
            if *end > through {
                break;
            }
            let Some(Reverse((_, key))) = self.ends.pop() else {
                break;
            };
            let Some(group) = self.groups.get_mut(&key) else {
                continue;
            };
            let gap = self.gap;
            let (done, open): (Vec<Session>, Vec<Session>) = std::mem::take(&mut group.sessions)
                .into_iter()
                .partition(|s| s.last.saturating_add(gap) <= through);
            group.sessions = open;
            // A session that grew since this entry was made ends later: look again then.
            if let Some(next) = group
                .sessions
                .iter()
                .map(|s| s.last.saturating_add(gap))
                .min()
            {
                self.ends.push(Reverse((next, key.clone())));
            }
            for session in done {
                let end = session.last.saturating_add(gap);
                if self.resumed_through.is_some_and(|r| end <= r) {
                    continue; // emitted by the run before; its tickets settle here
                }
                let b = builder.get_or_insert_with(|| {
                    BatchBuilder::with_capacity(Arc::clone(&self.schema), 16)
                });
                b.push(FieldRef::Int(session.first));
                b.push(FieldRef::Int(end));
                for value in &group.values {
                    match value {
                        Some(text) => b.push_str(text),
                        None => b.push(FieldRef::Null),
                    }
                }
                for (accumulator, (op, _)) in session.accumulators.iter().zip(&self.ops) {
                    b.push(accumulator.result(*op));
                }
                b.end_row(end - 1);
                acks.absorb(session.acks);
            }
            if group.sessions.is_empty() {
                self.groups.remove(&key);
            }
        }
        if let Some(b) = builder {
            let mut batch = b.build().with_acks(acks);
            let mut mark = Acks::default();
            mark.mark(Arc::clone(&self.mark), through);
            batch.attach_acks(mark);
            out.push(batch);
        }
    }
}

impl Transform for Sessions {
    fn process(&mut self, batch: Batch, _out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        self.resolve(batch.schema());
        let acks = batch.acks().clone();
        self.batches += 1;
        let number = self.batches;
        let mut key = String::new();
        let mut late = 0;
        for row in batch.rows() {
            let t = row.event_time();
            if !self.add(row, t, number, &acks, &mut key) {
                late += 1;
                if self.rejects.is_connected() {
                    let reason = format!(
                        "late: a session of it would have ended by {}, and sessions ending at or \
                         before {} had closed (allowed_lateness {} ms)",
                        t.saturating_add(self.gap),
                        self.closed_through,
                        self.lateness
                    );
                    self.rejects.reject(Rejected {
                        reason: &reason,
                        at: &format!("event time {t}"),
                        record: &row_json(&row),
                    });
                }
            }
        }
        if late > 0 {
            self.metrics.add_dropped(DropReason::Late, late);
            self.rejects.attach(&acks);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        self.close_through(watermark.saturating_sub(self.lateness), out);
        Ok(())
    }

    fn output_watermark(&self, input: Millis) -> Millis {
        input.saturating_sub(self.lateness)
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.resume_once();
        self.close_through(Millis::MAX, out);
        Ok(())
    }

    fn stop(&mut self, _out: &mut Vec<Batch>) -> StageResult {
        // Open sessions are left to the next run: their records' offsets stay uncommitted.
        for group in self.groups.values() {
            for session in &group.sessions {
                session.acks.fail();
            }
        }
        self.groups.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(gap: Millis) -> Sessions {
        Sessions {
            gap,
            lateness: 0,
            group_by: vec!["user".into()],
            ops: vec![(AggregateOp::Count, None)],
            schema: Arc::new(Schema::new(["window_start", "window_end", "user", "count"])),
            resolved: None,
            groups: HashMap::new(),
            ends: BinaryHeap::new(),
            closed_through: Millis::MIN,
            resumed_through: None,
            resumed: None,
            mark: Arc::from("transforms.s"),
            label: "transforms.s".into(),
            metrics: Arc::default(),
            rejects: Rejects::default(),
            batches: 0,
        }
    }

    fn batch(rows: &[(&str, Millis)]) -> Batch {
        let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["user"])), rows.len());
        for (user, t) in rows {
            b.push_str(user);
            b.end_row(*t);
        }
        b.build()
    }

    fn emitted(out: &[Batch]) -> Vec<(String, Millis, Millis, i64)> {
        let mut rows: Vec<_> = out
            .iter()
            .flat_map(|b| {
                b.rows()
                    .map(|r| {
                        let mut user = String::new();
                        r.get(2).write_text(&mut user);
                        let int = |i| match r.get(i) {
                            FieldRef::Int(n) => n,
                            other => panic!("{other:?}"),
                        };
                        (user, int(0), int(1), int(3))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort();
        rows
    }

    /// Sessions from any arrival order equal sessions recounted from the sorted records: a new
    /// session wherever the next record of the group is `gap` or more after the previous one.
    #[test]
    fn sessions_do_not_depend_on_arrival_order_and_equal_a_recount() {
        let mut next = crate::stage::testing::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..200 {
            let gap = 1 + next(20) as Millis;
            let records: Vec<(String, Millis)> = (0..next(50))
                .map(|_| (format!("u{}", next(4)), next(200) as Millis))
                .collect();
            let mut expected = Vec::new();
            let mut by_user: std::collections::BTreeMap<&str, Vec<Millis>> = Default::default();
            for (u, t) in &records {
                by_user.entry(u).or_default().push(*t);
            }
            for (user, mut times) in by_user {
                times.sort_unstable();
                let mut start = 0;
                for i in 1..=times.len() {
                    if i == times.len() || times[i] - times[i - 1] >= gap {
                        let n = (i - start) as i64;
                        expected.push((user.to_string(), times[start], times[i - 1] + gap, n));
                        start = i;
                    }
                }
            }
            expected.sort();
            let mut s = sessions(gap);
            let mut out = Vec::new();
            for chunk in records.chunks(1 + next(6) as usize) {
                let rows: Vec<(&str, Millis)> =
                    chunk.iter().map(|(u, t)| (u.as_str(), *t)).collect();
                s.process(batch(&rows), &mut out).unwrap();
            }
            s.finish(&mut out).unwrap();
            assert_eq!(emitted(&out), expected, "gap {gap}, records {records:?}");
        }
    }

    #[test]
    fn a_session_closes_when_the_watermark_passes_its_last_record_by_the_gap() {
        let mut s = sessions(10);
        let mut out = Vec::new();
        s.process(batch(&[("a", 0), ("a", 5), ("b", 3)]), &mut out)
            .unwrap();
        s.on_watermark(12, &mut out).unwrap();
        assert!(emitted(&out).is_empty());
        s.on_watermark(15, &mut out).unwrap();
        assert_eq!(
            emitted(&out),
            vec![("a".into(), 0, 15, 2), ("b".into(), 3, 13, 1)]
        );
        // A record whose own session would already have closed is late.
        s.process(batch(&[("c", 2)]), &mut out).unwrap();
        s.finish(&mut out).unwrap();
        assert_eq!(emitted(&out).len(), 2);
    }
}
