//! The Kafka codecs, as a source decodes messages: raw, json and seed values with none, raw or
//! json keys; the first byte picks them, the next splits the rest into key and value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use weir::kafka::codec::{Codec, Decoder, KeyCodec};
use weir::record::{BatchBuilder, Schema};

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let Some((&split, rest)) = rest.split_first() else {
        return;
    };
    let (codec, fields): (Codec, Vec<String>) = match knobs % 3 {
        0 => (Codec::Raw, vec!["gender".into()]),
        1 => (Codec::Json, vec!["gender".into(), "count".into()]),
        _ => (Codec::Seed, Vec::new()),
    };
    let (key_codec, key_fields): (KeyCodec, Vec<String>) = match (knobs / 3) % 3 {
        0 => (KeyCodec::None, Vec::new()),
        1 => (KeyCodec::Raw, Vec::new()),
        _ => (KeyCodec::Json, vec!["user".into()]),
    };
    let at = usize::from(split).min(rest.len());
    let (key, value) = rest.split_at(at);
    let mut decoder = Decoder::new(codec, &fields, key_codec, &key_fields);
    if knobs & 0x40 != 0 {
        decoder = decoder.with_origin(["_partition", "_tenure", "_partitions"]);
        decoder.set_origin([1, 2, 3]);
    }
    let schema: Arc<Schema> = Arc::clone(decoder.schema());
    let mut out = BatchBuilder::with_capacity(schema, 4);
    let key = (knobs & 0x80 == 0).then_some(key);
    let _ = decoder.decode(Some(value), key, 0, &mut out);
    let batch = out.build();
    for row in batch.rows() {
        for i in 0..batch.schema().len() {
            let _ = row.get(i);
        }
    }
});
