//! The record model: stages exchange [`Batch`]es of rows.
//!
//! A batch owns one byte arena that holds the text of all its string fields, a row-major table
//! of [`Value`]s (string values are spans into the arena) and one event time per row. The CSV source
//! parses a row straight into the arena; no field is allocated on its own.
//! Batches are cheap to filter or re-shape because the arena is shared (`Arc`) between a batch and
//! the batches derived from it.

pub mod json;
mod schema;

pub use json::JsonWriter;
pub use schema::Schema;

use crate::ack::Acks;
use std::sync::Arc;

/// Event time: milliseconds since the Unix epoch.
pub type Millis = i64;

/// One field of a row, as stored in a batch: null, bool, integer, float, or a span of the
/// batch's arena. It is the plugin ABI's value type, so batches cross into plugins without
/// conversion.
pub use weir_plugin_abi::Value;

/// A field value borrowed from a batch, ready to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldRef<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Str(&'a str),
}

impl FieldRef<'_> {
    /// The value as a number, parsing text when it holds one; `None` for null, booleans and
    /// non-numeric text.
    pub fn as_number(&self) -> Option<Number> {
        match *self {
            FieldRef::Int(i) => Some(Number::Int(i)),
            FieldRef::Float(f) => Some(Number::Float(f)),
            FieldRef::Str(s) => {
                let s = s.trim();
                if let Ok(i) = s.parse::<i64>() {
                    Some(Number::Int(i))
                } else {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(Number::Float)
                }
            }
            FieldRef::Null | FieldRef::Bool(_) => None,
        }
    }

    /// Appends a text form of the value (the text itself for strings, `""` for null) to `out`.
    pub fn write_text(&self, out: &mut String) {
        use std::fmt::Write;
        match *self {
            FieldRef::Null => {}
            FieldRef::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            FieldRef::Int(i) => {
                let _ = write!(out, "{i}");
            }
            FieldRef::Float(f) => {
                let _ = write!(out, "{f}");
            }
            FieldRef::Str(s) => out.push_str(s),
        }
    }
}

/// A number read from a field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Number {
    /// The number as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// A batch of rows that share one schema.
#[derive(Clone, Debug)]
pub struct Batch {
    schema: Arc<Schema>,
    arena: Arc<Vec<u8>>,
    values: Vec<Value>,
    times: Vec<Millis>,
    /// Delivery tickets of the source records this batch came from (see `ack`).
    acks: Acks,
}

impl Batch {
    /// A batch from parts built elsewhere: `values` holds `times.len()` rows of
    /// `schema.len()` values each, and every string value is a span of `text`, which should be
    /// UTF-8 (a span that is not reads as an empty string).
    pub fn from_utf8_parts(
        schema: Arc<Schema>,
        text: Vec<u8>,
        values: Vec<Value>,
        times: Vec<Millis>,
    ) -> Batch {
        assert_eq!(
            values.len(),
            times.len() * schema.len(),
            "one value per field per row"
        );
        Batch {
            schema,
            arena: Arc::new(text),
            values,
            times,
            acks: Acks::default(),
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True when the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// The schema every row of this batch follows.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Row `index` (panics when out of range, like slice indexing).
    pub fn row(&self, index: usize) -> Row<'_> {
        assert!(index < self.len(), "row {index} out of range");
        Row { batch: self, index }
    }

    /// All rows in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = Row<'_>> + '_ {
        (0..self.len()).map(move |index| Row { batch: self, index })
    }

    /// Event times of all rows, in order.
    pub fn times(&self) -> &[Millis] {
        &self.times
    }

    /// Event times of all rows, to set them after the rows were read (a source that parses on
    /// several threads stamps rows in order afterwards).
    pub fn times_mut(&mut self) -> &mut [Millis] {
        &mut self.times
    }

    /// The arena holding the text of all string values.
    pub fn arena(&self) -> &[u8] {
        &self.arena
    }

