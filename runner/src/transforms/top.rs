//! Transform `top`: of the records that share an event time (and the `per` fields), the `k` with
//! the largest — or smallest — value of field `by`, each with its `rank` (1 for the first). Read
//! after a window, whose rows of one window all carry the window's event time (`window_end - 1`),
//! it gives the top brands of each minute, the hottest item of each 10 seconds (Nexmark q5).
//!
//! A group is decided when the watermark passes its event time — for a window's output, as soon as
//! the window has emitted — and at the end of the input. Only the best `k` of a group are kept
//! while it is open, so memory is `k` records per open group. Ties keep the order the records
//! arrived in. A record whose `by` is not a number is rejected to `<id>.errors` and counted as
//! invalid; one whose event time was already ranked (the watermark passed it) as late. Restarts: the group's input carries its delivery tickets and the upstream window's
//! progress mark to the output, so a group lost with the process is emitted again by the
//! replay; on Ctrl-C a group still open is not emitted (a restart reads its records again).

use crate::ack::Acks;
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Schema};
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, DropReason, EditRefusal, FieldUse, OptionDoc,
    OptionIssue, Rejects, Stage, StageConfig, StageError, StageKind, StageMetrics, StageResult,
    Transform,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `top` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TopConfig, documented in OPTIONS {
        by: String => OptionDoc::of("string", "required", "the numeric field records are ranked by"),
        k: usize => OptionDoc::of("integer", "required", "how many records each group keeps"),
        #[serde(default)]
        per: Vec<String> => OptionDoc::of("[string]", "[] (one group per event time)", "fields that split records of one event time into groups ranked apart"),
        #[serde(default)]
        order: Order => OptionDoc::of("\"desc\" | \"asc\"", "\"desc\"", "largest values first, or smallest"),
        rank: Option<String> => OptionDoc::of("string", "\"rank\"", "name of the field added with each record's place, 1 for the first"),
    }
}

/// Which end of the ranking comes first.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Largest first.
    #[default]
    Desc,
    /// Smallest first.
    Asc,
}

/// The `top` transform type.
pub fn factory() -> Builtin<TopConfig> {
    Builtin::new(
        StageKind::Transform,
        "top",
        "Keeps the k records with the largest (or smallest) value of a field per event time",
        OPTIONS,
    )
}

impl BuiltinConfig for TopConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        if self.k == 0 {
            issues.push(OptionIssue::new(
                "k",
                "keep at least one record (k = 1 or more)",
            ));
        }
        if self.by.is_empty() {
            issues.push(OptionIssue::new("by", "name the field to rank by"));
        }
        issues
    }
}

impl TopConfig {
    fn rank_field(&self) -> &str {
        self.rank.as_deref().unwrap_or("rank")
    }
}

impl StageConfig for TopConfig {
    fn output_fields(&self, inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        let mut names = crate::stage::union_of_fields(inputs)?;
        let rank = self.rank_field().to_string();
        if !names.contains(&rank) {
            names.push(rank);
        }
        Some(names)
    }

    fn fields_read(&self) -> Vec<FieldUse> {
        let by = FieldUse {
            key: "by".into(),
            name: self.by.clone(),
            at: 0,
            input: None,
        };
        let per = self.per.iter().enumerate().map(|(i, name)| FieldUse {
            key: format!("per[{i}]"),
            name: name.clone(),
            at: 0,
            input: None,
        });
        std::iter::once(by).chain(per).collect()
    }

    fn keeps_state(&self) -> bool {
        true
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Transform(Box::new(Top {
            by: self.by.clone(),
            k: self.k,
            per: self.per.clone(),
            descending: self.order == Order::Desc,
            rank: self.rank_field().to_string(),
            open: BTreeMap::new(),
            decided_through: Millis::MIN,
            arrived: 0,
            key: String::new(),
            rejects: cx.rejects.clone(),
            metrics: Arc::clone(&cx.metrics),
        })))
    }
}

/// One record still in the running: its value, when it arrived, and the record itself.
struct Candidate {
    value: f64,
    arrived: u64,
    row: Batch,
}

/// The records of one event time: the best `k` per group so far, and the delivery tickets of
/// every record that went into them.
#[derive(Default)]
struct Open {
    groups: hashbrown::HashMap<String, Vec<Candidate>, rustc_hash::FxBuildHasher>,
    acks: Acks,
}

struct Top {
    by: String,
    k: usize,
    per: Vec<String>,
    descending: bool,
    rank: String,
    /// Open groups by event time.
    open: BTreeMap<Millis, Open>,
    /// Every event time at or before this is decided: later records for it are late.
    decided_through: Millis,
    /// Records seen, to break ties by arrival.
    arrived: u64,
    /// The group key of the record at hand, reused.
    key: String,
    rejects: Rejects,
    metrics: Arc<StageMetrics>,
}

/// Whether `a` ranks before `b` (ties: the earlier arrival first).
fn ranks_before(a: &Candidate, b: &Candidate, descending: bool) -> bool {
    let better = if descending {
        a.value > b.value
    } else {
        a.value < b.value
    };
    better || (a.value == b.value && a.arrived < b.arrived)
}

/// Puts `candidate` into `group` (best first) if it is among the best `k`.
fn offer(group: &mut Vec<Candidate>, candidate: Candidate, k: usize, descending: bool) {
    let at = group
        .iter()
        .position(|c| ranks_before(&candidate, c, descending))
        .unwrap_or(group.len());
    if at < k {
        group.insert(at, candidate);
        group.truncate(k);
    }
}

