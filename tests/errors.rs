//! Error outputs through the real binary: the records a stage rejects arrive, with reason and
//! origin, wherever `<stage>.errors` is sent, and the good records' results are unchanged. Judged
//! by recounting the input here, not by the pipeline's own figures.

mod common;

use common::kafka::{broker, create_topic, read_topic, seeded};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

/// The sample log with random lines spoiled (a field missing, a field too many, invalid
/// UTF-8); returns the file's bytes and, per spoiled line number, the line as the errors output
/// should show it (fields joined by commas, invalid bytes replaced).
fn spoiled_sample(next: &mut impl FnMut(u64) -> u64) -> (Vec<u8>, BTreeMap<u64, String>) {
    let sample = std::fs::read_to_string(repo().join("data/user_log_sample.csv")).unwrap();
    let mut bytes = Vec::new();
    let mut spoiled = BTreeMap::new();
    for (i, line) in sample.lines().enumerate() {
        let number = i as u64 + 1;
        if number == 1 || next(100) >= 3 {
            bytes.extend_from_slice(line.as_bytes());
        } else {
            match next(3) {
                0 => {
                    let cut = &line[..line.rfind(',').unwrap()];
                    bytes.extend_from_slice(cut.as_bytes());
                    spoiled.insert(number, cut.to_string());
                }
                1 => {
                    let longer = format!("{line},extra");
                    bytes.extend_from_slice(longer.as_bytes());
                    spoiled.insert(number, longer);
                }
                _ => {
                    bytes.extend_from_slice(line.as_bytes());
                    bytes.extend_from_slice(b"\xCB\xC4");
                    spoiled.insert(number, format!("{line}\u{FFFD}\u{FFFD}"));
                }
            }
        }
        bytes.push(b'\n');
    }
    (bytes, spoiled)
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn bad_rows_arrive_in_a_file_with_their_lines_and_reasons_and_good_totals_are_unchanged() {
    let (seed, mut next) = seeded();
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, spoiled) = spoiled_sample(&mut next);
        let csv = dir.path().join("log.csv");
        std::fs::write(&csv, &bytes).unwrap();
        let out = dir.path().join("out.jsonl");
        let errors = dir.path().join("errors.jsonl");
        // Random batch sizes and one or two parsing threads: error records must not depend on
        // where batches end.
        let batch_size = 1 + next(700);
        let parallelism = 1 + next(2);
        let pipeline = format!(
            r#"
[sources.log]
type = "csv"
path = "{csv}"
event_rate = 1000
start_time = 1700000000000
batch_size = {batch_size}
parallelism = {parallelism}

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "{out}"

[sinks.rejected]
type = "file"
inputs = ["log.errors"]
path = "{errors}"
"#,
            csv = csv.display(),
            out = out.display(),
            errors = errors.display()
        );
        let file = dir.path().join("p.toml");
        std::fs::write(&file, &pipeline).unwrap();
        let run = run(&["run", file.to_str().unwrap()]);
        let (_, stderr) = text(&run);
        let context = format!(
            "seed {seed}, round {round}, batch_size {batch_size}, parallelism {parallelism}"
        );
        assert!(run.status.success(), "{context}\n{stderr}");

        let rejected = json_lines(&errors);
        let mut seen = BTreeSet::new();
        for record in &rejected {
            assert_eq!(record["stage"], "log", "{context}: {record}");
            let at = record["at"].as_str().unwrap();
            let line: u64 = at
                .strip_prefix(&format!("{}:", csv.display()))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{context}: `at` is not FILE:LINE: {record}"));
            assert!(seen.insert(line), "{context}: line {line} rejected twice");
            let Some(expected) = spoiled.get(&line) else {
                panic!("{context}: line {line} was good but rejected: {record}");
            };
            assert_eq!(record["record"], expected.as_str(), "{context}");
            let reason = record["reason"].as_str().unwrap();
            assert!(
                reason.starts_with("expected 11 fields") || reason.contains("invalid UTF-8"),
                "{context}: {reason}"
            );
        }
        let missing: Vec<&u64> = spoiled.keys().filter(|l| !seen.contains(l)).collect();
        assert!(missing.is_empty(), "{context}: never rejected: {missing:?}");
        assert_eq!(
            sum_json_counts(&std::fs::read_to_string(&out).unwrap(), "gender"),
            count_genders(&csv),
            "{context}"
        );
        assert!(
            stderr.contains(&format!("sources.log.errors: {} out", spoiled.len())),
            "{context}\n{stderr}"
        );
        // The run summary's bytes: the source read the whole file; each file sink wrote its
        // file (neither is counted when nothing was written).
        assert!(
            stderr.contains(&format!("{} bytes read\n", bytes.len())),
            "{context}\n{stderr}"
        );
        for (sink, file) in [("out", &out), ("rejected", &errors)] {
            let length = std::fs::metadata(file).unwrap().len();
            let line = format!("sinks.{sink}: ");
            let summary = stderr
                .lines()
                .find(|l| l.contains(&line))
                .unwrap_or_else(|| panic!("{context}: no summary for {sink}\n{stderr}"));
            let written = if length == 0 {
                !summary.contains("bytes written")
            } else {
                summary.ends_with(&format!(", {length} bytes written"))
            };
            assert!(written, "{context}: {sink} wrote {length} bytes: {summary}");
        }
    }
}