    /// All values, row by row (`len() * schema().len()` of them).
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The delivery tickets this batch carries. Batches derived from it carry them too.
    pub fn acks(&self) -> &Acks {
        &self.acks
    }

    /// Takes the delivery tickets, for a stage that holds them elsewhere (a window keeps them
    /// until its result is emitted).
    pub fn take_acks(&mut self) -> Acks {
        std::mem::take(&mut self.acks)
    }

    /// Makes this batch carry `acks` as well.
    pub fn attach_acks(&mut self, acks: Acks) {
        self.acks.absorb(acks);
    }

    /// This batch carrying `acks` as well.
    pub fn with_acks(mut self, acks: Acks) -> Batch {
        self.attach_acks(acks);
        self
    }

    /// A batch with only the rows whose index `keep` accepts; shares this batch's arena.
    pub fn retain(&self, mut keep: impl FnMut(Row<'_>) -> bool) -> Batch {
        let kept = self.rows().filter(|row| keep(*row)).map(|row| row.index);
        self.gather(kept, self.len())
    }

    /// Rows `range` of this batch (in range); shares this batch's arena.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Batch {
        let expected = range.len();
        self.gather(range, expected)
    }

    /// One batch of the rows of `parts` in order (all with one schema; `None` when there are no
    /// parts). A single part is returned as it is; several are copied into one arena.
    pub fn concat(mut parts: Vec<Batch>) -> Option<Batch> {
        if parts.len() <= 1 {
            return parts.pop();
        }
        let schema = Arc::clone(&parts[0].schema);
        let mut text = Vec::with_capacity(parts.iter().map(|p| p.arena.len()).sum());
        let mut values = Vec::with_capacity(parts.iter().map(|p| p.values.len()).sum());
        let mut times = Vec::with_capacity(parts.iter().map(Batch::len).sum());
        let mut acks = Acks::default();
        for part in parts {
            debug_assert!(Arc::ptr_eq(&part.schema, &schema) || *part.schema == *schema);
            let shift = u32::try_from(text.len()).unwrap_or(u32::MAX);
            text.extend_from_slice(&part.arena);
            values.extend(part.values.iter().map(|v| match *v {
                Value::Str { start, len } => Value::Str {
                    start: start.saturating_add(shift),
                    len,
                },
                other => other,
            }));
            times.extend_from_slice(&part.times);
            acks.absorb(part.acks);
        }
        Some(Batch {
            schema,
            arena: Arc::new(text),
            values,
            times,
            acks,
        })
    }

    /// A batch of rows `rows` (indices, in range) of this one; shares this batch's arena.
    pub fn select(&self, rows: &[u32]) -> Batch {
        self.gather(rows.iter().map(|&row| row as usize), rows.len())
    }

    /// A batch of the rows `rows` yields (indices, in range), with room for `expected` of them;
    /// shares this batch's arena, schema and tickets.
    fn gather(&self, rows: impl Iterator<Item = usize>, expected: usize) -> Batch {
        let width = self.schema.len();
        let mut values = Vec::with_capacity(expected * width);
        let mut times = Vec::with_capacity(expected);
        for row in rows {
            values.extend_from_slice(&self.values[row * width..(row + 1) * width]);
            times.push(self.times[row]);
        }
        Batch {
            schema: Arc::clone(&self.schema),
            arena: Arc::clone(&self.arena),
            values,
            times,
            acks: self.acks.clone(),
        }
    }

    /// A batch with a new schema whose field `i` is this batch's field `sources[i]`; shares this
    /// batch's arena.
    pub fn project(&self, schema: Arc<Schema>, sources: &[Option<usize>]) -> Batch {
        debug_assert_eq!(schema.len(), sources.len());
        let mut values = Vec::with_capacity(self.len() * sources.len());
        for row in self.rows() {
            let fields = row.values();
            values.extend(sources.iter().map(|s| s.map_or(Value::Null, |i| fields[i])));
        }
        Batch {
            schema,
            arena: Arc::clone(&self.arena),
            values,
            times: self.times.clone(),
            acks: self.acks.clone(),
        }
    }
}

