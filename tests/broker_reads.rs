//! How the embedded broker's storage engines answer reads, on the real protocol: where a
//! `sqlite://` database goes, records back whole from the file, and reads that resume inside a
//! stored batch — also while the partition is being written (the fetch fault behind issue 37).

mod common;

use common::kafka::broker;
use common::{free_port, text, weir};
use std::time::{Duration, Instant};

/// One record as the test sent it.
#[derive(Debug, PartialEq)]
struct Sent {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

/// `sqlite:///abs/path` is that absolute path (the broker used to put it under its working
/// directory, as `./abs/path`), and a directory that does not exist is named before anything
/// starts.
#[test]
fn an_absolute_sqlite_path_is_where_the_database_goes() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("abs.db");
    let storage = format!("sqlite://{}", file.display());
    assert!(storage.starts_with("sqlite:///"), "{storage}");
    let (_broker, bootstrap) = broker(dir.path(), &storage);
    common::kafka::create_topic(&bootstrap, "kept");
    assert!(file.is_file(), "no database at {}", file.display());
    let misplaced = dir.path().join(file.strip_prefix("/").unwrap());
    assert!(
        !misplaced.exists(),
        "the database went to {}",
        misplaced.display()
    );

    let out = weir()
        .args(["broker", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--storage", "sqlite:///no/such/dir/x.db"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the directory /no/such/dir does not exist"),
        "{stderr}"
    );
}

/// Random records (a few larger than a whole fetch, some keyed, some with headers) produced in
/// random batches to a `sqlite://` broker, which is then restarted so every read comes from the
/// file: a consumer with small fetches gets each record back exactly as sent, in order. Guards the
/// patched `sqlite://` fetch (records read in bounded slices, headers in one query per fetch, a
/// record larger than the fetch size still delivered).
#[test]
fn records_come_back_whole_from_sqlite_storage() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};

    let (seed, mut random) = common::kafka::seeded();
    let dir = tempfile::tempdir().unwrap();
    let storage = "sqlite://records.db";
    let big = 600 * 1024;
    let sent: Vec<Sent> = (0..3000)
        .map(|i| Sent {
            key: (random(3) == 0).then(|| format!("key-{i}").into_bytes()),
            value: {
                let len = match random(500) {
                    0 => big + random(1000) as usize,
                    1..=20 => random(20_000) as usize,
                    _ => random(12) as usize,
                };
                (0..len).map(|j| (i + j) as u8).collect()
            },
            headers: (0..random(4))
                .map(|h| (format!("h{h}"), format!("{i}/{h}").into_bytes()))
                .collect(),
        })
        .collect();
    {
        let (_broker, address) = common::kafka::broker(dir.path(), storage);
        common::kafka::create_topic(&address, "stored");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "2000000")
            .create()
            .unwrap();
        for (i, record) in sent.iter().enumerate() {
            let mut headers = OwnedHeaders::new();
            for (key, value) in &record.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value),
                });
            }
            let mut out = BaseRecord::<[u8], [u8]>::to("stored")
                .payload(&record.value[..])
                .headers(headers);
            if let Some(key) = &record.key {
                out = out.key(&key[..]);
            }
            producer.send(out).map_err(|(e, _)| e).unwrap();
            // Random batch boundaries: flush now and then.
            if random(200) == 0 || i + 1 == sent.len() {
                producer.flush(Duration::from_secs(30)).unwrap();
            }
        }
    }
    let (_broker, address) = common::kafka::broker(dir.path(), storage);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("group.id", "stored-reader")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "65536")
        .set("message.max.bytes", "65536")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset("stored", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "seed {seed}: only {} of {} records came back within 60 s",
            received.len(),
            sent.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                assert_eq!(
                    m.offset(),
                    received.len() as i64,
                    "seed {seed}: offsets in order"
                );
                received.push(Sent {
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("seed {seed}: {e}"),
        }
    }
    for (offset, (got, want)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(got, want, "seed {seed}: record at offset {offset} differs");
    }
}

