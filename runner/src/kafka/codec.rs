//! Message ↔ record: how a Kafka message's value and key become record fields (source) and how
//! records become messages (sink). Values: `raw` (the text of one field), `json` (an object, one
//! member per field), `seed` (the tutorial's `[{"0":1},{"2":3}]`, one array per window). Keys:
//! `none`, `raw`, `json`.

use crate::format::lines::{Encoder as LineEncoder, Format};
use crate::record::json::{write_json_str, write_json_value};
use crate::record::{Batch, BatchBuilder, FieldRef, Millis, Row, Schema};
use crate::stage::{OptionIssue, StageKind};
use serde::Deserialize;
use std::sync::Arc;

/// Why a message could not become records, or records a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The value or key is not UTF-8.
    #[error("{part} is not UTF-8 text")]
    NotUtf8 {
        /// `value` or `key`.
        part: &'static str,
    },
    /// The value or key is missing where a JSON object was expected.
    #[error("{part} is empty; expected a JSON object")]
    EmptyObject {
        /// `value` or `key`.
        part: &'static str,
    },
    /// The value or key is not a JSON object.
    #[error("{part} is not a JSON object: {reason}")]
    NotObject {
        /// `value` or `key`.
        part: &'static str,
        /// What the JSON parser said.
        reason: String,
    },
    /// A `seed` value is missing.
    #[error("value is empty; expected [{{\"key\": count}}, ...]")]
    EmptySeed,
    /// A `seed` value is not an array of one-entry objects.
    #[error("value is not a [{{\"key\": count}}, ...] array: {reason}")]
    NotSeed {
        /// What the JSON parser said.
        reason: String,
    },
    /// A `raw` sink without `fields` has several input fields and none is called `value`.
    #[error(
        "field `value` is not in the input (it has: {available}); with several fields, name the one to write: fields = [\"...\"]"
    )]
    NoValueField {
        /// The input's fields, comma-separated.
        available: String,
    },
    /// A field the sink writes is not in its input.
    #[error("field `{field}` is not in the input (it has: {available})")]
    MissingField {
        /// The field named in the options.
        field: String,
        /// The input's fields, comma-separated.
        available: String,
    },
}

/// How a message value maps to fields.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// The value is the text of one field.
    #[default]
    Raw,
    /// The value is a JSON object with one member per field.
    Json,
    /// The value is a JSON array of one-member objects `{"key": count}`, one per group of a
    /// window (the tutorial's Spark output).
    Seed,
}

/// How a message key maps to fields.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyCodec {
    /// No key is written; keys read are ignored.
    #[default]
    None,
    /// The key is the text of one field.
    Raw,
    /// The key is a JSON object with one member per field.
    Json,
}

impl Codec {
    /// The fields a source reads from the value: `fields`, or without any, `value` for `raw`
    /// and `key`, `count` for `seed`.
    pub fn read_fields_or_default(self, fields: &[String]) -> Vec<String> {
        match (self, fields.is_empty()) {
            (Codec::Raw, true) => vec!["value".to_string()],
            (Codec::Seed, true) => vec!["key".to_string(), "count".to_string()],
            _ => fields.to_vec(),
        }
    }

    /// Checks `fields` (at option `key`) against this codec for `role`.
    pub fn check(self, role: StageKind, fields: &[String], key: &str) -> Vec<OptionIssue> {
        match (self, role) {
            (Codec::Raw, _) if fields.len() > 1 => vec![
                OptionIssue::new(key, "codec \"raw\" holds exactly one field")
                    .hint("use codec = \"json\" for several fields"),
            ],
            (Codec::Json, StageKind::Source) if fields.is_empty() => vec![
                OptionIssue::new(key, "codec \"json\" needs the fields to read")
                    .hint("e.g. fields = [\"user_id\", \"gender\"]"),
            ],
            (Codec::Seed, StageKind::Source) if !fields.is_empty() && fields.len() != 2 => {
                vec![
                    OptionIssue::new(key, "codec \"seed\" reads two fields: key and count")
                        .hint("e.g. fields = [\"gender\", \"count\"]"),
                ]
            }
            (Codec::Seed, StageKind::Sink) if !fields.is_empty() => vec![
                OptionIssue::new(key, "codec \"seed\" writes the window's own fields")
                    .hint("remove `fields`; the last field is the count, the others the key"),
            ],
            _ => Vec::new(),
        }
    }
}