#[test]
fn late_records_go_to_the_windows_errors_with_their_fields() {
    let dir = tempfile::tempdir().unwrap();
    // Event times in the file: two on time, one 5 s behind (its window has closed), then on.
    let csv = dir.path().join("late.csv");
    std::fs::write(
        &csv,
        "t,gender\n1700000000000,0\n1700000009000,1\n1700000003500,2\n1700000010000,0\n",
    )
    .unwrap();
    let errors = dir.path().join("late.jsonl");
    let out = dir.path().join("out.jsonl");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[sources.log]
type = "csv"
path = "{}"
timestamp_field = "t"
# One row per batch: the watermark moves between rows, so the third row finds its window closed.
batch_size = 1

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
allowed_lateness = "2s"
group_by = ["gender"]

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "{}"

[sinks.late]
type = "file"
inputs = ["per_second.errors"]
path = "{}"
"#,
            csv.display(),
            out.display(),
            errors.display()
        ),
    )
    .unwrap();
    let run = run(&["run", file.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run).1);
    let rejected = json_lines(&errors);
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    let late = &rejected[0];
    assert_eq!(late["stage"], "per_second");
    assert_eq!(late["at"], "event time 1700000003500");
    assert!(
        late["reason"].as_str().unwrap().starts_with("late"),
        "{late}"
    );
    let record: serde_json::Value = serde_json::from_str(late["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["gender"], "2");
    assert_eq!(record["t"], "1700000003500");
    // The late row is in no window; the others are.
    assert_eq!(
        sum_json_counts(&std::fs::read_to_string(&out).unwrap(), "gender"),
        totals(&[("0", 2), ("1", 1)])
    );
}

#[test]
fn undecodable_kafka_messages_land_in_a_dead_letter_topic_once_each() {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    let (seed, mut next) = seeded();
    create_topic(&bootstrap, "sex");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut garbage = BTreeMap::new();
    let messages = 3000u64;
    for offset in 0..messages {
        let payload = if next(100) < 4 {
            let text = format!("not json {offset}");
            garbage.insert(offset, text.clone());
            text
        } else {
            format!("{{\"gender\":\"{}\"}}", next(3))
        };
        loop {
            match producer.send(BaseRecord::<(), str>::to("sex").payload(&payload)) {
                Ok(()) => break,
                Err((_, _)) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let out = dir.path().join("out.jsonl");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n[sinks.dead_letters]\ntype = \"kafka\"\ninputs = [\"sex.errors\"]\ntopic = \"dead\"\ncodec = \"json\"\n",
            common::kafka::count_pipeline(&bootstrap, &out).replace(
                "start = \"earliest\"",
                "start = \"earliest\"\ncodec = \"json\"\nidle_timeout = \"200ms\""
            )
        ),
    )
    .unwrap();
    let mut cmd = weir();
    cmd.args(["run", file.to_str().unwrap()]);
    let pipeline = Background::start(
        cmd,
        &dir.path().join("run.out"),
        &dir.path().join("run.log"),
    );
    // Every garbage message reaches the dead-letter topic (read by an independent consumer);
    // then the run is stopped and the topic read once more for duplicates.
    let dead_reader = common::kafka::reader(&bootstrap, "dead-letter-check", "dead", &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut arrived = 0;
    while arrived < garbage.len() && Instant::now() < deadline {
        if let Some(Ok(_)) = dead_reader.poll(Duration::from_millis(200)) {
            arrived += 1;
        }
    }
    let (status, log) = pipeline.signal("TERM");
    assert!(status.success(), "seed {seed}\n{log}");
    let dead = read_topic(&bootstrap, "dead");
    let mut seen = BTreeMap::new();
    for (_, text) in &dead {
        let record: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(record["stage"], "sex", "{record}");
        let at = record["at"].as_str().unwrap();
        let offset: u64 = at
            .strip_prefix("sex/0@")
            .and_then(|o| o.parse().ok())
            .unwrap_or_else(|| panic!("`at` is not topic/partition@offset: {record}"));
        assert!(
            seen.insert(offset, record["record"].as_str().unwrap().to_string())
                .is_none(),
            "seed {seed}: offset {offset} in the dead-letter topic twice"
        );
        assert!(!record["reason"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        seen, garbage,
        "seed {seed}: dead letters vs. the garbage produced"
    );
}

/// Records a Kafka sink cannot write for good (larger than the client's `message.max.bytes`)
/// go to the sink's errors output, each once, and every other record reaches the topic: both
/// recounted from the input file, with either delivery guarantee.
#[test]
fn records_too_large_for_the_topic_go_to_the_sinks_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    let (seed, mut next) = seeded();
    for guarantee in ["exactly-once", "at-least-once"] {
        // Short texts fit a 1,000-byte message, long ones cannot (no length near the limit).
        let mut csv_text = String::from("id,text\n");
        let (mut short, mut long) = (BTreeSet::new(), BTreeSet::new());
        for id in 0..400u64 {
            let length = if next(10) == 0 {
                long.insert(id);
                2000 + next(2000)
            } else {
                short.insert(id);
                1 + next(400)
            };
            csv_text += &format!("{id},{}\n", "x".repeat(length as usize));
        }
        let csv = dir.path().join(format!("{guarantee}.csv"));
        std::fs::write(&csv, &csv_text).unwrap();
        let refused = dir.path().join(format!("{guarantee}.refused.jsonl"));
        let topic = format!("big-{guarantee}");
        let file = dir.path().join(format!("{guarantee}.toml"));
        std::fs::write(
            &file,
            format!(
                r#"
[kafka]
brokers = "{bootstrap}"

[sources.rows]
type = "csv"
path = "{}"
batch_size = {}

[sinks.big]
type = "kafka"
inputs = ["rows"]
topic = "{topic}"
codec = "json"
guarantee = "{guarantee}"
options = {{ "message.max.bytes" = "1000" }}

[sinks.refused]
type = "file"
inputs = ["big.errors"]
path = "{}"
"#,
                csv.display(),
                1 + next(100),
                refused.display()
            ),
        )
        .unwrap();
        let run = run(&["run", file.to_str().unwrap()]);
        let (_, stderr) = text(&run);
        let context = format!("seed {seed}, {guarantee}");
        assert!(run.status.success(), "{context}\n{stderr}");

        let id_of = |json: &str| -> u64 {
            let record: serde_json::Value = serde_json::from_str(json).unwrap();
            record["id"].as_str().unwrap().parse().unwrap()
        };
        let mut written = BTreeSet::new();
        for (_, value) in read_topic(&bootstrap, &topic) {
            assert!(written.insert(id_of(&value)), "{context}: {value} twice");
        }
        assert_eq!(
            written, short,
            "{context}: the topic holds the short records"
        );
        let mut diverted = BTreeSet::new();
        for record in json_lines(&refused) {
            assert_eq!(record["stage"], "big", "{context}: {record}");
            assert!(
                record["reason"]
                    .as_str()
                    .unwrap()
                    .contains("MessageSizeTooLarge"),
                "{context}: {record}"
            );
            let id = id_of(record["record"].as_str().unwrap());
            assert!(diverted.insert(id), "{context}: {id} refused twice");
        }
        assert_eq!(
            diverted, long,
            "{context}: the errors output holds the long ones"
        );
        assert!(
            stderr.contains(&format!("sinks.big: 400 in, {} dropped", long.len())),
            "{context}\n{stderr}"
        );
    }
}