/// A consumer that resumes inside a stored batch (a committed offset is rarely a batch's first)
/// gets every record from that offset on, in both storage engines. The in-memory engine used to
/// answer from the next batch on and skip the rest of the holding one (vendor/README.md).
#[test]
fn a_read_from_inside_a_batch_starts_at_that_record_and_the_watermarks_are_the_ends() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    for storage in ["memory://", "sqlite://batches.db"] {
        let dir = tempfile::tempdir().unwrap();
        let (_broker, bootstrap) = broker(dir.path(), storage);
        common::kafka::create_topic(&bootstrap, "batched");
        // 1,000 records sent at once with a long linger: a few large batches.
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("enable.idempotence", "true")
            .set("linger.ms", "500")
            .create()
            .unwrap();
        for i in 0..1000 {
            producer
                .send(BaseRecord::<(), _>::to("batched").payload(&i.to_string()))
                .unwrap();
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        // The watermarks (ListOffsets) give the partition's ends, whatever its batches: the
        // in-memory engine answered the last batch's first offset + 1 as the latest.
        for isolation in ["read_uncommitted", "read_committed"] {
            let asking: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("isolation.level", isolation)
                .create()
                .unwrap();
            let ends = asking
                .fetch_watermarks("batched", 0, Duration::from_secs(10))
                .unwrap();
            assert_eq!(ends, (0, 1000), "{storage}, {isolation}: watermarks");
        }
        for start in [1_i64, 317, 998] {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "inside-a-batch")
                .set("enable.partition.eof", "true")
                .create()
                .unwrap();
            let mut list = TopicPartitionList::new();
            list.add_partition_offset("batched", 0, Offset::Offset(start))
                .unwrap();
            consumer.assign(&list).unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                assert!(Instant::now() < deadline, "{storage}: no end after {got:?}");
                match consumer.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => got.push((
                        m.offset(),
                        String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    )),
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    _ => {}
                }
            }
            let expected: Vec<(i64, String)> = (start..1000).map(|i| (i, i.to_string())).collect();
            assert_eq!(got, expected, "{storage}: reading from offset {start}");
        }
    }
}

/// A consumer reading a partition while producers write it, resuming again and again from an
/// offset inside a stored batch (as a consumer-group member taking a partition over does), gets
/// every record from that offset once, in offset order, in both storage engines. The in-memory
/// engine stores a batch only after it has moved the high watermark past it, and a fetch that
/// read on after a batch it had answered from inside skipped ahead by as much: it answered a
/// later batch past one it skipped (never read), or the last stored batch again (read twice).
/// Found as miscounted shared windows under live writes (issue 37, vendor/README.md).
#[test]
fn a_reader_resuming_inside_batches_of_a_partition_being_written_gets_every_record_once() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    const PRODUCERS: usize = 3;
    const WRITE_FOR: Duration = Duration::from_secs(6);
    for storage in ["memory://", "sqlite://live.db"] {
        let dir = tempfile::tempdir().unwrap();
        let (_broker, bootstrap) = broker(dir.path(), storage);
        common::kafka::create_topic(&bootstrap, "live");
        let writing = std::sync::atomic::AtomicBool::new(true);
        let (written, faults) = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..PRODUCERS)
                .map(|w| {
                    let bootstrap = &bootstrap;
                    scope.spawn(move || {
                        let producer: BaseProducer = ClientConfig::new()
                            .set("bootstrap.servers", bootstrap)
                            .set("linger.ms", "3")
                            .create()
                            .unwrap();
                        let started = Instant::now();
                        let mut sent = 0u64;
                        while started.elapsed() < WRITE_FOR {
                            let value = format!("{w}-{sent}");
                            if producer
                                .send(BaseRecord::<(), _>::to("live").payload(&value))
                                .is_ok()
                            {
                                sent += 1;
                            }
                            if sent.is_multiple_of(4) {
                                producer.poll(Duration::from_millis(1));
                            }
                        }
                        producer.flush(Duration::from_secs(30)).unwrap();
                        sent
                    })
                })
                .collect();
            let reader = scope.spawn(|| {
                // Rounds of reading, each resuming a little before where the last one got to.
                let mut faults = Vec::new();
                let mut reached = 0i64;
                let mut round = 0i64;
                while writing.load(std::sync::atomic::Ordering::Acquire) {
                    round += 1;
                    let start = (reached - round % 7).max(0);
                    let consumer: BaseConsumer = ClientConfig::new()
                        .set("bootstrap.servers", &bootstrap)
                        .set("group.id", "live-reader")
                        .set("fetch.wait.max.ms", "20")
                        .create()
                        .unwrap();
                    let mut list = TopicPartitionList::new();
                    list.add_partition_offset("live", 0, Offset::Offset(start))
                        .unwrap();
                    consumer.assign(&list).unwrap();
                    let mut expected = start;
                    let until = Instant::now() + Duration::from_millis(300);
                    while Instant::now() < until {
                        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                            if m.offset() != expected {
                                faults.push((start, expected, m.offset()));
                            }
                            expected = m.offset() + 1;
                        }
                    }
                    reached = reached.max(expected);
                }
                faults
            });
            let written = writers.into_iter().map(|w| w.join().unwrap()).sum::<u64>();
            writing.store(false, std::sync::atomic::Ordering::Release);
            (written, reader.join().unwrap())
        });
        println!("{storage}: {written} written; {} faults", faults.len());
        assert!(
            faults.is_empty(),
            "{storage}: reads that resumed at `start` expected record `expected` and got `got` \
             (start, expected, got): {:?}",
            &faults[..faults.len().min(10)]
        );
    }
}