impl KeyCodec {
    /// The key fields to use: `fields`, or for `raw` without any, the one field `key`; none
    /// when the codec writes no key.
    pub fn fields_or_default(self, fields: &[String]) -> Vec<String> {
        match (self, fields.is_empty()) {
            (KeyCodec::None, _) => Vec::new(),
            (KeyCodec::Raw, true) => vec!["key".to_string()],
            _ => fields.to_vec(),
        }
    }

    /// Checks `fields` (at option `key`) against this key codec.
    pub fn check(self, fields: &[String], key: &str) -> Vec<OptionIssue> {
        match self {
            KeyCodec::None if !fields.is_empty() => vec![
                OptionIssue::new(key, "key_fields is set but key_codec is \"none\"")
                    .hint("set key_codec = \"raw\" or \"json\""),
            ],
            KeyCodec::Raw if fields.len() > 1 => vec![
                OptionIssue::new(key, "key_codec \"raw\" holds exactly one field")
                    .hint("use key_codec = \"json\" for several fields"),
            ],
            KeyCodec::Json if fields.is_empty() => vec![
                OptionIssue::new(key, "key_codec \"json\" needs the fields it holds")
                    .hint("e.g. key_fields = [\"user_id\"]"),
            ],
            _ => Vec::new(),
        }
    }
}

/// One decoded field, held until the whole message has decoded.
#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Scalar {
    fn from_json(value: &serde_json::Value) -> Scalar {
        match value {
            serde_json::Value::Null => Scalar::Null,
            serde_json::Value::Bool(b) => Scalar::Bool(*b),
            serde_json::Value::Number(n) => n.as_i64().map_or_else(
                || Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                Scalar::Int,
            ),
            serde_json::Value::String(s) => Scalar::Str(s.clone()),
            other => Scalar::Str(other.to_string()),
        }
    }

    fn push(&self, out: &mut BatchBuilder) {
        match self {
            Scalar::Null => out.push(FieldRef::Null),
            Scalar::Bool(b) => out.push(FieldRef::Bool(*b)),
            Scalar::Int(i) => out.push(FieldRef::Int(*i)),
            Scalar::Float(f) => out.push(FieldRef::Float(*f)),
            Scalar::Str(s) => out.push_str(s),
        }
    }
}

/// Turns messages into rows (the source side).
#[derive(Debug)]
pub struct Decoder {
    codec: Codec,
    value_fields: Vec<String>,
    key_codec: KeyCodec,
    key_fields: Vec<String>,
    schema: Arc<Schema>,
    key_scratch: Vec<Scalar>,
    value_scratch: Vec<Vec<Scalar>>,
    /// With origin fields: their values for the next message.
    origin: Option<[i64; 3]>,
}

impl Decoder {
    /// Records also get the fields `names` (see `kafka::options::ORIGIN_FIELDS`), set per message
    /// with [`set_origin`](Self::set_origin).
    pub fn with_origin(mut self, names: [&str; 3]) -> Self {
        let fields = self
            .schema
            .names()
            .map(str::to_string)
            .chain(names.iter().map(|n| n.to_string()));
        self.schema = Arc::new(Schema::new(fields));
        self.origin = Some([0; 3]);
        self
    }

    /// The origin values of the messages decoded next (ignored without origin fields).
    pub fn set_origin(&mut self, values: [i64; 3]) {
        if let Some(origin) = &mut self.origin {
            *origin = values;
        }
    }

    fn push_origin(&self, out: &mut BatchBuilder) {
        if let Some(values) = self.origin {
            for value in values {
                out.push(FieldRef::Int(value));
            }
        }
    }

    /// A decoder for these (checked) options. Records have the value fields, then the key
    /// fields.
    pub fn new(
        codec: Codec,
        fields: &[String],
        key_codec: KeyCodec,
        key_fields: &[String],
    ) -> Self {
        let value_fields = codec.read_fields_or_default(fields);
        let key_fields = key_codec.fields_or_default(key_fields);
        let schema = Arc::new(Schema::new(value_fields.iter().chain(&key_fields).cloned()));
        Decoder {
            codec,
            value_fields,
            key_codec,
            key_fields,
            schema,
            key_scratch: Vec::new(),
            value_scratch: Vec::new(),
            origin: None,
        }
    }

