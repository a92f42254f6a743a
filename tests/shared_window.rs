//! A window shared by a consumer group, on the real protocol: several `weir run` processes of
//! one pipeline file count a 6-partition topic together (each counts its partitions, one merges
//! the partial results), one is killed with SIGKILL mid-run and a fourth joins later. The
//! `result` topic, read independently with read_committed, must equal a recount of the input:
//! every window that could close present once, with its true count per group.

mod common;

use common::Background;
use common::kafka::{broker, create_topic_with, member, reader, scratch, seeded};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
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

/// The counting job shared by a group: 1 s windows by gender over `events`, to `result`.
fn shared_pipeline(bootstrap: &str, lateness_ms: i64) -> String {
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
allowed_lateness = "{lateness_ms}ms"
group_by = ["gender"]

[sinks.result]
type = "kafka"
inputs = ["per_second"]
topic = "result"
codec = "json"
fields = ["window_start", "gender", "count"]
"#
    )
}

/// Missing, conflicting and duplicate counts of `results` against `expected`, reported; true
/// when there are none.
fn judge(
    seed: u64,
    expected: &BTreeMap<(i64, String), u64>,
    results: &BTreeMap<(i64, String), Vec<u64>>,
) -> Verdict {
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !results.contains_key(*k))
        .cloned()
        .collect();
    let conflicting: Vec<_> = results
        .iter()
        .filter(|(k, counts)| counts.iter().any(|c| Some(c) != expected.get(*k)))
        .map(|(k, counts)| (k.clone(), counts.clone(), expected.get(k).copied()))
        .collect();
    let duplicates: usize = results.values().map(|c| c.len() - 1).sum();
    println!(
        "seed {seed}: result: {} (window, gender) counts read; {} missing, {} conflicting, \
         {duplicates} duplicates",
        results.len(),
        missing.len(),
        conflicting.len()
    );
    Verdict {
        missing,
        conflicting,
        duplicates,
    }
}

/// A (window start, gender) whose count was wrong: the counts written and the true count.
type Conflict = ((i64, String), Vec<u64>, Option<u64>);

/// What [`judge`] found.
struct Verdict {
    missing: Vec<(i64, String)>,
    conflicting: Vec<Conflict>,
    duplicates: usize,
}

impl Verdict {
    fn exact(&self) -> bool {
        self.missing.is_empty() && self.conflicting.is_empty() && self.duplicates == 0
    }

    /// Prints what the members wrote to the partials topic for the first wrong or missing
    /// window.
    fn show_partials(&self, bootstrap: &str) {
        let first_wrong = self.conflicting.first().map(|((start, _), _, _)| start);
        if let Some(start) = first_wrong.or(self.missing.first().map(|(start, _)| start)) {
            for line in read_partials(bootstrap, "counters.per_second.partials", *start) {
                println!("partials: {line}");
            }
        }
    }

    fn assert_exact(&self, seed: u64, logs: &std::path::Path) {
        assert!(
            self.exact(),
            "seed {seed}: {} missing (e.g. {:?}), conflicting {:?}, {} duplicates; logs in {}",
            self.missing.len(),
            self.missing.iter().take(5).collect::<Vec<_>>(),
            self.conflicting.iter().take(10).collect::<Vec<_>>(),
            self.duplicates,
            logs.display()
        );
    }
}

/// The two tests here each run four members on two cores: one at a time.
static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A test's own broker with a 6-partition `events` topic, in a scratch directory for the
/// members' logs (kept with WEIR_KEEP_LOGS=1); the other test waits until it is dropped.
struct Cluster {
    _alone: std::sync::MutexGuard<'static, ()>,
    _broker: Background,
    bootstrap: String,
    scratch: common::kafka::Scratch,
}

impl Cluster {
    fn start(seed: u64) -> Cluster {
        let alone = ONE_CLUSTER_AT_A_TIME
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let scratch = scratch();
        println!("seed {seed}; members' logs in {}", scratch.path.display());
        let (broker, bootstrap) = broker(&scratch.path, "memory://");
        create_topic_with(&bootstrap, "events", INPUT_PARTITIONS);
        Cluster {
            _alone: alone,
            _broker: broker,
            bootstrap,
            scratch,
        }
    }
}

#[test]
fn members_sharing_a_window_write_each_window_once_with_its_true_count_through_a_kill_and_a_join() {
    let (seed, mut random) = seeded();
    let cluster = Cluster::start(seed);
    let (dir, bootstrap) = (&cluster.scratch.path, cluster.bootstrap.clone());

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
    std::fs::write(&pipeline, shared_pipeline(&bootstrap, LATENESS_MS)).unwrap();

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
    let verdict = judge(seed, &expected, &results);
    for (i, m) in members.into_iter().enumerate() {
        if let Some(m) = m {
            let (status, log) = m.signal("TERM");
            assert!(status.success(), "member{i} failed on SIGTERM:\n{log}");
        }
    }
    verdict.show_partials(&bootstrap);
    verdict.assert_exact(seed, dir);
}

/// Every record of `topic`'s `partitions` partitions, read from the beginning to the end:
/// (event time, gender, partition, offset) per record.
fn read_input(bootstrap: &str, topic: &str, partitions: i32) -> Vec<(i64, String, i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "input-recount")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let mut ended = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while ended.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "could not read {topic} to its end"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let record: serde_json::Value =
                    serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
                let gender = record["gender"].as_str().unwrap_or("").to_string();
                records.push((
                    m.timestamp().to_millis().unwrap(),
                    gender,
                    m.partition(),
                    m.offset(),
                ));
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ended.insert(partition);
            }
            Some(Err(e)) => println!("reading {topic}: {e}"),
            None => {}
        }
    }
    records
}

