//! Unit tests of `codec`.

use super::*;
use crate::format::window_points::window_batch;

fn decode_all(decoder: &mut Decoder, messages: &[(&[u8], Option<&[u8]>)]) -> Batch {
    let mut out = BatchBuilder::with_capacity(Arc::clone(decoder.schema()), 4);
    for (i, (value, key)) in messages.iter().enumerate() {
        let _ = decoder.decode(Some(value), *key, i as Millis, &mut out);
    }
    out.build()
}

#[test]
fn raw_values_become_one_field() {
    let mut d = Decoder::new(Codec::Raw, &["gender".into()], KeyCodec::None, &[]);
    let batch = decode_all(&mut d, &[(b"1", None), (b"0", None)]);
    assert_eq!(batch.schema().names().collect::<Vec<_>>(), ["gender"]);
    assert_eq!(batch.row(1).get(0), FieldRef::Str("0"));
    let mut out = BatchBuilder::with_capacity(Arc::clone(d.schema()), 1);
    let bad = d.decode(Some(&[0xff, 0xfe]), None, 0, &mut out);
    assert_eq!(bad, Err(CodecError::NotUtf8 { part: "value" }));
    assert_eq!(bad.unwrap_err().to_string(), "value is not UTF-8 text");
    assert!(out.is_empty());
}

#[test]
fn seed_arrays_become_one_row_per_group_and_back() {
    let mut d = Decoder::new(Codec::Seed, &[], KeyCodec::None, &[]);
    let batch = decode_all(&mut d, &[(br#"[{"0":1},{"2":3},{"1":6}]"#, None)]);
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.row(2).get(0), FieldRef::Str("1"));
    assert_eq!(batch.row(2).get(1), FieldRef::Int(6));

    let mut e = Encoder::new(Codec::Seed, &[], KeyCodec::None, &[]);
    let windows = window_batch(&[(0, "0", 1), (0, "2", 3), (0, "1", 6), (1000, "0", 2)]);
    let mut seen = Vec::new();
    e.encode(&windows, |m| {
        seen.push((String::from_utf8(m.value.to_vec()).unwrap(), m.time));
        Ok::<_, CodecError>(())
    })
    .unwrap();
    assert_eq!(
        seen,
        [
            (r#"[{"0":1},{"2":3},{"1":6}]"#.to_string(), 999),
            (r#"[{"0":2}]"#.to_string(), 1999)
        ]
    );
}

#[test]
fn json_round_trips_with_a_json_key() {
    let fields = ["gender".to_string(), "count".to_string()];
    let key_fields = ["window_start".to_string()];
    let mut e = Encoder::new(Codec::Json, &fields, KeyCodec::Json, &key_fields);
    let mut messages = Vec::new();
    e.encode(&window_batch(&[(0, "1", 6)]), |m| {
        messages.push((m.value.to_vec(), m.key.map(<[u8]>::to_vec)));
        Ok::<_, CodecError>(())
    })
    .unwrap();
    assert_eq!(messages[0].0, br#"{"gender":"1","count":6}"#);
    assert_eq!(
        messages[0].1.as_deref(),
        Some(&br#"{"window_start":0}"#[..])
    );

    let mut d = Decoder::new(Codec::Json, &fields, KeyCodec::Json, &key_fields);
    let (value, key) = &messages[0];
    let batch = decode_all(&mut d, &[(value, key.as_deref())]);
    assert_eq!(
        batch.schema().names().collect::<Vec<_>>(),
        ["gender", "count", "window_start"]
    );
    assert_eq!(batch.row(0).get(1), FieldRef::Int(6));
    assert_eq!(batch.row(0).get(2), FieldRef::Int(0));
}

#[test]
fn a_missing_field_is_named() {
    let mut e = Encoder::new(Codec::Raw, &["nope".into()], KeyCodec::None, &[]);
    let err = e
        .encode(&window_batch(&[(0, "1", 6)]), |_| Ok::<_, CodecError>(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("field `nope` is not in the input"), "{err}");
}