    /// The schema of the records produced.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Appends the rows of one message (one, or one per group for `seed`) stamped `time`.
    /// On a message that does not decode, appends nothing and says why.
    pub fn decode(
        &mut self,
        value: Option<&[u8]>,
        key: Option<&[u8]>,
        time: Millis,
        out: &mut BatchBuilder,
    ) -> Result<usize, CodecError> {
        self.decode_key(key)?;
        if self.codec == Codec::Raw && self.key_codec == KeyCodec::None {
            // The common case, without intermediate values.
            match value {
                None => out.push(FieldRef::Null),
                Some(bytes) => out.push_str(utf8(bytes, "value")?),
            }
            self.push_origin(out);
            out.end_row(time);
            return Ok(1);
        }
        self.value_scratch.clear();
        match self.codec {
            Codec::Raw => self.value_scratch.push(vec![match value {
                None => Scalar::Null,
                Some(bytes) => Scalar::Str(utf8(bytes, "value")?.to_string()),
            }]),
            Codec::Json => {
                let object = parse_object(value, "value")?;
                let row = self
                    .value_fields
                    .iter()
                    .map(|f| object.get(f).map_or(Scalar::Null, Scalar::from_json))
                    .collect();
                self.value_scratch.push(row);
            }
            Codec::Seed => {
                let bytes = value.ok_or(CodecError::EmptySeed)?;
                let groups: Vec<serde_json::Map<String, serde_json::Value>> =
                    serde_json::from_slice(bytes).map_err(|e| CodecError::NotSeed {
                        reason: e.to_string(),
                    })?;
                for group in &groups {
                    for (k, v) in group {
                        self.value_scratch
                            .push(vec![Scalar::Str(k.clone()), Scalar::from_json(v)]);
                    }
                }
            }
        }
        for row in &self.value_scratch {
            for value in row {
                value.push(out);
            }
            for key in &self.key_scratch {
                key.push(out);
            }
            self.push_origin(out);
            out.end_row(time);
        }
        Ok(self.value_scratch.len())
    }

    fn decode_key(&mut self, key: Option<&[u8]>) -> Result<(), CodecError> {
        self.key_scratch.clear();
        match self.key_codec {
            KeyCodec::None => {}
            KeyCodec::Raw => self.key_scratch.push(match key {
                None => Scalar::Null,
                Some(bytes) => Scalar::Str(utf8(bytes, "key")?.to_string()),
            }),
            KeyCodec::Json => {
                let object = parse_object(key, "key")?;
                self.key_scratch.extend(
                    self.key_fields
                        .iter()
                        .map(|f| object.get(f).map_or(Scalar::Null, Scalar::from_json)),
                );
            }
        }
        Ok(())
    }
}

fn utf8<'a>(bytes: &'a [u8], part: &'static str) -> Result<&'a str, CodecError> {
    simdutf8::basic::from_utf8(bytes).map_err(|_| CodecError::NotUtf8 { part })
}

fn parse_object(
    bytes: Option<&[u8]>,
    part: &'static str,
) -> Result<serde_json::Map<String, serde_json::Value>, CodecError> {
    let bytes = bytes.ok_or(CodecError::EmptyObject { part })?;
    serde_json::from_slice(bytes).map_err(|e| CodecError::NotObject {
        part,
        reason: e.to_string(),
    })
}

/// Turns records into messages (the sink side).
#[derive(Debug)]
pub struct Encoder {
    codec: Codec,
    fields: Vec<String>,
    key_codec: KeyCodec,
    key_fields: Vec<String>,
    lines: LineEncoder,
    value: Vec<u8>,
    key: Vec<u8>,
}

/// One encoded message, borrowed from the encoder.
pub struct Message<'a> {
    /// The key, if the key codec writes one.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: &'a [u8],
    /// Its timestamp: the event time of the (first) record it holds.
    pub time: Millis,
}

impl Encoder {
    /// An encoder for these (checked) options.
    pub fn new(
        codec: Codec,
        fields: &[String],
        key_codec: KeyCodec,
        key_fields: &[String],
    ) -> Self {
        let key_fields = key_codec.fields_or_default(key_fields);
        Encoder {
            codec,
            fields: fields.to_vec(),
            key_codec,
            key_fields,
            lines: LineEncoder::new(Format::Seed),
            value: Vec::new(),
            key: Vec::new(),
        }
    }

