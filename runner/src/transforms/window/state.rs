//! Open windows and their groups: which windows a row falls in, the per-group accumulators, and
//! closing windows in order as the watermark passes their end.

use super::aggregate::{Accumulator, AggregateOp, Fed};
use crate::record::{BatchBuilder, FieldRef, Millis, Row, Schema};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Window geometry: `size` long, a new one every `slide` (tumbling when equal), aligned to the
/// epoch.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// Window length in ms.
    pub size: Millis,
    /// Distance between window starts in ms.
    pub slide: Millis,
}

impl Geometry {
    /// Starts of the windows that contain time `t`, latest first.
    pub fn starts(self, t: Millis) -> impl Iterator<Item = Millis> {
        let last = t.div_euclid(self.slide) * self.slide;
        let slide = self.slide;
        let earliest = t - self.size;
        (0..)
            .map(move |k| last - k * slide)
            .take_while(move |&s| s > earliest)
    }
}

/// One aggregate as configured, with its input field resolved per schema.
#[derive(Clone, Debug)]
pub struct AggregateSpec {
    /// The function.
    pub op: AggregateOp,
    /// The field it reads, if any.
    pub field: Option<String>,
    /// Output field name.
    pub name: String,
}

/// A group's key as owned values (kept once per group).
#[derive(Clone, Debug)]
enum KeyValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

impl KeyValue {
    fn as_field(&self) -> FieldRef<'_> {
        match self {
            KeyValue::Null => FieldRef::Null,
            KeyValue::Bool(b) => FieldRef::Bool(*b),
            KeyValue::Int(i) => FieldRef::Int(*i),
            KeyValue::Float(f) => FieldRef::Float(*f),
            KeyValue::Str(s) => FieldRef::Str(s),
        }
    }
}

#[derive(Debug)]
struct Group {
    key: Vec<KeyValue>,
    accumulators: Vec<Accumulator>,
}

/// Groups of one window, found by their encoded key bytes.
#[derive(Debug, Default)]
struct Groups {
    index: FxHashMap<Box<[u8]>, usize>,
    groups: Vec<Group>,
}

/// Field positions for the schema currently flowing in.
#[derive(Debug)]
struct Resolved {
    schema: Arc<Schema>,
    group_fields: Vec<Option<usize>>,
    aggregate_fields: Vec<Option<usize>>,
}

/// All open windows.
#[derive(Debug)]
pub struct WindowState {
    geometry: Geometry,
    group_by: Vec<String>,
    aggregates: Vec<AggregateSpec>,
    output_schema: Arc<Schema>,
    open: BTreeMap<Millis, Groups>,
    /// Every window ending at or before this has been emitted.
    closed_through: Millis,
    resolved: Option<Resolved>,
    key_scratch: Vec<u8>,
    /// Rows dropped because every window they belong to had closed.
    pub late_rows: u64,
    /// Values left out of numeric aggregates because they were not numbers.
    pub non_numeric_values: u64,
    /// Group-by or aggregate fields missing from an input schema (reported once each).
    pub missing_fields: Vec<String>,
}

impl WindowState {
    /// Empty state.
    pub fn new(geometry: Geometry, group_by: Vec<String>, aggregates: Vec<AggregateSpec>) -> Self {
        let names = ["window_start", "window_end"]
            .into_iter()
            .map(str::to_string)
            .chain(group_by.iter().cloned())
            .chain(aggregates.iter().map(|a| a.name.clone()));
        WindowState {
            geometry,
            output_schema: Arc::new(Schema::new(names)),
            group_by,
            aggregates,
            open: BTreeMap::new(),
            closed_through: Millis::MIN,
            resolved: None,
            key_scratch: Vec::with_capacity(64),
            late_rows: 0,
            non_numeric_values: 0,
            missing_fields: Vec::new(),
        }
    }

    /// Number of windows currently open.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }

    /// Adds `row` at time `t` to every window that contains it and is still open.
    pub fn add(&mut self, row: Row<'_>, t: Millis) {
        self.resolve(row.schema());
        let resolved = self.resolved.as_ref().expect("resolved above");
        encode_key(&row, &resolved.group_fields, &mut self.key_scratch);
        let mut placed = false;
        for start in self.geometry.starts(t) {
            if start + self.geometry.size <= self.closed_through {
                continue;
            }
            placed = true;
            let groups = self.open.entry(start).or_default();
            let index = match groups.index.get(self.key_scratch.as_slice()) {
                Some(&i) => i,
                None => {
                    let key = resolved
                        .group_fields
                        .iter()
                        .map(|f| owned(f.map_or(FieldRef::Null, |i| row.get(i))))
                        .collect();
                    groups.groups.push(Group {
                        key,
                        accumulators: vec![Accumulator::default(); self.aggregates.len()],
                    });
                    groups
                        .index
                        .insert(self.key_scratch.as_slice().into(), groups.groups.len() - 1);
                    groups.groups.len() - 1
                }
            };
            let group = &mut groups.groups[index];
            for ((acc, spec), field) in group
                .accumulators
                .iter_mut()
                .zip(&self.aggregates)
                .zip(&resolved.aggregate_fields)
            {
                let value = match (&spec.field, field) {
                    (None, _) => None,
                    (Some(_), Some(i)) => Some(row.get(*i)),
                    (Some(_), None) => Some(FieldRef::Null),
                };
                if acc.feed(spec.op, value) == Fed::NotNumeric {
                    self.non_numeric_values += 1;
                }
            }
        }
        if !placed {
            self.late_rows += 1;
        }
    }

