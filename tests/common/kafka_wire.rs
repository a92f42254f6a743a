//! A Kafka client that speaks the wire protocol by hand, for tests that must see exactly what a
//! broker answers. A client library hides a broker's faults: it gives up by itself after a
//! failed login and never sends a request out of order. This one sends whatever the test asks,
//! on one connection, and reports what came back — an answer, or the connection closed.
//!
//! Only the request versions the tests need, all with Kafka's fixed-size (non-flexible) headers:
//! ApiVersions v0, SaslHandshake v1, SaslAuthenticate v0, Metadata v0, CreateTopics v0,
//! Produce v3 (one record batch, magic 2) and Fetch v4.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// What a broker did with a request.
#[derive(Debug)]
pub enum Answer {
    /// A response body (after the correlation id).
    Body(Vec<u8>),
    /// The connection was closed (end of stream, reset, or a write that could not go out).
    Closed,
}

impl Answer {
    /// The response body; panics with `what` if the connection was closed instead.
    pub fn body(self, what: &str) -> Vec<u8> {
        match self {
            Answer::Body(body) => body,
            Answer::Closed => panic!("{what}: the broker closed the connection"),
        }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self, Answer::Closed)
    }
}

/// One connection to a broker.
pub struct WireClient {
    stream: TcpStream,
    correlation_id: i32,
}

impl WireClient {
    pub fn connect(address: &str) -> WireClient {
        let stream = TcpStream::connect(address).expect("broker accepts a connection");
        // A broker that neither answers nor closes within this long is a failure of its own.
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        WireClient {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends one request and waits for its answer.
    pub fn request(&mut self, api_key: i16, api_version: i16, body: &[u8]) -> Answer {
        self.correlation_id += 1;
        let mut frame = Encoder::default();
        frame
            .i16(api_key)
            .i16(api_version)
            .i32(self.correlation_id)
            .nullable_string(Some("wire-test"));
        frame.0.extend_from_slice(body);
        let mut bytes = (frame.0.len() as i32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&frame.0);
        if self.stream.write_all(&bytes).is_err() {
            return Answer::Closed;
        }

        let mut size = [0u8; 4];
        match self.stream.read_exact(&mut size) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Answer::Closed,
            Err(e) => panic!("api {api_key}: neither an answer nor a close: {e}"),
        }
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        match self.stream.read_exact(&mut response) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Answer::Closed,
            Err(e) => panic!("api {api_key}: a cut answer: {e}"),
        }
        let mut decoder = Decoder::new(&response);
        assert_eq!(
            decoder.i32(),
            self.correlation_id,
            "api {api_key}: correlation id"
        );
        Answer::Body(response[4..].to_vec())
    }

    pub fn api_versions(&mut self) -> Answer {
        self.request(18, 0, &[])
    }

    /// SaslHandshake v1: the error code, or `None` if the connection was closed.
    pub fn sasl_handshake(&mut self, mechanism: &str) -> Option<i16> {
        let mut body = Encoder::default();
        body.string(mechanism);
        match self.request(17, 1, &body.0) {
            Answer::Body(body) => Some(Decoder::new(&body).i16()),
            Answer::Closed => None,
        }
    }

    /// SaslAuthenticate v0: (error code, error message, SASL bytes), or `None` if closed.
    pub fn sasl_authenticate(
        &mut self,
        auth_bytes: &[u8],
    ) -> Option<(i16, Option<String>, Vec<u8>)> {
        let mut body = Encoder::default();
        body.bytes(auth_bytes);
        match self.request(36, 0, &body.0) {
            Answer::Body(body) => {
                let mut d = Decoder::new(&body);
                Some((d.i16(), d.nullable_string(), d.bytes()))
            }
            Answer::Closed => None,
        }
    }

