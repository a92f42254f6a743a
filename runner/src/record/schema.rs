//! Field names of a batch and their positions.

use rustc_hash::FxHashMap;

/// The ordered field names of a batch. Stages resolve a name to a position once per schema and
/// then read rows by position.
#[derive(Debug, PartialEq, Eq)]
pub struct Schema {
    names: Vec<Box<str>>,
    positions: FxHashMap<Box<str>, usize>,
}

impl Schema {
    /// A schema with the given field names, in order. A repeated name resolves to its first
    /// position.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Schema {
        let names: Vec<Box<str>> = names.into_iter().map(|n| n.as_ref().into()).collect();
        let mut positions = FxHashMap::default();
        for (i, name) in names.iter().enumerate() {
            positions.entry(name.clone()).or_insert(i);
        }
        Schema { names, positions }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the schema has no fields.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Position of field `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.positions.get(name).copied()
    }

    /// Field names in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    /// Name of field `index`.
    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }
}
