//! Kafka helpers for the integration tests: a `weir broker` on a free port, reading a topic back
//! with read_committed, and the seeded random numbers of the chaos tests.

use super::{Background, free_port, weir};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::Path;
use std::time::{Duration, Instant};

/// `weir broker` on a free port; returns it with its address.
pub fn broker(dir: &Path, storage: &str) -> (Background, String) {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let mut cmd = weir();
    cmd.args(["broker", "--listen", &address, "--storage", storage])
        .current_dir(dir);
    // WEIR_TEST_BROKER_LOG=<filter> turns the broker's own log on (e.g. to follow its group
    // coordinator); the tests' weir processes otherwise ignore RUST_LOG.
    if let Ok(filter) = std::env::var("WEIR_TEST_BROKER_LOG") {
        cmd.env("RUST_LOG", filter);
    }
    let broker = Background::start(cmd, &dir.join("broker.out"), &dir.join("broker.log"));
    wait_for_port(port);
    (broker, address)
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An independent rdkafka consumer (`group`, read_committed, end-of-partition events, no
/// commits) reading partition 0 of `topic` from the beginning; `extra` adds client settings.
pub fn reader(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.queue.backoff.ms", "10");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().unwrap();
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    consumer
}

/// Expected counts per (window start, gender) of 1-second windows over `csv` (the sample's
/// layout: a header, gender in column 10) replayed at 10 rows per event second from
/// 2015-11-11T00:00:00Z, as tests/fixtures/load_sex.toml loads it; recounted here from the file.
pub fn expected_windows(csv: &Path) -> std::collections::BTreeMap<(i64, String), u64> {
    let start = 1_447_200_000_000i64; // 2015-11-11T00:00:00Z
    let text = std::fs::read_to_string(csv).unwrap();
    let mut windows = std::collections::BTreeMap::new();
    for (n, line) in text.lines().skip(1).enumerate() {
        let gender = line.split(',').nth(9).unwrap().to_string();
        let window = (start + n as i64 * 100).div_euclid(1000) * 1000;
        *windows.entry((window, gender)).or_insert(0) += 1;
    }
    windows
}

/// How many messages `consumer` reads before it reaches the end of its partition (30 s at most).
pub fn count_to_end(consumer: &BaseConsumer) -> usize {
    let mut count = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(_)) => count += 1,
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    count
}

/// A `weir run` of `pipeline` in `dir`, its output in `<name>.out` and log in `<name>.log`.
pub fn member(dir: &Path, pipeline: &Path, name: &str) -> Background {
    let mut cmd = weir();
    cmd.arg("run").arg(pipeline).current_dir(dir);
    // WEIR_TEST_MEMBER_LOG=<filter> sets the members' log filter (e.g. `weir=debug`).
    if let Ok(filter) = std::env::var("WEIR_TEST_MEMBER_LOG") {
        cmd.env("RUST_LOG", filter);
    }
    Background::start(
        cmd,
        &dir.join(format!("{name}.out")),
        &dir.join(format!("{name}.log")),
    )
}

/// Every message of `topic` (one partition), read by an rdkafka consumer of our own with
/// `isolation.level = read_committed`: each message's timestamp and value.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<(i64, String)> {
    let consumer = reader(bootstrap, "test-reader", topic, &[]);
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => messages.push((
                m.timestamp().to_millis().unwrap_or(-1),
                String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap(),
            )),
            Some(Err(KafkaError::PartitionEOF(_))) => return messages,
            _ => {}
        }
    }
    panic!("did not reach the end of {topic} within 30 s");
}

/// Window results written to `topic` as JSON records: per (window start, gender), every count
/// written (more than one is a duplicate).
pub fn written_windows(
    bootstrap: &str,
    topic: &str,
) -> std::collections::BTreeMap<(i64, String), Vec<u64>> {
    let mut windows: std::collections::BTreeMap<(i64, String), Vec<u64>> = Default::default();
    for (_, value) in read_topic(bootstrap, topic) {
        let r: serde_json::Value = serde_json::from_str(&value).unwrap();
        let key = (
            r["window_start"].as_i64().unwrap(),
            r["gender"].as_str().unwrap().to_string(),
        );
        windows
            .entry(key)
            .or_default()
            .push(r["count"].as_u64().unwrap());
    }
    windows
}