impl Top {
    /// Emits every open event time at or before `through`, in time order, groups by key.
    fn emit_through(&mut self, through: Millis, out: &mut Vec<Batch>) {
        self.decided_through = self.decided_through.max(through);
        let later = self.open.split_off(&through.saturating_add(1));
        let decided = std::mem::replace(&mut self.open, later);
        for (time, open) in decided {
            if let Some(batch) = self.emit(time, open) {
                out.push(batch);
            }
        }
    }

    /// The ranked records of one event time, as one batch carrying their input's tickets.
    fn emit(&self, time: Millis, open: Open) -> Option<Batch> {
        let mut groups: Vec<(String, Vec<Candidate>)> = open.groups.into_iter().collect();
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let first = groups.first()?.1.first()?;
        let mut names: Vec<&str> = first.row.schema().names().collect();
        if !names.contains(&self.rank.as_str()) {
            names.push(&self.rank);
        }
        let schema = Arc::new(Schema::new(names.iter().copied()));
        let rows = groups.iter().map(|(_, g)| g.len()).sum();
        let mut builder = BatchBuilder::with_capacity(Arc::clone(&schema), rows);
        for (_, group) in &groups {
            for (place, candidate) in group.iter().enumerate() {
                let row = candidate.row.row(0);
                for name in schema.names() {
                    if name == self.rank {
                        builder.push(FieldRef::Int(place as i64 + 1));
                    } else {
                        builder.push(row.get_by_name(name).unwrap_or(FieldRef::Null));
                    }
                }
                builder.end_row(time);
            }
        }
        Some(builder.build().with_acks(open.acks))
    }
}

impl Transform for Top {
    fn process(&mut self, mut batch: Batch, _out: &mut Vec<Batch>) -> StageResult {
        let acks = batch.take_acks();
        let schema = Arc::clone(batch.schema());
        let by = schema.index_of(&self.by);
        let per: Vec<Option<usize>> = self.per.iter().map(|f| schema.index_of(f)).collect();
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut late = 0;
        let mut times: Vec<Millis> = Vec::new();
        for (index, row) in batch.rows().enumerate() {
            let time = row.event_time();
            if time <= self.decided_through {
                late += 1;
                rejected.push((
                    index,
                    format!("top: late: the records of event time {time} were already ranked"),
                ));
                continue;
            }
            let value = by.map(|b| row.get(b));
            let Some(number) = value.and_then(|v| v.as_number()) else {
                let shown = match value {
                    None | Some(FieldRef::Null) => "null".to_string(),
                    Some(v) => {
                        let mut text = String::new();
                        v.write_text(&mut text);
                        format!("`{text}`")
                    }
                };
                rejected.push((
                    index,
                    format!("top: `{}` is {shown}, not a number", self.by),
                ));
                continue;
            };
            row.write_key(&per, &mut self.key);
            self.arrived += 1;
            let candidate = Candidate {
                value: number.as_f64(),
                arrived: self.arrived,
                row: batch.slice(index..index + 1),
            };
            let group = match self
                .open
                .entry(time)
                .or_default()
                .groups
                .entry_ref(&self.key)
            {
                hashbrown::hash_map::EntryRef::Occupied(e) => e.into_mut(),
                hashbrown::hash_map::EntryRef::Vacant(e) => e.insert(Vec::new()),
            };
            offer(group, candidate, self.k, self.descending);
            if times.last() != Some(&time) {
                times.push(time);
            }
        }
        // Every event time this batch fed holds its tickets until it is emitted.
        times.sort_unstable();
        times.dedup();
        for time in times {
            if let Some(open) = self.open.get_mut(&time) {
                open.acks.absorb(acks.clone());
            }
        }
        if !rejected.is_empty() {
            self.metrics.add_dropped(DropReason::Late, late);
            self.metrics
                .add_dropped(DropReason::Invalid, rejected.len() as u64 - late);
            let rows: Vec<(usize, &str)> = rejected.iter().map(|(i, r)| (*i, r.as_str())).collect();
            self.rejects.reject_rows(&batch.with_acks(acks), &rows);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Millis, out: &mut Vec<Batch>) -> StageResult {
        self.emit_through(watermark, out);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.emit_through(Millis::MAX, out);
        Ok(())
    }

    fn stop(&mut self, out: &mut Vec<Batch>) -> StageResult {
        // Groups holding records a restart reads again are left to it, whole.
        let open = std::mem::take(&mut self.open);
        for (time, open) in open {
            if open.acks.is_empty() {
                if let Some(batch) = self.emit(time, open) {
                    out.push(batch);
                }
            } else {
                open.acks.fail();
            }
        }
        Ok(())
    }

    // What is held stays right under an edit of the rank's name or a smaller `k`; a larger `k`
    // only once nothing is held (records past the old `k` were let go).
    fn can_adopt(&self, edited: &dyn Transform) -> Result<(), EditRefusal> {
        let edited: &dyn std::any::Any = edited;
        let Some(e) = edited.downcast_ref::<Top>() else {
            return Err(EditRefusal::new("its type changed"));
        };
        if e.by != self.by || e.per != self.per || e.descending != self.descending {
            return Err(EditRefusal::new(
                "`by`, `per` and `order` cannot change while running",
            ));
        }
        if e.k > self.k && !self.open.is_empty() {
            return Err(EditRefusal::new(format!(
                "`k` can grow only while no group is open ({} event times are); try again",
                self.open.len()
            )));
        }
        Ok(())
    }

    fn adopt(&mut self, edited: Box<dyn Transform>) {
        let edited: Box<dyn std::any::Any> = edited;
        if let Ok(edited) = edited.downcast::<Top>() {
            self.k = edited.k;
            self.rank = edited.rank;
            let k = self.k;
            for open in self.open.values_mut() {
                for group in open.groups.values_mut() {
                    group.truncate(k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
