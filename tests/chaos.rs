//! Exactly once through the real binary and the real protocol: the counting job and the loader
//! killed or stopped at random moments and restarted, recounted independently from the CSV file;
//! and Kafka transactions on weir's broker (committed, aborted, abandoned by a dead producer).

mod common;

use common::kafka::{
    WindowVerdict, broker, create_topic, expected_windows, read_topic, scratch, seeded,
    start_loader, wait_for_window, written_windows,
};
use common::*;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SAMPLE: &str = "data/user_log_sample.csv";

/// Topics made by an admin client before any pipeline runs, and weir told not to create topics
/// (`create_topic = false`), as on clusters without topic auto-creation.
const MADE_ELSEWHERE: bool = true;

/// `--set` arguments that turn `create_topic` off for the listed Kafka stages.
fn no_topic_creation(made_elsewhere: bool, stages: &[&str]) -> Vec<String> {
    if !made_elsewhere {
        return Vec::new();
    }
    stages
        .iter()
        .flat_map(|stage| ["--set".to_string(), format!("{stage}.create_topic=false")])
        .collect()
}

fn start_counter(dir: &Path, bootstrap: &str, name: &str, made_elsewhere: bool) -> Background {
    let mut count = weir();
    count
        .args(["run", "tests/fixtures/count_sex.toml"])
        .args(no_topic_creation(
            made_elsewhere,
            &["sources.sex", "sinks.result"],
        ))
        .env("BROKERS", bootstrap)
        .env("GROUP", "chaos")
        .env("RESULT_CODEC", "json");
    Background::start(
        count,
        &dir.join(format!("{name}.out")),
        &dir.join(format!("{name}.log")),
    )
}

/// The counting job on durable broker storage, stopped with `signal` at `stops` random moments
/// while the log is loaded and restarted each time, then run until its last closed window is out.
/// Topic `result`, read with read_committed, must hold every window's true count (recounted from
/// the CSV file, not taken from the job) exactly once. With `made_elsewhere`, topics `sex` and
/// `result` are created by an admin client first and no stage may create topics.
fn chaos(signal: &str, stops: usize, made_elsewhere: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "sqlite://broker.db");
    if made_elsewhere {
        create_topic(&bootstrap, "sex");
        create_topic(&bootstrap, "result");
    }
    let (seed, mut random) = seeded();
    let csv = repo().join(SAMPLE);
    let mut load = weir();
    load.args(["run", "tests/fixtures/load_sex.toml"])
        .args(no_topic_creation(made_elsewhere, &["sinks.sex"]))
        .env("BROKERS", &bootstrap)
        .env("CSV", &csv)
        .env("RATE", "500");
    let loader = Background::start(
        load,
        &dir.path().join("load.out"),
        &dir.path().join("load.log"),
    );
    for n in 0..stops {
        let counter = start_counter(dir.path(), &bootstrap, &format!("run{n}"), made_elsewhere);
        std::thread::sleep(Duration::from_millis(300 + random(1500)));
        let (status, log) = counter.signal(signal);
        if signal == "TERM" {
            assert!(status.success(), "seed {seed}, run {n}: {log}");
        }
    }
    let (status, log) = loader.wait(Duration::from_secs(120));
    assert!(status.success(), "{log}");

    let expected_all = expected_windows(&csv);
    // The last window stays open: no later record closes it.
    let last = expected_all.keys().map(|(w, _)| *w).max().unwrap();
    let expected: BTreeMap<_, _> = expected_all
        .into_iter()
        .filter(|((w, _), _)| *w < last)
        .collect();
    let last_closed = last - 1000;
    let last_run = start_counter(dir.path(), &bootstrap, "last", made_elsewhere);
    wait_for_window(
        &bootstrap,
        "result",
        last_closed,
        Duration::from_secs(90),
        &format!("seed {seed}: the last run"),
    );
    let (status, log) = last_run.signal("TERM");
    assert!(status.success(), "{log}");

    let written = written_windows(&bootstrap, "result");
    let verdict = WindowVerdict::of(&expected, &written, |_| true);
    let complete = expected
        .iter()
        .filter(|(key, count)| written.get(*key).is_some_and(|c| c == &vec![**count]))
        .count();
    eprintln!(
        "chaos ({signal} x {stops}, topics made elsewhere: {made_elsewhere}, seed {seed}): expected {} windows, complete {complete}, \
         missing {}, conflicting {}, duplicates {}",
        expected.len(),
        verdict.missing.len(),
        verdict.conflicting.len(),
        verdict.duplicates
    );
    verdict.assert_exact(seed);
    assert_eq!(complete, expected.len());
}