/// ListOffsets on the raw protocol, as a hostile client sends it: the latest offset of a
/// partition written in one batch is its end (the in-memory engine answered the batch's first
/// offset + 1); requests for a topic that does not exist, a negative partition or one past the
/// topic's partitions, sent again and again, are answered UNKNOWN_TOPIC_OR_PARTITION (they were
/// answered offset 0 without an error, and each made-up name left an entry on the broker) and
/// leave the broker serving.
#[test]
fn list_offsets_gives_a_partitions_ends_and_survives_nonsense() {
    use common::kafka_wire::WireClient;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    // ListOffsets v2 (read_committed): one topic, one partition, at `timestamp` (-1 latest,
    // -2 earliest).
    let request = |topic: &str, partition: i32, timestamp: i64| {
        let mut body = Vec::new();
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.push(1);
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&1i32.to_be_bytes());
        body.extend_from_slice(&partition.to_be_bytes());
        body.extend_from_slice(&timestamp.to_be_bytes());
        body
    };
    let offset_of = |answer: &[u8]| {
        let tail: [u8; 8] = answer[answer.len() - 8..].try_into().unwrap();
        i64::from_be_bytes(tail)
    };
    for storage in ["memory://", "sqlite://ends.db"] {
        let dir = tempfile::tempdir().unwrap();
        let (_broker, address) = broker(dir.path(), storage);
        let mut client = WireClient::connect(&address);
        assert_eq!(client.create_topic("t"), Some(0), "{storage}");
        let values: [&[u8]; 3] = [b"a", b"b", b"c"];
        assert_eq!(client.produce("t", &values), Some(0), "{storage}");
        let latest = client.request(2, 2, &request("t", 0, -1)).body(storage);
        assert_eq!(offset_of(&latest), 3, "{storage}: latest");
        let earliest = client.request(2, 2, &request("t", 0, -2)).body(storage);
        assert_eq!(offset_of(&earliest), 0, "{storage}: earliest");
        // The answer's last partition: error code, timestamp, offset.
        let error_of = |answer: &[u8]| {
            let at = answer.len() - 18;
            i16::from_be_bytes([answer[at], answer[at + 1]])
        };
        assert_eq!(error_of(&latest), 0, "{storage}");
        for round in 0..20 {
            for (topic, partition) in [("nope", 7), ("t", -1), ("t", 99), ("nope", 0)] {
                let answer = client.request(2, 2, &request(topic, partition, -1 - round % 2));
                assert!(
                    !answer.is_closed(),
                    "{storage}: closed at {topic}/{partition}"
                );
                let body = answer.body(storage);
                assert_eq!(
                    (error_of(&body), offset_of(&body)),
                    (UNKNOWN_TOPIC_OR_PARTITION, -1),
                    "{storage}: {topic}/{partition}"
                );
            }
        }
        // Asking about a made-up topic created nothing.
        assert_eq!(
            client.create_topic("nope"),
            Some(0),
            "{storage}: `nope` was not made"
        );
        assert_eq!(
            client.produce("t", &values),
            Some(0),
            "{storage}: still writing"
        );
        let mut fresh = WireClient::connect(&address);
        assert_eq!(fresh.fetch("t"), Some((0, 6)), "{storage}");
    }
}