/// Waits (at most `limit`) until `topic` holds a window starting at `start`; panics saying
/// `what` did not catch up.
pub fn wait_for_window(bootstrap: &str, topic: &str, start: i64, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while !written_windows(bootstrap, topic)
        .keys()
        .any(|(w, _)| *w == start)
    {
        assert!(Instant::now() < deadline, "{what} did not catch up");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Written windows against a recount: those `required` that are missing, those written with
/// another count (or not expected at all), and how many were written more than once.
pub struct WindowVerdict {
    pub missing: Vec<(i64, String)>,
    pub conflicting: Vec<(i64, String)>,
    pub duplicates: usize,
}

impl WindowVerdict {
    pub fn of(
        expected: &std::collections::BTreeMap<(i64, String), u64>,
        written: &std::collections::BTreeMap<(i64, String), Vec<u64>>,
        required: impl Fn(i64) -> bool,
    ) -> WindowVerdict {
        WindowVerdict {
            missing: expected
                .keys()
                .filter(|(w, _)| required(*w))
                .filter(|k| !written.contains_key(*k))
                .cloned()
                .collect(),
            conflicting: written
                .iter()
                .filter(|(key, counts)| counts.iter().any(|c| expected.get(*key) != Some(c)))
                .map(|(key, _)| key.clone())
                .collect(),
            duplicates: written.values().map(|c| c.len() - 1).sum(),
        }
    }

    /// Panics unless nothing is missing, conflicting or doubled.
    pub fn assert_exact(&self, seed: u64) {
        assert!(
            self.missing.is_empty() && self.conflicting.is_empty() && self.duplicates == 0,
            "seed {seed}: missing {:?}, conflicting {:?}, duplicates {}",
            self.missing,
            self.conflicting,
            self.duplicates
        );
    }
}

/// The loader (tests/fixtures/load_sex.toml: `csv` → topic `sex`, exactly once) at `rate` rows
/// a second, with `extra` arguments, its output and log in `dir` as `<name>.out`/`.log`.
pub fn start_loader(
    dir: &Path,
    bootstrap: &str,
    csv: &Path,
    rate: &str,
    name: &str,
    extra: &[&str],
) -> Background {
    let mut load = weir();
    load.args(["run", "tests/fixtures/load_sex.toml"])
        .args(extra)
        .env("BROKERS", bootstrap)
        .env("CSV", csv)
        .env("RATE", rate);
    Background::start(
        load,
        &dir.join(format!("{name}.out")),
        &dir.join(format!("{name}.log")),
    )
}

/// A seeded xorshift generator; the seed comes from `WEIR_TEST_SEED` or the clock and is printed
/// so a failing run can be replayed.
pub fn seeded() -> (u64, impl FnMut(u64) -> u64) {
    let seed = std::env::var("WEIR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("WEIR_TEST_SEED={seed}");
    let mut state = seed;
    (seed, move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    })
}

/// Creates `topic` with one partition.
pub fn create_topic(bootstrap: &str, topic: &str) {
    create_topic_with(bootstrap, topic, 1);
}

/// Creates `topic` with `partitions` partitions.
pub fn create_topic_with(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

/// A counting pipeline: topic `sex` on `bootstrap` from the earliest record → 1 s window by
/// gender → a `file` sink at `out`.
pub fn count_pipeline(bootstrap: &str, out: &Path) -> String {
    format!(
        r#"
[kafka]
brokers = "{bootstrap}"

[sources.sex]
type = "kafka"
topic = "sex"
fields = ["gender"]
start = "earliest"

[transforms.per_second]
type = "window"
inputs = ["sex"]
size = "1s"
group_by = ["gender"]

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "{}"
"#,
        out.display()
    )
}

/// `weir broker` on a free port requiring SCRAM as `users` (name, password), the passwords in
/// files of `dir`. Returns the process and its address.
pub fn scram_broker(dir: &Path, users: &[(&str, &str)]) -> (Background, String) {
    let port = free_port();
    let mut broker = weir();
    broker
        .args(["broker", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir);
    for (name, password) in users {
        let file = dir.join(format!("{name}.password"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        broker
            .arg("--user")
            .arg(format!("{name}:{}", file.display()));
    }
    let broker = Background::start(broker, &dir.join("broker.out"), &dir.join("broker.log"));
    wait_for_port(port);
    (broker, format!("127.0.0.1:{port}"))
}

/// A scratch directory for a test's broker and members, removed after the test unless
/// WEIR_KEEP_LOGS=1 asks to keep their logs for a look after a failure.
pub struct Scratch {
    _temp: Option<tempfile::TempDir>,
    /// The directory.
    pub path: std::path::PathBuf,
}

impl Drop for Scratch {
    /// A test that fails keeps its directory (the members' logs), and says where.
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(temp) = self._temp.take()
        {
            eprintln!("kept {} for a look at the failure", temp.keep().display());
        }
    }
}

/// A new [`Scratch`] directory.
pub fn scratch() -> Scratch {
    let temp = tempfile::tempdir().unwrap();
    if std::env::var_os("WEIR_KEEP_LOGS").is_some() {
        Scratch {
            path: temp.keep(),
            _temp: None,
        }
    } else {
        Scratch {
            path: temp.path().to_path_buf(),
            _temp: Some(temp),
        }
    }
}
