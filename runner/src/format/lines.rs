//! Output formats shared by the line-oriented sinks: `json` (one object per record) and `seed`
//! (one JSON array per window, as the tutorial's Spark job wrote to Kafka).

use crate::record::json::{write_json_str, write_json_value};
use crate::record::{Batch, FieldRef, JsonWriter};
use serde::Deserialize;

/// How records become lines.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"window_start":...,"gender":"0","count":4}` per record.
    #[default]
    Json,
    /// `[{"0":1},{"2":3},{"1":6}]` per window: in each record, the last field (other than
    /// `window_start`/`window_end`) is the value and the fields before it, joined by `,`, the key.
    Seed,
}

/// Turns batches into bytes in one format.
#[derive(Debug, Default)]
pub struct Encoder {
    format: Format,
    json: JsonWriter,
    key: String,
}

impl Encoder {
    /// An encoder for `format`.
    pub fn new(format: Format) -> Self {
        Encoder {
            format,
            ..Encoder::default()
        }
    }

    /// Appends `batch` to `out` as complete lines.
    pub fn encode(&mut self, batch: &Batch, out: &mut Vec<u8>) {
        match self.format {
            Format::Json => self.json.write_batch(batch, out),
            Format::Seed => self.encode_seed(batch, out),
        }
    }

    fn encode_seed(&mut self, batch: &Batch, out: &mut Vec<u8>) {
        let schema = batch.schema();
        let start = schema.index_of("window_start");
        let end = schema.index_of("window_end");
        let payload: Vec<usize> = (0..schema.len())
            .filter(|&i| Some(i) != start && Some(i) != end)
            .collect();
        let Some((&value, key_fields)) = payload.split_last() else {
            return;
        };
        let mut open = false;
        let mut current: Option<FieldRef<'_>> = None;
        for row in batch.rows() {
            let window = start.map(|i| row.get(i));
            if !open {
                out.push(b'[');
            } else if window != current {
                out.extend_from_slice(b"]\n[");
            } else {
                out.push(b',');
            }
            open = true;
            current = window;
            self.key.clear();
            for (n, &i) in key_fields.iter().enumerate() {
                if n > 0 {
                    self.key.push(',');
                }
                row.get(i).write_text(&mut self.key);
            }
            out.push(b'{');
            write_json_str(&self.key, out);
            out.push(b':');
            write_json_value(row.get(value), out);
            out.push(b'}');
        }
        if open {
            out.extend_from_slice(b"]\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::window_points::window_batch;

    fn windows() -> Batch {
        window_batch(&[(0, "0", 1), (0, "2", 3), (0, "1", 6), (1000, "0", 2)])
    }

    #[test]
    fn seed_writes_one_array_per_window() {
        let mut out = Vec::new();
        Encoder::new(Format::Seed).encode(&windows(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[{\"0\":1},{\"2\":3},{\"1\":6}]\n[{\"0\":2}]\n"
        );
    }

    #[test]
    fn json_writes_one_object_per_record() {
        let mut out = Vec::new();
        Encoder::new(Format::Json).encode(&windows(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"window_start":0,"window_end":1000,"gender":"0","count":1}"#
        );
        assert_eq!(text.lines().count(), 4);
    }
}