/// One row of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    batch: &'a Batch,
    index: usize,
}

impl<'a> Row<'a> {
    /// The row's event time.
    pub fn event_time(&self) -> Millis {
        self.batch.times[self.index]
    }

    /// Field `field` of the row (by position in the schema).
    #[inline]
    pub fn get(&self, field: usize) -> FieldRef<'a> {
        self.resolve(self.values()[field])
    }

    /// Field `name`, or `None` when the schema has no such field.
    pub fn get_by_name(&self, name: &str) -> Option<FieldRef<'a>> {
        self.batch.schema.index_of(name).map(|i| self.get(i))
    }

    /// Writes the row's fields at `positions` into `out` (cleared first) as one key: the fields'
    /// text joined by U+001F, a missing (`None`) or null field as U+0000 so it differs from an
    /// empty one. Two rows have the same key text when they agree on those fields.
    pub fn write_key(&self, positions: &[Option<usize>], out: &mut String) {
        out.clear();
        for (i, position) in positions.iter().enumerate() {
            if i > 0 {
                out.push('\u{1f}');
            }
            match position.map(|p| self.get(p)) {
                None | Some(FieldRef::Null) => out.push('\u{0}'),
                Some(value) => value.write_text(out),
            }
        }
    }

    /// The raw stored values of the row.
    pub fn values(&self) -> &'a [Value] {
        let width = self.batch.schema.len();
        &self.batch.values[self.index * width..(self.index + 1) * width]
    }

    /// The bytes of text field `field`, without re-checking them as UTF-8 (they were checked
    /// when the batch was built); `None` when the field is not text.
    #[inline]
    pub fn text_bytes(&self, field: usize) -> Option<&'a [u8]> {
        match self.values()[field] {
            Value::Str { start, len } => {
                Some(&self.batch.arena[start as usize..(start + len) as usize])
            }
            _ => None,
        }
    }

    /// Reads a stored value of this row's batch.
    #[inline]
    pub fn resolve(&self, value: Value) -> FieldRef<'a> {
        match value {
            Value::Null => FieldRef::Null,
            Value::Bool(b) => FieldRef::Bool(b),
            Value::Int(i) => FieldRef::Int(i),
            Value::Float(f) => FieldRef::Float(f),
            Value::Str { start, len } => {
                let bytes = &self.batch.arena[start as usize..(start + len) as usize];
                // The builder only stores text that came in as `&str`.
                FieldRef::Str(std::str::from_utf8(bytes).unwrap_or_default())
            }
        }
    }

    /// The schema of the row.
    pub fn schema(&self) -> &'a Arc<Schema> {
        &self.batch.schema
    }
}

/// Builds a [`Batch`] row by row.
#[derive(Debug)]
pub struct BatchBuilder {
    schema: Arc<Schema>,
    arena: Vec<u8>,
    values: Vec<Value>,
    times: Vec<Millis>,
}

impl BatchBuilder {
    /// A builder sized for about `rows` rows.
    pub fn with_capacity(schema: Arc<Schema>, rows: usize) -> BatchBuilder {
        let width = schema.len();
        BatchBuilder {
            schema,
            arena: Vec::with_capacity(rows * 64),
            values: Vec::with_capacity(rows * width),
            times: Vec::with_capacity(rows),
        }
    }

    /// Number of complete rows so far.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True when no row has been added.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Adds a string field to the current row.
    pub fn push_str(&mut self, text: &str) {
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(text.as_bytes());
        self.values.push(Value::Str {
            start,
            len: text.len() as u32,
        });
    }