/// A fetch waiting at the broker for data is answered when a record is written, not when its
/// wait runs out: on the raw protocol, a fetch waiting up to 20 s on an empty partition gets the
/// record another connection writes. The broker wakes waiting fetches on writes (it no longer
/// looks on a timer), so a missed wake would show here as a 20 s answer with nothing in it. A
/// client that meanwhile keeps asking for offsets past the end or below zero is answered each
/// time, and the waiting fetch is still woken.
#[test]
fn a_waiting_fetch_is_answered_by_a_write_not_by_its_timeout() {
    use common::kafka_wire::WireClient;
    for storage in ["memory://", "sqlite://wake.db"] {
        let dir = tempfile::tempdir().unwrap();
        let (_broker, address) = broker(dir.path(), storage);
        let mut writer = WireClient::connect(&address);
        assert_eq!(writer.create_topic("quiet"), Some(0), "{storage}");
        let waiting_address = address.clone();
        let waiting = std::thread::spawn(move || {
            let mut reader = WireClient::connect(&waiting_address);
            let started = Instant::now();
            let answer = reader.fetch_waiting("quiet", 0, 20_000);
            (answer, started.elapsed())
        });
        let mut pest = WireClient::connect(&address);
        for offset in [1_000_000, -5, i64::MAX].repeat(7) {
            assert!(
                pest.fetch_waiting("quiet", offset, 0).is_some(),
                "{storage}: closed at quiet@{offset}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(writer.produce("quiet", &[b"hello"]), Some(0), "{storage}");
        let (answer, took) = waiting.join().unwrap();
        assert_eq!(answer, Some((0, 1)), "{storage}");
        assert!(
            took < Duration::from_secs(10),
            "{storage}: the waiting fetch was answered after {took:?}, not by the write"
        );
    }
}

/// A fetch for a topic, or a partition, that does not exist is answered with
/// UNKNOWN_TOPIC_OR_PARTITION on both engines, and the connection and the storage stay in
/// service: the same client then produces and reads back. Seen failing on 2026-12-07: a
/// `sqlite://` broker panicked in its storage task at such a fetch and hung up.
#[test]
fn a_fetch_for_a_topic_or_partition_that_does_not_exist_is_refused_on_both_engines() {
    use common::kafka_wire::WireClient;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    for storage in ["memory://", "sqlite://nothing.db"] {
        let dir = tempfile::tempdir().unwrap();
        let (_broker, address) = broker(dir.path(), storage);
        let mut client = WireClient::connect(&address);
        assert_eq!(client.create_topic("present"), Some(0), "{storage}");
        for _ in 0..3 {
            let missing_topic = client.fetch_partition("nothing-here", 0, 0, 0);
            assert_eq!(
                missing_topic,
                Some((UNKNOWN_TOPIC_OR_PARTITION, 0)),
                "{storage}: a fetch for a topic that does not exist"
            );
            let missing_partition = client.fetch_partition("present", 7, 0, 0);
            assert_eq!(
                missing_partition,
                Some((UNKNOWN_TOPIC_OR_PARTITION, 0)),
                "{storage}: a fetch for partition 7 of a one-partition topic"
            );
        }
        assert_eq!(
            client.produce("present", &[b"a", b"b"]),
            Some(0),
            "{storage}"
        );
        assert_eq!(client.fetch("present"), Some((0, 2)), "{storage}");
    }
}

/// A fetch whose topic is a null string (a hostile or broken client) does not take the broker
/// down: the connection gets an answer or is closed, and the broker goes on serving others.
#[test]
fn a_fetch_naming_a_null_topic_leaves_the_broker_serving() {
    use common::kafka_wire::{Answer, WireClient};
    for storage in ["memory://", "sqlite://nothing.db"] {
        let dir = tempfile::tempdir().unwrap();
        let (_broker, address) = broker(dir.path(), storage);
        let mut hostile = WireClient::connect(&address);
        for _ in 0..3 {
            if matches!(hostile.fetch_null_topic(), Answer::Closed) {
                hostile = WireClient::connect(&address);
            }
        }
        let mut client = WireClient::connect(&address);
        assert_eq!(client.create_topic("after"), Some(0), "{storage}");
        assert_eq!(client.produce("after", &[b"x"]), Some(0), "{storage}");
        assert_eq!(client.fetch("after"), Some((0, 1)), "{storage}");
    }
}