    /// Emits, in order, every open window that ends at or before `watermark`.
    pub fn close_through(&mut self, watermark: Millis, out: &mut Vec<crate::record::Batch>) {
        if watermark > self.closed_through {
            self.closed_through = watermark;
        }
        let size = self.geometry.size;
        let mut builder: Option<BatchBuilder> = None;
        while let Some(entry) = self.open.first_entry() {
            if *entry.key() + size > watermark {
                break;
            }
            let (start, groups) = entry.remove_entry();
            let b = builder.get_or_insert_with(|| {
                BatchBuilder::with_capacity(Arc::clone(&self.output_schema), 16)
            });
            emit_window(start, start + size, groups, &self.aggregates, b);
        }
        if let Some(b) = builder {
            out.push(b.build());
        }
    }

    /// Emits every open window (end of input).
    pub fn close_all(&mut self, out: &mut Vec<crate::record::Batch>) {
        self.close_through(Millis::MAX, out);
    }

    fn resolve(&mut self, schema: &Arc<Schema>) {
        if matches!(&self.resolved, Some(r) if Arc::ptr_eq(&r.schema, schema)) {
            return;
        }
        let mut lookup = |name: &str| {
            let i = schema.index_of(name);
            if i.is_none() && !self.missing_fields.iter().any(|m| m == name) {
                self.missing_fields.push(name.to_string());
            }
            i
        };
        let group_fields = self.group_by.iter().map(|g| lookup(g)).collect();
        let aggregate_fields = self
            .aggregates
            .iter()
            .map(|a| a.field.as_deref().and_then(&mut lookup))
            .collect();
        self.resolved = Some(Resolved {
            schema: Arc::clone(schema),
            group_fields,
            aggregate_fields,
        });
    }
}

/// Writes the group key of `row` into `out` as unambiguous bytes (type tag, length, content).
fn encode_key(row: &Row<'_>, fields: &[Option<usize>], out: &mut Vec<u8>) {
    out.clear();
    for field in fields {
        match field.map_or(FieldRef::Null, |i| row.get(i)) {
            FieldRef::Null => out.push(b'n'),
            FieldRef::Bool(b) => out.extend_from_slice(&[b'b', u8::from(b)]),
            FieldRef::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            }
            FieldRef::Float(f) => {
                out.push(b'f');
                out.extend_from_slice(&f.to_bits().to_le_bytes());
            }
            FieldRef::Str(s) => {
                out.push(b's');
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

fn owned(field: FieldRef<'_>) -> KeyValue {
    match field {
        FieldRef::Null => KeyValue::Null,
        FieldRef::Bool(b) => KeyValue::Bool(b),
        FieldRef::Int(i) => KeyValue::Int(i),
        FieldRef::Float(f) => KeyValue::Float(f),
        FieldRef::Str(s) => KeyValue::Str(s.into()),
    }
}

/// Appends one row per group, groups ordered by key so output is deterministic.
fn emit_window(
    start: Millis,
    end: Millis,
    groups: Groups,
    aggregates: &[AggregateSpec],
    out: &mut BatchBuilder,
) {
    let mut keyed: Vec<(Box<[u8]>, usize)> = groups.index.into_iter().collect();
    keyed.sort_unstable();
    for (_, i) in keyed {
        let group = &groups.groups[i];
        out.push(FieldRef::Int(start));
        out.push(FieldRef::Int(end));
        for k in &group.key {
            out.push(k.as_field());
        }
        for (acc, spec) in group.accumulators.iter().zip(aggregates) {
            out.push(acc.result(spec.op));
        }
        out.end_row(end - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_sliding_window_starts() {
        let tumbling = Geometry {
            size: 1000,
            slide: 1000,
        };
        assert_eq!(tumbling.starts(1500).collect::<Vec<_>>(), [1000]);
        assert_eq!(tumbling.starts(1000).collect::<Vec<_>>(), [1000]);
        assert_eq!(tumbling.starts(-1).collect::<Vec<_>>(), [-1000]);
        let sliding = Geometry {
            size: 1000,
            slide: 250,
        };
        assert_eq!(
            sliding.starts(1100).collect::<Vec<_>>(),
            [1000, 750, 500, 250]
        );
        assert_eq!(
            sliding.starts(1000).collect::<Vec<_>>(),
            [1000, 750, 500, 250]
        );
    }
}