#[test]
fn the_loader_killed_at_random_moments_puts_each_row_into_sex_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "sqlite://broker.db");
    let (seed, mut random) = seeded();
    let csv = repo().join(SAMPLE);
    let loader = |name: &str| start_loader(dir.path(), &bootstrap, &csv, "2000", name, &[]);
    for n in 0..5 {
        let run = loader(&format!("load{n}"));
        std::thread::sleep(Duration::from_millis(400 + random(1500)));
        run.signal("KILL");
    }
    let (status, log) = loader("last").wait(Duration::from_secs(60));
    assert!(status.success(), "{log}");
    // Every row's gender digit, once, in file order: recounted from the file itself.
    let genders = genders_in_order(&csv);
    let sex: Vec<String> = read_topic(&bootstrap, "sex")
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    assert_eq!(sex.len(), genders.len(), "seed {seed}: {log}");
    assert!(
        sex == genders,
        "seed {seed}: `sex` differs from the file's rows"
    );
}

#[test]
fn killed_20_times_with_sigkill_each_window_is_written_once_with_its_true_count() {
    chaos("KILL", 20, !MADE_ELSEWHERE);
}

#[test]
fn stopped_20_times_with_sigterm_each_window_is_written_once_with_its_true_count() {
    chaos("TERM", 20, !MADE_ELSEWHERE);
}

/// As on a cluster without topic auto-creation: the topics exist (an admin client made them),
/// every stage has `create_topic = false`, and exactly once still commits — weir creates its own
/// progress topic — through 6 SIGKILLs.
#[test]
fn with_topics_made_elsewhere_and_creation_off_killed_6_times_each_window_is_written_once() {
    chaos("KILL", 6, MADE_ELSEWHERE);
}

#[test]
fn transactions_committed_aborted_or_left_open_by_a_dead_producer_read_committed_sees_each_committed_record_once()
 {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), "memory://");
    create_topic(&bootstrap, "txn");
    // A random sequence of transactions, committed or aborted; the seed is printed for replay.
    let (seed, mut next) = seeded();
    let transactional = || -> ThreadedProducer<DefaultProducerContext> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", "weir-test-txn")
            .set("enable.idempotence", "true")
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer
    };
    let mut producer = transactional();
    let mut committed = Vec::new();
    let mut aborted = 0;
    for txn in 0..12 {
        producer.begin_transaction().unwrap();
        let commit = next(3) != 0;
        let mut values = Vec::new();
        for i in 0..1 + next(40) {
            let value = format!("t{txn}-m{i}-{}", if commit { "commit" } else { "abort" });
            producer
                .send(BaseRecord::<(), _>::to("txn").payload(&value))
                .map_err(|(e, _)| e)
                .unwrap();
            values.push(value);
        }
        // Aborted records are on the broker before the abort (librdkafka would otherwise drop
        // them unsent), so only the broker's read_committed answer can hide them.
        producer.flush(Duration::from_secs(30)).unwrap();
        if commit {
            producer
                .commit_transaction(Duration::from_secs(30))
                .unwrap();
            committed.extend(values);
        } else if next(2) == 0 {
            producer.abort_transaction(Duration::from_secs(30)).unwrap();
            aborted += values.len();
        } else {
            // A producer that dies mid-transaction: its successor with the same transactional
            // id fences it, and the broker aborts what it left open.
            std::mem::forget(producer);
            producer = transactional();
            aborted += values.len();
        }
    }
    // librdkafka's consumers read with isolation.level = read_committed unless told otherwise.
    let seen: Vec<String> = read_topic(&bootstrap, "txn")
        .into_iter()
        .map(|(_, value)| value)
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &seen {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let from_aborted: Vec<&String> = seen.iter().filter(|v| v.ends_with("abort")).collect();
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<&String> = committed
        .iter()
        .filter(|v| !counts.contains_key(v.as_str()))
        .collect();
    assert!(
        from_aborted.is_empty() && duplicates.is_empty() && missing.is_empty(),
        "seed {seed}: {} committed, {aborted} aborted; read_committed saw {} records: \
         {} from aborted transactions {from_aborted:?}, duplicates {duplicates:?}, missing {missing:?}",
        committed.len(),
        seen.len(),
        from_aborted.len()
    );
    assert_eq!(
        seen, committed,
        "seed {seed}: committed records in the order they were sent"
    );
}

#[test]
fn a_transaction_left_open_by_a_dead_producer_is_aborted_after_its_timeout_in_memory() {
    dead_producers_transaction_is_aborted("memory://");
}

#[test]
fn a_transaction_left_open_by_a_dead_producer_is_aborted_after_its_timeout_in_sqlite() {
    dead_producers_transaction_is_aborted("sqlite://broker.db");
}