    /// Metadata v0 for all topics: the topic names, or `None` if closed.
    pub fn topic_names(&mut self) -> Option<Vec<String>> {
        let mut body = Encoder::default();
        body.i32(0); // an empty list: every topic
        let body = match self.request(3, 0, &body.0) {
            Answer::Body(body) => body,
            Answer::Closed => return None,
        };
        let mut d = Decoder::new(&body);
        for _ in 0..d.i32() {
            d.i32(); // node id
            d.nullable_string(); // host
            d.i32(); // port
        }
        let mut names = Vec::new();
        for _ in 0..d.i32() {
            d.i16(); // error code
            names.push(d.nullable_string().unwrap_or_default());
            for _ in 0..d.i32() {
                d.i16(); // error code
                d.i32(); // partition
                d.i32(); // leader
                let replicas = d.i32();
                (0..replicas).for_each(|_| _ = d.i32());
                let isr = d.i32();
                (0..isr).for_each(|_| _ = d.i32());
            }
        }
        Some(names)
    }

    /// CreateTopics v0 of one topic with one partition: its error code, or `None` if closed.
    pub fn create_topic(&mut self, name: &str) -> Option<i16> {
        let mut body = Encoder::default();
        body.i32(1)
            .string(name)
            .i32(1)
            .i16(1)
            .i32(0)
            .i32(0)
            .i32(10_000);
        match self.request(19, 0, &body.0) {
            Answer::Body(body) => {
                let mut d = Decoder::new(&body);
                assert_eq!(d.i32(), 1, "one topic in the answer");
                d.nullable_string();
                Some(d.i16())
            }
            Answer::Closed => None,
        }
    }

    /// Produce v3 (acks = all) of `values` to partition 0 of `topic` in one batch: the
    /// partition's error code, or `None` if closed.
    pub fn produce(&mut self, topic: &str, values: &[&[u8]]) -> Option<i16> {
        let batch = record_batch(values);
        let mut body = Encoder::default();
        body.nullable_string(None).i16(-1).i32(10_000);
        body.i32(1).string(topic).i32(1).i32(0).bytes(&batch);
        match self.request(0, 3, &body.0) {
            Answer::Body(body) => {
                let mut d = Decoder::new(&body);
                assert_eq!(d.i32(), 1, "one topic in the answer");
                d.nullable_string();
                assert_eq!(d.i32(), 1, "one partition in the answer");
                d.i32();
                Some(d.i16())
            }
            Answer::Closed => None,
        }
    }

    /// Fetch v4 (read_uncommitted) of partition 0 of `topic` from offset 0: (error code, number
    /// of records in the answer), or `None` if closed.
    pub fn fetch(&mut self, topic: &str) -> Option<(i16, usize)> {
        self.fetch_waiting(topic, 0, 500)
    }

    /// Fetch v4 of partition 0 of `topic` from `offset`, waiting at the broker up to
    /// `max_wait_ms` for at least one byte: the error code and how many records came.
    pub fn fetch_waiting(
        &mut self,
        topic: &str,
        offset: i64,
        max_wait_ms: i32,
    ) -> Option<(i16, usize)> {
        self.fetch_partition(topic, 0, offset, max_wait_ms)
    }

    /// Fetch v4 naming its topic with a null string (neither a name nor, before v13, an id):
    /// the answer, or `Answer::Closed`.
    pub fn fetch_null_topic(&mut self) -> Answer {
        let mut body = Encoder::default();
        body.i32(-1).i32(0).i32(1).i32(1 << 20).i8(0);
        body.i32(1)
            .nullable_string(None)
            .i32(1)
            .i32(0)
            .i64(0)
            .i32(1 << 20);
        self.request(1, 4, &body.0)
    }

