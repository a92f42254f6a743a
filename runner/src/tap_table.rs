//! `weir tap --format table`: tapped records as aligned columns for a terminal. Columns are the
//! fields of a stage's first record, each as wide as the wider of its name and that record's
//! value (at least 8); a header is printed again whenever the stage or its fields change, as
//! when several stages are tapped at once (then the first column names the stage).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Smallest column width.
const MIN_WIDTH: usize = 8;

/// Lays tapped records out as a table, remembering the last header printed.
#[derive(Default)]
pub struct TapTable {
    /// The stage and fields of the last header, and the columns' widths.
    last: Option<(String, Vec<String>, Vec<usize>)>,
    /// Whether to put the stage in a first column (several stages tapped).
    with_stage: bool,
}

impl TapTable {
    /// A table; `with_stage` adds a STAGE column.
    pub fn new(with_stage: bool) -> TapTable {
        TapTable {
            last: None,
            with_stage,
        }
    }

    /// The lines for one record (a JSON line) of `stage`: a header first when the stage or the
    /// fields differ from the last record's. A line that is not a JSON object comes back as it
    /// is.
    pub fn lines(&mut self, stage: &str, json: &str) -> String {
        let Ok(Fields(record)) = serde_json::from_str::<Fields>(json) else {
            return format!("{}\n", json.trim_end());
        };
        let names: Vec<String> = record.iter().map(|(name, _)| name.clone()).collect();
        let mut text = String::new();
        let same = self
            .last
            .as_ref()
            .is_some_and(|(s, n, _)| s == stage && *n == names);
        if !same {
            let widths = names
                .iter()
                .zip(&record)
                .map(|(name, (_, value))| name.len().max(cell(value).len()).max(MIN_WIDTH))
                .collect::<Vec<_>>();
            let header: Vec<String> = names.iter().map(|n| n.to_uppercase()).collect();
            if self.last.is_some() {
                text.push('\n');
            }
            text += &self.row(stage, &header, &widths, true);
            self.last = Some((stage.to_string(), names, widths));
        }
        let (_, _, widths) = self.last.as_ref().expect("set above");
        let cells: Vec<String> = record.iter().map(|(_, value)| cell(value)).collect();
        text += &self.row(stage, &cells, widths, false);
        text
    }

    /// One line: the cells padded to their widths (the last one not padded).
    fn row(&self, stage: &str, cells: &[String], widths: &[usize], header: bool) -> String {
        let mut line = String::new();
        if self.with_stage {
            let label = if header { "STAGE" } else { stage };
            line += &format!("{label:<16} ");
        }
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                line += cell;
            } else {
                line += &format!("{cell:<width$} ");
            }
        }
        line.truncate(line.trim_end().len());
        line.push('\n');
        line
    }
}

/// A field's value as a cell: text without quotes, anything else as JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON object's fields in the order the record has them (a `serde_json::Map` sorts them).
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry::<String, Value>()? {
                    fields.push(field);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_line_up_under_a_header_that_returns_when_the_fields_change() {
        let mut table = TapTable::new(false);
        let mut text = String::new();
        for line in [
            r#"{"window_start":1700000000000,"gender":"0","count":3}"#,
            r#"{"window_start":1700000001000,"gender":"1","count":12}"#,
            r#"{"user_id":"328862","gender":"1"}"#,
            "not json",
        ] {
            text += &table.lines("per_second", line);
        }
        assert_eq!(
            text,
            "WINDOW_START  GENDER   COUNT\n\
             1700000000000 0        3\n\
             1700000001000 1        12\n\
             \n\
             USER_ID  GENDER\n\
             328862   1\n\
             not json\n"
        );
    }

    #[test]
    fn several_stages_get_a_stage_column_and_a_header_each_time_they_alternate() {
        let mut table = TapTable::new(true);
        let text = [("log", r#"{"gender":"1"}"#), ("log", r#"{"gender":"2"}"#)]
            .iter()
            .chain(&[("per_second", r#"{"gender":"1","count":4}"#)])
            .map(|(stage, line)| table.lines(stage, line))
            .collect::<String>();
        assert_eq!(
            text,
            "STAGE            GENDER\n\
             log              1\n\
             log              2\n\
             \n\
             STAGE            GENDER   COUNT\n\
             per_second       1        4\n"
        );
    }
}