    /// Adds a non-string field to the current row. Use [`push_str`](Self::push_str) for text.
    pub fn push(&mut self, value: FieldRef<'_>) {
        match value {
            FieldRef::Null => self.values.push(Value::Null),
            FieldRef::Bool(b) => self.values.push(Value::Bool(b)),
            FieldRef::Int(i) => self.values.push(Value::Int(i)),
            FieldRef::Float(f) => self.values.push(Value::Float(f)),
            FieldRef::Str(s) => self.push_str(s),
        }
    }

    /// Ends the current row, stamping it with its event time.
    pub fn end_row(&mut self, time: Millis) {
        self.times.push(time);
        debug_assert_eq!(self.values.len(), self.times.len() * self.schema.len());
    }

    /// Finishes the batch.
    pub fn build(self) -> Batch {
        Batch {
            schema: self.schema,
            arena: Arc::new(self.arena),
            values: self.values,
            times: self.times,
            acks: Acks::default(),
        }
    }

    /// Finishes the batch and leaves an empty builder of the same schema in its place.
    pub fn take(&mut self) -> Batch {
        let rows = self.times.capacity();
        let fresh = BatchBuilder::with_capacity(Arc::clone(&self.schema), rows);
        std::mem::replace(self, fresh).build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Batch {
        let schema = Arc::new(Schema::new(["a", "b"]));
        let mut b = BatchBuilder::with_capacity(schema, 2);
        b.push_str("x");
        b.push_str("1");
        b.end_row(10);
        b.push_str("y");
        b.push(FieldRef::Int(7));
        b.end_row(20);
        b.build()
    }

    #[test]
    fn rows_read_back_what_was_built() {
        let batch = sample();
        assert_eq!(batch.len(), 2);
        let r0 = batch.row(0);
        assert_eq!(r0.get(0), FieldRef::Str("x"));
        assert_eq!(r0.get(1), FieldRef::Str("1"));
        assert_eq!(r0.event_time(), 10);
        let r1 = batch.row(1);
        assert_eq!(r1.get_by_name("a"), Some(FieldRef::Str("y")));
        assert_eq!(r1.get_by_name("b"), Some(FieldRef::Int(7)));
        assert_eq!(r1.get_by_name("c"), None);
    }

    #[test]
    fn slices_concatenate_back_to_the_rows_they_came_from() {
        let batch = sample();
        let (first, second) = (batch.slice(0..1), batch.slice(1..2));
        assert_eq!(second.row(0).get(0), FieldRef::Str("y"));
        let whole = Batch::concat(vec![second.clone(), first, second]).unwrap();
        let read: Vec<_> = whole
            .rows()
            .map(|r| (r.get(0), r.get(1), r.event_time()))
            .collect();
        assert_eq!(
            read,
            [
                (FieldRef::Str("y"), FieldRef::Int(7), 20),
                (FieldRef::Str("x"), FieldRef::Str("1"), 10),
                (FieldRef::Str("y"), FieldRef::Int(7), 20),
            ]
        );
        assert!(Batch::concat(Vec::new()).is_none());
    }

    #[test]
    fn retain_and_project_share_the_arena() {
        let batch = sample();
        let kept = batch.retain(|r| r.event_time() > 15);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept.row(0).get(0), FieldRef::Str("y"));
        let schema = Arc::new(Schema::new(["b2", "missing"]));
        let projected = batch.project(schema, &[Some(1), None]);
        assert_eq!(projected.row(0).get(0), FieldRef::Str("1"));
        assert_eq!(projected.row(0).get(1), FieldRef::Null);
        assert_eq!(projected.times(), &[10, 20]);
    }

    #[test]
    fn numbers_parse_from_text() {
        assert_eq!(FieldRef::Str(" 42 ").as_number(), Some(Number::Int(42)));
        assert_eq!(FieldRef::Str("2.5").as_number(), Some(Number::Float(2.5)));
        assert_eq!(FieldRef::Str("").as_number(), None);
        assert_eq!(FieldRef::Str("NaN").as_number(), None);
        assert_eq!(FieldRef::Null.as_number(), None);
    }
}