fn dead_producers_transaction_is_aborted(storage: &str) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), storage);
    create_topic(&bootstrap, "txn");
    let transactional = |id: &str| -> ThreadedProducer<DefaultProducerContext> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "2000")
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(30)).unwrap();
        producer
    };
    let send = |producer: &ThreadedProducer<DefaultProducerContext>, value: &str| {
        producer
            .send(BaseRecord::<(), _>::to("txn").payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    };
    // A producer dies mid-transaction and nobody takes its transactional id over.
    let dead = transactional("weir-test-dead");
    dead.begin_transaction().unwrap();
    for i in 0..10 {
        send(&dead, &format!("open-{i}"));
    }
    dead.flush(Duration::from_secs(30)).unwrap();
    std::mem::forget(dead);
    // Another producer commits after it: read_committed readers see its records only once the
    // open transaction before them is over.
    let live = transactional("weir-test-live");
    live.begin_transaction().unwrap();
    let after: Vec<String> = (0..5).map(|i| format!("after-{i}")).collect();
    for value in &after {
        send(&live, value);
    }
    live.commit_transaction(Duration::from_secs(30)).unwrap();
    let committed_at = Instant::now();
    let deadline = committed_at + Duration::from_secs(20);
    let seen = loop {
        let seen: Vec<String> = read_topic(&bootstrap, "txn")
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        // (The sqlite engine's read_committed answers do not stop at an open transaction: its
        // records show until the abort marks them.)
        if seen == after || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        seen,
        after,
        "read_committed must see exactly the committed records, once the dead producer's \
         transaction (timeout 2 s) is aborted; waited {:?}",
        committed_at.elapsed()
    );
    println!(
        "{storage}: the dead producer's transaction was aborted and the committed records \
         visible after {:?}",
        committed_at.elapsed()
    );
}

