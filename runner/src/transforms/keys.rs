//! Reading a record's key: the values of some named fields as one text, with the fields'
//! positions looked up once per schema (batches of one input share their schema).

use crate::record::{Batch, FieldRef, Schema};
use std::sync::Arc;

/// The key fields of a keyed stage, and where they are in the schema seen last.
#[derive(Debug)]
pub struct KeyFields {
    names: Vec<String>,
    positions: Option<(Arc<Schema>, Vec<Option<usize>>)>,
}

impl KeyFields {
    /// Keys made of the fields `names`, in that order.
    pub fn new(names: Vec<String>) -> KeyFields {
        KeyFields {
            names,
            positions: None,
        }
    }

    /// Writes the key of row `row` of `batch` into `text` (see `Row::write_key`: the fields'
    /// text joined by U+001F, a missing or null field as U+0000). Returns false when a key field
    /// is missing or null.
    pub fn write(&mut self, batch: &Batch, row: usize, text: &mut String) -> bool {
        let schema = batch.schema();
        if self
            .positions
            .as_ref()
            .is_none_or(|(known, _)| !Arc::ptr_eq(known, schema))
        {
            let positions = self.names.iter().map(|k| schema.index_of(k)).collect();
            self.positions = Some((Arc::clone(schema), positions));
        }
        let positions = &self.positions.as_ref().expect("resolved above").1;
        let record = batch.row(row);
        record.write_key(positions, text);
        positions
            .iter()
            .all(|p| p.is_some_and(|p| record.get(p) != FieldRef::Null))
    }
}
