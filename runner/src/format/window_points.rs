//! Window records (`window_start`, `window_end`, group fields, aggregates) as points: one per
//! closed window, a value per series key. Shared by the sinks that chart or export windows.

use crate::record::{Batch, FieldRef, Millis};
use crate::stage::OptionDoc;
use serde::Serialize;
use std::collections::BTreeMap;

/// One chart point: a closed window's counts by series key.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// Window end, epoch ms (the x axis).
    pub t: Millis,
    /// Value per series key.
    pub values: BTreeMap<String, f64>,
}

/// Documentation of the `key_field` option of the sinks that read [`Fields`].
pub const KEY_FIELD_OPTION: OptionDoc = OptionDoc {
    name: "key_field",
    ty: "string",
    default: "first non-window field",
    doc: "the field holding the series key",
};

/// Documentation of the `value_field` option of the sinks that read [`Fields`].
pub const VALUE_FIELD_OPTION: OptionDoc = OptionDoc {
    name: "value_field",
    ty: "string",
    default: "last field",
    doc: "the field holding the value",
};

/// Which fields of a window record are the series key and the value.
#[derive(Clone, Debug, Default)]
pub struct Fields {
    /// Series key field; default: the first field that is not `window_start`/`window_end`.
    pub key: Option<String>,
    /// Value field; default: the last field.
    pub value: Option<String>,
}

/// A record [`points`] left out: its position in the batch and why.
pub type Skipped = (usize, &'static str);

/// Turns a batch of window records into points, one per window (records of one window are
/// consecutive, as the window transform emits them). Records without a numeric value are
/// skipped and listed in the second element.
pub fn points(batch: &Batch, fields: &Fields) -> (Vec<Point>, Vec<Skipped>) {
    let schema = batch.schema();
    let payload: Vec<usize> = (0..schema.len())
        .filter(|&i| !matches!(schema.name(i), "window_start" | "window_end"))
        .collect();
    let key = match &fields.key {
        Some(name) => schema.index_of(name),
        None => payload.first().copied(),
    };
    let value = match &fields.value {
        Some(name) => schema.index_of(name),
        None => payload.last().copied(),
    };
    let end = schema.index_of("window_end");
    let (Some(key), Some(value)) = (key, value) else {
        let why = "the record has no key or value field";
        return (Vec::new(), (0..batch.len()).map(|i| (i, why)).collect());
    };
    let mut points: Vec<Point> = Vec::new();
    let mut skipped = Vec::new();
    let mut text = String::new();
    for (i, row) in batch.rows().enumerate() {
        let t = match end.map(|i| row.get(i)) {
            Some(FieldRef::Int(t)) => t,
            _ => row.event_time() + 1,
        };
        let Some(number) = row.get(value).as_number() else {
            skipped.push((i, "its value field is not a number"));
            continue;
        };
        text.clear();
        row.get(key).write_text(&mut text);
        if points.last().is_none_or(|p| p.t != t) {
            points.push(Point {
                t,
                values: BTreeMap::new(),
            });
        }
        let point = points.last_mut().expect("pushed above");
        *point.values.entry(text.clone()).or_insert(0.0) += number.as_f64();
    }
    (points, skipped)
}

/// A batch of window records `(window_start, gender, count)` as the window transform emits them
/// (for tests of the sinks that read window records).
#[cfg(test)]
pub(crate) fn window_batch(rows: &[(i64, &str, i64)]) -> Batch {
    use crate::record::{BatchBuilder, Schema};
    let schema = std::sync::Arc::new(Schema::new([
        "window_start",
        "window_end",
        "gender",
        "count",
    ]));
    let mut b = BatchBuilder::with_capacity(schema, rows.len());
    for &(start, g, n) in rows {
        b.push(FieldRef::Int(start));
        b.push(FieldRef::Int(start + 1000));
        b.push_str(g);
        b.push(FieldRef::Int(n));
        b.end_row(start + 999);
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two windows of gender counts.
    fn windows() -> Batch {
        window_batch(&[(0, "0", 1), (0, "1", 6), (1000, "0", 2), (1000, "2", 5)])
    }

    #[test]
    fn window_records_become_one_point_per_window() {
        let (points, skipped) = points(&windows(), &Fields::default());
        assert!(skipped.is_empty());
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].t, 1000);
        assert_eq!(points[0].values["1"], 6.0);
        assert_eq!(points[1].values["2"], 5.0);
    }

    #[test]
    fn named_fields_pick_key_and_value() {
        let fields = Fields {
            key: Some("gender".into()),
            value: Some("window_start".into()),
        };
        let (points, _) = points(&windows(), &fields);
        assert_eq!(points[1].values["0"], 1000.0);
    }
}