/// Milliseconds since the epoch.
fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Writes `rate` events a second to `events` until `stop`, timestamped by the wall clock (each
/// partition in time order), genders at random; then, a moment later, one record per partition
/// that closes every window before it. Returns how many records it wrote.
fn write_live(bootstrap: &str, rate: u64, seed: u64, stop: &std::sync::atomic::AtomicBool) -> u64 {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut state = seed | 1;
    let mut gender = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % 3
    };
    let send = |partition: i32, time: i64, value: &str| loop {
        match producer.send(
            BaseRecord::<(), _>::to("events")
                .partition(partition)
                .payload(value)
                .timestamp(time),
        ) {
            Ok(()) => break,
            Err(_) => {
                producer.poll(Duration::from_millis(10));
            }
        }
    };
    let started = Instant::now();
    let mut written = 0u64;
    let mut time = wall_clock();
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let due = started.elapsed().as_millis() as u64 * rate / 1000;
        while written < due {
            time = time.max(wall_clock());
            let partition = (written % INPUT_PARTITIONS as u64) as i32;
            send(partition, time, &format!("{{\"gender\":\"{}\"}}", gender()));
            written += 1;
        }
        producer.poll(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let closing = wall_clock().max(time + 1500);
    for partition in 0..INPUT_PARTITIONS {
        send(partition, closing, "{\"gender\":\"0\"}");
        written += 1;
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    written
}

/// The issue-37 scenario: records arrive *while* partitions are handed over, many times. Three
/// members count a topic a producer writes live; a fourth joins and leaves again and again, in
/// turn stopped with SIGTERM and SIGKILL. Judged by an independent read_committed reader of
/// `result` against a recount of the input topic itself.
#[test]
fn members_sharing_a_window_stay_exact_while_a_member_comes_and_goes_under_live_traffic() {
    const RATE: u64 = 2_000;
    const VISITS: u64 = 6;
    let (seed, mut random) = seeded();
    let cluster = Cluster::start(seed);
    let (dir, bootstrap) = (&cluster.scratch.path, cluster.bootstrap.clone());
    let pipeline = dir.join("shared.toml");
    std::fs::write(&pipeline, shared_pipeline(&bootstrap, 0)).unwrap();
    let mut members: Vec<Background> = (0..3)
        .map(|i| member(dir, &pipeline, &format!("member{i}")))
        .collect();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| write_live(&bootstrap, RATE, seed, &stop));
        std::thread::sleep(Duration::from_secs(4));
        for visit in 0..VISITS {
            let visitor = member(dir, &pipeline, &format!("visitor{visit}"));
            std::thread::sleep(Duration::from_millis(3000 + random(3000)));
            let signal = if visit % 2 == 0 { "TERM" } else { "KILL" };
            let (status, log) = visitor.signal(signal);
            if signal == "TERM" {
                assert!(status.success(), "visitor{visit} failed on SIGTERM:\n{log}");
            }
            println!("visitor{visit} joined and left (SIG{signal})");
            std::thread::sleep(Duration::from_millis(500 + random(2500)));
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        writer.join().unwrap()
    });

    let input = read_input(&bootstrap, "events", INPUT_PARTITIONS);
    assert_eq!(
        input.len() as u64,
        written,
        "the input topic holds what was written"
    );
    let closes_through = input.iter().map(|(t, ..)| *t).max().unwrap();
    let mut expected: BTreeMap<(i64, String), u64> = BTreeMap::new();
    for (time, gender, ..) in &input {
        let window = time.div_euclid(1000) * 1000;
        if window + 1000 <= closes_through {
            *expected.entry((window, gender.clone())).or_default() += 1;
        }
    }
    println!(
        "{written} events written live; {} (window, gender) counts must close",
        expected.len()
    );
    let complete =
        |seen: &BTreeMap<(i64, String), Vec<u64>>| expected.keys().all(|k| seen.contains_key(k));
    let results = read_results(&bootstrap, "result", complete, Duration::from_secs(180));
    let verdict = judge(seed, &expected, &results);
    for (i, m) in members.drain(..).enumerate() {
        let (status, log) = m.signal("TERM");
        assert!(status.success(), "member{i} failed on SIGTERM:\n{log}");
    }
    verdict.show_partials(&bootstrap);
    if let Some(((start, _), _, _)) = verdict.conflicting.first() {
        let mut per_partition: BTreeMap<(i32, &str), (u64, i64, i64)> = BTreeMap::new();
        for (time, gender, partition, offset) in &input {
            if time.div_euclid(1000) * 1000 == *start {
                let at =
                    per_partition
                        .entry((*partition, gender))
                        .or_insert((0, i64::MAX, i64::MIN));
                at.0 += 1;
                at.1 = at.1.min(*offset);
                at.2 = at.2.max(*offset);
            }
        }
        for ((partition, gender), (count, first, last)) in per_partition {
            println!(
                "recount: window {start} partition {partition} gender {gender}: {count} \
                 (offsets {first}..={last})"
            );
        }
    }
    verdict.assert_exact(seed, dir);
}
