//! Writes rows as JSON objects, one per line, without building an intermediate value tree.

use super::{Batch, FieldRef, Row, Schema};
use std::io::Write;
use std::sync::Arc;

/// Encodes rows as JSON objects (`{"field":value,...}`) in schema order. Field names are escaped
/// once per schema, not once per row.
#[derive(Debug, Default)]
pub struct JsonWriter {
    cached: Option<(Arc<Schema>, Vec<Vec<u8>>)>,
}

impl JsonWriter {
    /// Appends every row of `batch` to `out`, each followed by a newline.
    pub fn write_batch(&mut self, batch: &Batch, out: &mut Vec<u8>) {
        let keys = self.keys_for(batch.schema());
        for row in batch.rows() {
            write_object(&row, keys, out);
            out.push(b'\n');
        }
    }

    /// Appends rows `rows` of `batch` to `out`, each followed by `separator`.
    pub fn write_rows(
        &mut self,
        batch: &Batch,
        rows: std::ops::Range<usize>,
        separator: &[u8],
        out: &mut Vec<u8>,
    ) {
        let keys = self.keys_for(batch.schema());
        for index in rows.filter(|&i| i < batch.len()) {
            write_object(&batch.row(index), keys, out);
            out.extend_from_slice(separator);
        }
    }

    fn keys_for(&mut self, schema: &Arc<Schema>) -> &[Vec<u8>] {
        let stale = !matches!(&self.cached, Some((s, _)) if Arc::ptr_eq(s, schema));
        if stale {
            let keys = schema
                .names()
                .enumerate()
                .map(|(i, name)| {
                    let mut key = Vec::with_capacity(name.len() + 4);
                    if i > 0 {
                        key.push(b',');
                    }
                    write_json_str(name, &mut key);
                    key.push(b':');
                    key
                })
                .collect();
            self.cached = Some((Arc::clone(schema), keys));
        }
        &self.cached.as_ref().expect("cached above").1
    }
}

/// One row as a JSON object (for a single record, e.g. in an error record; batches go through
/// [`JsonWriter`]).
pub fn row_json(row: &Row<'_>) -> String {
    let mut out = vec![b'{'];
    for (i, name) in row.schema().names().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(name, &mut out);
        out.push(b':');
        write_json_value(row.get(i), &mut out);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write_object(row: &Row<'_>, keys: &[Vec<u8>], out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, key) in keys.iter().enumerate() {
        out.extend_from_slice(key);
        write_json_value(row.get(i), out);
    }
    out.push(b'}');
}

/// Appends `value` as a JSON value. Non-finite floats become `null` (JSON has no NaN).
pub fn write_json_value(value: FieldRef<'_>, out: &mut Vec<u8>) {
    match value {
        FieldRef::Null => out.extend_from_slice(b"null"),
        FieldRef::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        FieldRef::Int(i) => {
            let _ = write!(out, "{i}");
        }
        FieldRef::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        FieldRef::Float(_) => out.extend_from_slice(b"null"),
        FieldRef::Str(s) => write_json_str(s, out),
    }
}

/// Appends `text` as a quoted JSON string.
pub fn write_json_str(text: &str, out: &mut Vec<u8>) {
    let needs_escape = text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    if needs_escape {
        // serde_json's escaping is exact and only needed on this slow path.
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BatchBuilder;

    #[test]
    fn writes_typed_fields_and_escapes_text() {
        let schema = Arc::new(Schema::new(["s", "n", "f", "z", "q\"k"]));
        let mut b = BatchBuilder::with_capacity(schema, 1);
        b.push_str("a\"b\n");
        b.push(FieldRef::Int(-3));
        b.push(FieldRef::Float(2.5));
        b.push(FieldRef::Null);
        b.push(FieldRef::Float(f64::NAN));
        b.end_row(0);
        let mut out = Vec::new();
        JsonWriter::default().write_batch(&b.build(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"s\":\"a\\\"b\\n\",\"n\":-3,\"f\":2.5,\"z\":null,\"q\\\"k\":null}\n"
        );
    }
}