    /// Fetch v4 of `partition` of `topic` from `offset`, waiting at the broker up to
    /// `max_wait_ms` for at least one byte: the error code and how many records came.
    pub fn fetch_partition(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> Option<(i16, usize)> {
        let mut body = Encoder::default();
        body.i32(-1).i32(max_wait_ms).i32(1).i32(1 << 20).i8(0);
        body.i32(1)
            .string(topic)
            .i32(1)
            .i32(partition)
            .i64(offset)
            .i32(1 << 20);
        let body = match self.request(1, 4, &body.0) {
            Answer::Body(body) => body,
            Answer::Closed => return None,
        };
        let mut d = Decoder::new(&body);
        d.i32(); // throttle
        assert_eq!(d.i32(), 1, "one topic in the answer");
        d.nullable_string();
        assert_eq!(d.i32(), 1, "one partition in the answer");
        d.i32(); // partition
        let error_code = d.i16();
        d.i64(); // high watermark
        d.i64(); // last stable offset
        let aborted = d.i32();
        for _ in 0..aborted.max(0) {
            d.i64();
            d.i64();
        }
        Some((error_code, count_records(&d.bytes())))
    }
}

fn is_closed(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
    )
}

/// A record batch (magic 2, no compression, no producer id) holding `values` without keys.
fn record_batch(values: &[&[u8]]) -> Vec<u8> {
    let mut records = Encoder::default();
    for (delta, value) in values.iter().enumerate() {
        let mut record = Encoder::default();
        record.i8(0).varint(0).varint(delta as i64).varint(-1);
        record.varint(value.len() as i64);
        record.0.extend_from_slice(value);
        record.varint(0); // headers
        records.varint(record.0.len() as i64);
        records.0.extend_from_slice(&record.0);
    }
    // From the attributes on: what the CRC covers.
    let mut tail = Encoder::default();
    tail.i16(0)
        .i32(values.len() as i32 - 1)
        .i64(0)
        .i64(0)
        .i64(-1)
        .i16(-1)
        .i32(-1)
        .i32(values.len() as i32);
    tail.0.extend_from_slice(&records.0);

    let mut batch = Encoder::default();
    batch.i64(0);
    batch.i32((4 + 1 + 4 + tail.0.len()) as i32); // leader epoch, magic, crc, the rest
    batch.i32(-1).i8(2).i32(crc32c(&tail.0) as i32);
    batch.0.extend_from_slice(&tail.0);
    batch.0
}

/// The number of records in a fetch answer's record batches (the count field of each batch).
fn count_records(mut batches: &[u8]) -> usize {
    let mut total = 0;
    while batches.len() >= 61 {
        let length = i32::from_be_bytes(batches[8..12].try_into().unwrap()) as usize;
        total += i32::from_be_bytes(batches[57..61].try_into().unwrap()) as usize;
        batches = &batches[(12 + length).min(batches.len())..];
    }
    total
}

/// CRC-32C (Castagnoli), bit by bit: record batches carry it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Big-endian Kafka primitives into a buffer.
#[derive(Default)]
struct Encoder(Vec<u8>);

impl Encoder {
    fn i8(&mut self, v: i8) -> &mut Self {
        self.0.push(v as u8);
        self
    }
    fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(&mut self, v: i32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn string(&mut self, v: &str) -> &mut Self {
        self.i16(v.len() as i16);
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    fn nullable_string(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.string(v),
            None => self.i16(-1),
        }
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.0.extend_from_slice(v);
        self
    }
    /// A zigzag varint, as record fields are written.
    fn varint(&mut self, v: i64) -> &mut Self {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            self.0.push((z as u8) | 0x80);
            z >>= 7;
        }
        self.0.push(z as u8);
        self
    }
}

/// Big-endian Kafka primitives out of an answer; panics on a short answer.
struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(self.bytes.len() >= n, "answer shorter than its fields");
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        head
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn nullable_string(&mut self) -> Option<String> {
        let length = self.i16();
        (length >= 0).then(|| String::from_utf8_lossy(self.take(length as usize)).into_owned())
    }
    fn bytes(&mut self) -> Vec<u8> {
        let length = self.i32();
        if length < 0 {
            return Vec::new();
        }
        self.take(length as usize).to_vec()
    }
}