/// A transaction's records stay hidden from read_committed readers until it commits: a
/// transactional producer writes and flushes 100 records; a read_committed reader polling for
/// 3 s gets none of them (the partition's last stable offset stays before them) and, once the
/// producer commits, all 100.
fn an_open_transaction_is_invisible_to_read_committed_readers(storage: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let dir = tempfile::tempdir().unwrap();
    let (_broker, bootstrap) = broker(dir.path(), storage);
    create_topic(&bootstrap, "open");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", "weir-test-open")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer.begin_transaction().unwrap();
    for i in 0..100 {
        producer
            .send(BaseRecord::<(), _>::to("open").payload(&format!("m{i}")))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    // Assigned, not subscribed: no group join to wait for, so the 3 s below are all reading.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "open-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset("open", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let read_for = |limit: Duration, want: usize| {
        let mut values = Vec::new();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline && values.len() < want {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        values
    };
    let before = read_for(Duration::from_secs(3), 100);
    assert!(
        before.is_empty(),
        "{storage}: read_committed saw {} records of an open transaction",
        before.len()
    );
    producer
        .commit_transaction(Duration::from_secs(30))
        .unwrap();
    let after = read_for(Duration::from_secs(30), 100);
    assert_eq!(after.len(), 100, "{storage}: the committed records");
}

#[test]
fn an_open_transaction_is_invisible_to_read_committed_readers_in_memory() {
    an_open_transaction_is_invisible_to_read_committed_readers("memory://");
}

#[test]
fn an_open_transaction_is_invisible_to_read_committed_readers_in_sqlite() {
    an_open_transaction_is_invisible_to_read_committed_readers("sqlite://broker.db");
}

/// The README's promise for the shipped job on a durable broker: stopped with Ctrl-C twice and
/// run again, it goes on where it stopped. Topic `result` (read back with read_committed from the
/// sqlite file) holds every window once, in order, each with its true count: recounted from the
/// CSV file as ten rows per event second. So does a `file` sink added to the job: each resumed
/// run appends to what the runs before wrote (before, it emptied the file on every start). The rows a resumed run reads again get the times they
/// had (the replay's first event time is kept with its progress), so the window a stop left open
/// is completed, not cut short.
#[test]
fn the_shipped_job_on_sqlite_stopped_with_ctrl_c_resumes_with_the_same_windows() {
    let dir = scratch();
    let (seed, mut random) = seeded();
    let listen = format!("127.0.0.1:{}", free_port());
    let dashboard = format!("127.0.0.1:{}", free_port());
    let storage = format!("sqlite://{}", dir.path.join("weir-broker.db").display());
    let windows_file = dir.path.join("windows.txt");
    let file_sink = format!(
        "sinks.file={{ type = \"file\", inputs = [\"per_second\"], format = \"seed\", path = \"{}\" }}",
        windows_file.display()
    );
    let shipped_job = |name: &str, rate: &str| {
        let mut job = weir();
        job.args(["run", "pipelines/shopping_gender.toml"])
            .args(["--set", &format!("kafka.embedded.storage=\"{storage}\"")])
            .args(["--set", &format!("sources.user_log.rate={rate}")])
            .args(["--set", &file_sink])
            .env("WEIR_KAFKA_LISTEN", &listen)
            .env("WEIR_DASHBOARD", &dashboard);
        Background::start(
            job,
            &dir.path.join(format!("{name}.out")),
            &dir.path.join(format!("{name}.log")),
        )
    };
    for n in 0..2 {
        let run = shipped_job(&format!("run{n}"), "500");
        std::thread::sleep(Duration::from_millis(2500 + random(2000)));
        let (status, log) = run.signal("INT");
        assert!(status.success(), "seed {seed}, run {n}: {log}");
    }
    let (status, log) = shipped_job("last", "\"max\"").wait(Duration::from_secs(120));
    assert!(status.success(), "seed {seed}: {log}");

    let (_broker, bootstrap) = broker(&dir.path, &storage);
    let written: Vec<BTreeMap<String, u64>> = read_topic(&bootstrap, "result")
        .iter()
        .map(|(_, value)| seed_counts(value))
        .collect();
    let text = std::fs::read_to_string(repo().join(SAMPLE)).unwrap();
    let mut expected: Vec<BTreeMap<String, u64>> = Vec::new();
    for (n, line) in text.lines().skip(1).enumerate() {
        if n % 10 == 0 {
            expected.push(BTreeMap::new());
        }
        let gender = line.split(',').nth(9).unwrap().to_string();
        *expected.last_mut().unwrap().entry(gender).or_insert(0) += 1;
    }
    let first_wrong = written
        .iter()
        .zip(&expected)
        .position(|(w, e)| w != e)
        .map(|i| (i, &written[i], &expected[i]));
    eprintln!(
        "the shipped job on sqlite, stopped twice (seed {seed}): {} windows written, {} expected, first wrong {first_wrong:?}",
        written.len(),
        expected.len()
    );
    assert_eq!(first_wrong, None, "seed {seed}");
    assert_eq!(written.len(), expected.len(), "seed {seed}");
    let in_file: Vec<BTreeMap<String, u64>> = std::fs::read_to_string(&windows_file)
        .unwrap()
        .lines()
        .map(seed_counts)
        .collect();
    assert!(
        in_file == expected,
        "seed {seed}: the file sink holds {} windows, {} expected",
        in_file.len(),
        expected.len()
    );
}

/// A `file` sink beside an exactly-once csv replay keeps what earlier runs wrote: the loader,
/// with a file sink added on its rows, stopped with Ctrl-C twice and run to the end, leaves every
/// row in the file once, in file order (before, a resumed csv source did not count as resuming,
/// so each run emptied the file and only the last run's rows stayed).
#[test]
fn a_file_beside_an_exactly_once_csv_replay_keeps_each_row_once_across_ctrl_c() {
    let dir = scratch();
    let (_broker, bootstrap) = broker(&dir.path, "sqlite://broker.db");
    let (seed, mut random) = seeded();
    let csv = repo().join(SAMPLE);
    let rows_file = dir.path.join("rows.jsonl");
    let file_sink = format!(
        "sinks.copy={{ type = \"file\", inputs = [\"user_log\"], path = \"{}\" }}",
        rows_file.display()
    );
    let loader = |name: &str| {
        start_loader(
            &dir.path,
            &bootstrap,
            &csv,
            "2000",
            name,
            &["--set", &file_sink],
        )
    };
    for n in 0..2 {
        let run = loader(&format!("load{n}"));
        std::thread::sleep(Duration::from_millis(1500 + random(1500)));
        let (status, log) = run.signal("INT");
        assert!(status.success(), "seed {seed}, run {n}: {log}");
    }
    let (status, log) = loader("last").wait(Duration::from_secs(60));
    assert!(status.success(), "seed {seed}: {log}");
    let genders = genders_in_order(&csv);
    let in_file: Vec<String> = std::fs::read_to_string(&rows_file)
        .unwrap()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["gender"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(in_file.len(), genders.len(), "seed {seed}");
    assert!(
        in_file == genders,
        "seed {seed}: the file's rows differ from the CSV file's"
    );
}

/// A window as the tutorial's codec writes it, `[{"0":1},{"1":5},{"2":4}]`, as counts by gender.
fn seed_counts(value: &str) -> BTreeMap<String, u64> {
    let entries: Vec<BTreeMap<String, u64>> = serde_json::from_str(value).unwrap();
    entries.into_iter().flatten().collect()
}