    /// Encodes `batch`, calling `emit` once per message; fails when a field to write is not in
    /// the batch's schema, or with the first error `emit` returns.
    pub fn encode<E: From<CodecError>>(
        &mut self,
        batch: &Batch,
        mut emit: impl FnMut(Message<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let schema = batch.schema();
        let value_fields = self.value_field_indexes(schema)?;
        let key_fields = resolve(schema, &self.key_fields)?;
        if self.codec == Codec::Seed {
            return self.encode_windows(batch, &key_fields, emit);
        }
        for row in batch.rows() {
            self.value.clear();
            match self.codec {
                Codec::Raw => write_text(row.get(value_fields[0]), &mut self.value),
                _ => write_object(&row, &value_fields, &mut self.value),
            }
            let has_key = encode_key(self.key_codec, &row, &key_fields, &mut self.key);
            emit(Message {
                key: has_key.then_some(self.key.as_slice()),
                value: &self.value,
                time: row.event_time(),
            })?;
        }
        Ok(())
    }

    fn value_field_indexes(&self, schema: &Schema) -> Result<Vec<usize>, CodecError> {
        match self.codec {
            Codec::Raw if self.fields.is_empty() => match schema.len() {
                1 => Ok(vec![0]),
                _ => schema.index_of("value").map(|i| vec![i]).ok_or_else(|| {
                    CodecError::NoValueField {
                        available: schema.names().collect::<Vec<_>>().join(", "),
                    }
                }),
            },
            Codec::Json if self.fields.is_empty() => Ok((0..schema.len()).collect()),
            Codec::Seed => Ok(Vec::new()),
            _ => resolve(schema, &self.fields),
        }
    }

    /// `seed`: one message per window (rows with the same `window_start`, consecutive as the
    /// window stage emits them).
    fn encode_windows<E: From<CodecError>>(
        &mut self,
        batch: &Batch,
        key_fields: &[usize],
        mut emit: impl FnMut(Message<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = batch.schema().index_of("window_start");
        let mut first = 0;
        while first < batch.len() {
            let window = start.map(|i| batch.row(first).get(i));
            let mut end = first + 1;
            while end < batch.len() && start.map(|i| batch.row(end).get(i)) == window {
                end += 1;
            }
            let rows: Vec<u32> = (first as u32..end as u32).collect();
            self.value.clear();
            self.lines.encode(&batch.select(&rows), &mut self.value);
            if self.value.last() == Some(&b'\n') {
                self.value.pop();
            }
            let row = batch.row(first);
            let has_key = encode_key(self.key_codec, &row, key_fields, &mut self.key);
            emit(Message {
                key: has_key.then_some(self.key.as_slice()),
                value: &self.value,
                time: row.event_time(),
            })?;
            first = end;
        }
        Ok(())
    }
}

fn resolve(schema: &Schema, names: &[String]) -> Result<Vec<usize>, CodecError> {
    names
        .iter()
        .map(|name| {
            schema
                .index_of(name)
                .ok_or_else(|| CodecError::MissingField {
                    field: name.clone(),
                    available: schema.names().collect::<Vec<_>>().join(", "),
                })
        })
        .collect()
}

/// Writes the key of `row` into `out`; false when the codec writes no key.
fn encode_key(codec: KeyCodec, row: &Row<'_>, fields: &[usize], out: &mut Vec<u8>) -> bool {
    out.clear();
    match codec {
        KeyCodec::None => return false,
        KeyCodec::Raw => write_text(row.get(fields[0]), out),
        KeyCodec::Json => write_object(row, fields, out),
    }
    true
}

/// Writes a field as plain text (strings unquoted).
fn write_text(value: FieldRef<'_>, out: &mut Vec<u8>) {
    match value {
        FieldRef::Str(s) => out.extend_from_slice(s.as_bytes()),
        other => {
            let mut text = String::new();
            other.write_text(&mut text);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

fn write_object(row: &Row<'_>, fields: &[usize], out: &mut Vec<u8>) {
    out.push(b'{');
    for (n, &i) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_json_str(row.schema().name(i), out);
        out.push(b':');
        write_json_value(row.get(i), out);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests;
