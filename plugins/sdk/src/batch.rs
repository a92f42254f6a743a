//! Reading the batches the host lends to a plugin, and building the ones a plugin emits.

use weir_plugin_abi::{BatchView, Str, Value};

/// A field value read from a batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Field<'a> {
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

/// A batch lent by the host for the duration of one call.
pub struct Batch<'a> {
    view: &'a BatchView,
    names: std::cell::OnceCell<Vec<&'a str>>,
}

impl<'a> Batch<'a> {
    /// Wraps a view.
    ///
    /// # Safety
    /// Every pointer in `view` must be valid for its stated length for `'a`.
    pub(crate) unsafe fn new(view: &'a BatchView) -> Self {
        Batch {
            view,
            names: std::cell::OnceCell::new(),
        }
    }

    /// Name `i` as raw bytes.
    fn name_bytes(&self, i: usize) -> &'a [u8] {
        // SAFETY: `names` holds `columns` valid strings (the constructor's contract).
        unsafe { (*self.view.names.add(i)).as_bytes() }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.view.rows
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.view.rows == 0
    }

    /// Number of fields per row.
    pub fn columns(&self) -> usize {
        self.view.columns
    }

    /// Field names in order (decoded on first use).
    pub fn names(&self) -> &[&'a str] {
        self.names.get_or_init(|| {
            (0..self.view.columns)
                .map(|i| std::str::from_utf8(self.name_bytes(i)).unwrap_or_default())
                .collect()
        })
    }

    /// Position of field `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        (0..self.view.columns).find(|&i| self.name_bytes(i) == name.as_bytes())
    }

    /// Event time of row `row` (epoch ms).
    pub fn time(&self, row: usize) -> i64 {
        assert!(row < self.view.rows);
        // SAFETY: `times` holds `rows` values.
        unsafe { *self.view.times.add(row) }
    }

    /// Field `column` of row `row`.
    pub fn get(&self, row: usize, column: usize) -> Field<'a> {
        assert!(row < self.view.rows && column < self.view.columns);
        // SAFETY: `values` holds `rows * columns` values.
        let value = unsafe { *self.view.values.add(row * self.view.columns + column) };
        match value {
            Value::Null => Field::Null,
            Value::Bool(b) => Field::Bool(b),
            Value::Int(i) => Field::Int(i),
            Value::Float(f) => Field::Float(f),
            Value::Str { start, len } => {
                let (start, len) = (start as usize, len as usize);
                if start + len > self.view.arena_len {
                    return Field::Null;
                }
                // SAFETY: in bounds of the arena, checked above.
                let bytes = unsafe { std::slice::from_raw_parts(self.view.arena.add(start), len) };
                Field::Str(std::str::from_utf8(bytes).unwrap_or_default())
            }
        }
    }
}

/// An output batch under construction: rows of `names.len()` fields each.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    names: Vec<String>,
    arena: Vec<u8>,
    values: Vec<Value>,
    times: Vec<i64>,
}

impl BatchBuilder {
    /// A builder for rows with these field names.
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        BatchBuilder {
            names: names.into_iter().map(Into::into).collect(),
            ..BatchBuilder::default()
        }
    }

    /// Field names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Complete rows so far.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True when no row has been added.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Adds a field to the current row.
    pub fn push(&mut self, field: Field<'_>) {
        let value = match field {
            Field::Null => Value::Null,
            Field::Bool(b) => Value::Bool(b),
            Field::Int(i) => Value::Int(i),
            Field::Float(f) => Value::Float(f),
            Field::Str(s) => {
                let start = self.arena.len() as u32;
                self.arena.extend_from_slice(s.as_bytes());
                Value::Str {
                    start,
                    len: s.len() as u32,
                }
            }
        };
        self.values.push(value);
    }

    /// Adds a text field to the current row.
    pub fn push_str(&mut self, text: &str) {
        self.push(Field::Str(text));
    }

    /// Ends the current row with its event time. Panics if the row has the wrong number of
    /// fields.
    pub fn end_row(&mut self, time: i64) {
        self.times.push(time);
        assert_eq!(
            self.values.len(),
            self.times.len() * self.names.len(),
            "row has the wrong number of fields"
        );
    }

    /// Empties the builder, keeping names and capacity.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.values.clear();
        self.times.clear();
    }

    /// Runs `f` with a view of the batch (and the name strings it points at).
    pub(crate) fn with_view<R>(&self, f: impl FnOnce(&BatchView) -> R) -> R {
        let names: Vec<Str> = self.names.iter().map(|n| Str::new(n)).collect();
        let view = BatchView {
            rows: self.times.len(),
            columns: self.names.len(),
            names: names.as_ptr(),
            arena: self.arena.as_ptr(),
            arena_len: self.arena.len(),
            values: self.values.as_ptr(),
            times: self.times.as_ptr(),
        };
        f(&view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_batch_reads_back_through_its_view() {
        let mut b = BatchBuilder::new(["g", "n"]);
        b.push_str("女");
        b.push(Field::Int(3));
        b.end_row(7);
        b.with_view(|view| {
            // SAFETY: the view borrows `b`, alive for this closure.
            let batch = unsafe { Batch::new(view) };
            assert_eq!(batch.names(), ["g", "n"]);
            assert_eq!(batch.get(0, 0), Field::Str("女"));
            assert_eq!(batch.get(0, 1), Field::Int(3));
            assert_eq!(batch.time(0), 7);
            assert_eq!(batch.index_of("n"), Some(1));
            assert_eq!(batch.columns(), 2);
        });
    }
}
