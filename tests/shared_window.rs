//! A window shared by a consumer group, on the real protocol: several `weir run` processes of
//! one pipeline file count a 6-partition topic together (each counts its partitions, one merges
//! the partial results), one is killed with SIGKILL mid-run and a fourth joins later. The
//! `result` topic, read independently with read_committed, must equal a recount of the input:
//! every window that could close present once, with its true count per group.

mod common;

use common::Background;
use common::kafka::{broker, create_topic_with, member, reader, seeded};
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const INPUT_PARTITIONS: i32 = 6;
const EVENTS: u64 = 1_000_000;
/// Event time covered by the input: 200 one-second windows.
const SPAN_MS: i64 = 200_000;
const LATENESS_MS: i64 = 2_000;

/// Every (window_start, gender) → counts written to `topic`, read with read_committed until
/// `expected` windows are complete or `limit` passed.
fn read_results(
    bootstrap: &str,
    topic: &str,
    done: impl Fn(&BTreeMap<(i64, String), Vec<u64>>) -> bool,
    limit: Duration,
) -> BTreeMap<(i64, String), Vec<u64>> {
    let consumer = reader(bootstrap, "independent-reader", topic, &[]);
    let mut seen: BTreeMap<(i64, String), Vec<u64>> = BTreeMap::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !done(&seen) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let record: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                let start = record["window_start"].as_i64().unwrap();
                let gender = record["gender"].as_str().unwrap_or("").to_string();
                let count = record["count"].as_u64().unwrap();
                seen.entry((start, gender)).or_default().push(count);
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => println!("reading {topic}: {e}"),
        }
    }
    seen
}

/// The partial rows and progress rows of the partials topic that concern window `start`.
fn read_partials(bootstrap: &str, topic: &str, start: i64) -> Vec<String> {
    let consumer = reader(bootstrap, "partials-reader", topic, &[]);
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let window = record["window_start"].as_i64();
                let through = record["_through"].as_i64();
                let relevant = window == Some(start)
                    || through.is_some_and(|t| t >= start + 1000 && t < start + 4000);
                if relevant {
                    lines.push(format!("@{} {text}", m.offset()));
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    lines
}

#[test]
fn members_sharing_a_window_write_each_window_once_with_its_true_count_through_a_kill_and_a_join() {
    let (seed, mut random) = seeded();
    let temp = tempfile::tempdir().unwrap();
    // WEIR_KEEP_LOGS=1 keeps the members' logs for a look after a failure.
    let dir = &if std::env::var_os("WEIR_KEEP_LOGS").is_some() {
        temp.keep()
    } else {
        temp.path().to_path_buf()
    };
    println!("seed {seed}; members' logs in {}", dir.display());
    let (_broker, bootstrap) = broker(dir, "memory://");
    create_topic_with(&bootstrap, "events", INPUT_PARTITIONS);

    // Preload: event times rise through SPAN_MS with up to 1.5 s of disorder (less than the
    // allowed lateness, so no record is late), genders at random; the recount is kept aside.
    let base = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000)
        / 1000
        * 1000;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let mut recount: BTreeMap<(i64, String), u64> = BTreeMap::new();
    let mut latest_per_partition = vec![i64::MIN; INPUT_PARTITIONS as usize];
    for seq in 0..EVENTS {
        let partition = (seq % INPUT_PARTITIONS as u64) as i32;
        let time = base + (seq as i64 * SPAN_MS) / EVENTS as i64 - random(1500) as i64;
        let gender = random(3).to_string();
        let window = time.div_euclid(1000) * 1000;
        *recount.entry((window, gender.clone())).or_default() += 1;
        let at = &mut latest_per_partition[partition as usize];
        *at = (*at).max(time);
        let value = format!("{{\"gender\":\"{gender}\"}}");
        loop {
            match producer.send(
                BaseRecord::<(), _>::to("events")
                    .partition(partition)
                    .payload(&value)
                    .timestamp(time),
            ) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    // A window closes when every partition is complete through its end: its latest event time
    // minus the lateness (the last windows stay open, waiting for more data).
    let closes_through = latest_per_partition.iter().min().unwrap() - LATENESS_MS;
    let expected: BTreeMap<(i64, String), u64> = recount
        .into_iter()
        .filter(|((start, _), _)| start + 1000 <= closes_through)
        .collect();
    let windows = expected
        .keys()
        .map(|(s, _)| *s)
        .collect::<std::collections::BTreeSet<_>>();
    println!(
        "preloaded {EVENTS} events; {} windows must close, {} (window, gender) counts",
        windows.len(),
        expected.len()
    );

    let pipeline = dir.join("shared.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[kafka]
brokers = "{bootstrap}"

[sources.events]
type = "kafka"
topic = "events"
fields = ["gender"]
codec = "json"
assignment = "group"
group_id = "counters"
create_topic = false

[transforms.per_second]
type = "window"
inputs = ["events"]
size = "1s"
allowed_lateness = "{LATENESS_MS}ms"
group_by = ["gender"]

[sinks.result]
type = "kafka"
inputs = ["per_second"]
topic = "result"
codec = "json"
fields = ["window_start", "gender", "count"]
"#
        ),
    )
    .unwrap();

    let mut members: Vec<Option<Background>> = (0..3)
        .map(|i| Some(member(dir, &pipeline, &format!("member{i}"))))
        .collect();
    // Kill one member once results have started to come, then let a fourth join.
    let started = read_results(
        &bootstrap,
        "result",
        |seen| seen.len() >= 30,
        Duration::from_secs(120),
    );
    assert!(
        !started.is_empty(),
        "no results within 120 s; members' logs in {}",
        dir.display()
    );
    std::thread::sleep(Duration::from_millis(random(3000)));
    let victim = random(3) as usize;
    let (_, _) = members[victim].take().unwrap().signal("KILL");
    println!("killed member{victim} with SIGKILL");
    std::thread::sleep(Duration::from_millis(2000 + random(6000)));
    members.push(Some(member(dir, &pipeline, "member3")));
    println!("member3 joined");

    let complete =
        |seen: &BTreeMap<(i64, String), Vec<u64>>| expected.keys().all(|k| seen.contains_key(k));
    let results = read_results(&bootstrap, "result", complete, Duration::from_secs(240));
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !results.contains_key(*k))
        .collect();
    let conflicting: Vec<_> = results
        .iter()
        .filter(|(k, counts)| counts.iter().any(|c| Some(c) != expected.get(*k)))
        .map(|(k, counts)| (k.clone(), counts.clone(), expected.get(k).copied()))
        .collect();
    let duplicates: usize = results.values().map(|c| c.len() - 1).sum();
    println!(
        "result: {} (window, gender) counts read; {} missing, {} conflicting, {duplicates} \
         duplicates",
        results.len(),
        missing.len(),
        conflicting.len()
    );
    for (i, m) in members.into_iter().enumerate() {
        if let Some(m) = m {
            let (status, log) = m.signal("TERM");
            assert!(status.success(), "member{i} failed on SIGTERM:\n{log}");
        }
    }
    if let Some(((start, _), _, _)) = conflicting.first() {
        // What the members wrote for the first wrong window, for the failure report.
        for line in read_partials(&bootstrap, "counters.per_second.partials", *start) {
            println!("partials: {line}");
        }
    }
    assert!(
        missing.is_empty() && conflicting.is_empty() && duplicates == 0,
        "seed {seed}: {} missing (e.g. {:?}), conflicting {:?}, {duplicates} duplicates; logs in \
         {}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        conflicting.iter().take(5).collect::<Vec<_>>(),
        dir.display()
    );
}
