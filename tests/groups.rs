//! Consumer groups on the real protocol: several `weir run` processes of one pipeline file share a
//! topic's partitions (`assignment = "group"`), one is killed with SIGKILL mid-run, another joins
//! later, and the output topic, read independently, must hold every input record (at least once;
//! duplicates are counted and reported, a record changed on the way is a failure; exactly once:
//! none). A member paused past its session (a zombie) must be fenced and carry on exactly once.
//! (The coordinator and the KIP-447 checks on the raw client API: tests/group_protocol.rs.)

mod common;

use common::Background;
use common::kafka::{broker, create_topic_with, member, reader, scratch, seeded};
use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

const INPUT_PARTITIONS: i32 = 6;

/// One group of `weir run` members at a time (see `members_share_partitions_and_lose_nothing`).
static ONE_GROUP_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// The partitions a member's log says it holds now: every "reads" line adds, every "handed
/// over" line removes.
fn held(log: &str) -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    for line in log.lines() {
        let list = |marker: &str| {
            line.split_once(marker)
                .map(|(_, rest)| rest.split(", ").map(str::to_string).collect::<Vec<_>>())
        };
        if let Some(granted) = list(": reads ") {
            held.extend(granted);
        } else if let Some(revoked) = list(": handed over ") {
            for partition in revoked {
                held.remove(&partition);
            }
        }
    }
    held
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// Reads `topic` (one partition) from the beginning until `expected` distinct values have come
/// or `limit` passed; returns how often each value came.
fn read_copies(
    bootstrap: &str,
    topic: &str,
    expected: usize,
    limit: Duration,
) -> HashMap<String, u32> {
    let consumer = reader(bootstrap, "independent-reader", topic, &[]);
    let mut seen: HashMap<String, u32> = HashMap::new();
    let mut deadline = Instant::now() + limit;
    let mut all_seen = false;
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            *seen.entry(value).or_default() += 1;
        }
        if !all_seen && seen.len() >= expected {
            // Copies written after the last new value still count: read on a little.
            all_seen = true;
            deadline = deadline.min(Instant::now() + Duration::from_secs(3));
        }
    }
    seen
}

#[test]
fn members_share_partitions_and_lose_nothing_when_one_leaves_and_another_joins() {
    members_share_partitions_and_lose_nothing("TERM", Guarantee::AtLeastOnce);
}

/// The crashed member's partitions move once its session (6 s) times out; this needs the group
/// coordinator patches in vendor/README.md.
#[test]
fn members_share_partitions_and_lose_nothing_when_one_is_killed_and_another_joins() {
    members_share_partitions_and_lose_nothing("KILL", Guarantee::AtLeastOnce);
}

/// Exactly once across a crash and two rebalances: each member writes in its own transactions,
/// the dead member's open one is aborted by the broker after its timeout, and read_committed
/// readers see every record once.
#[test]
fn members_writing_exactly_once_copy_each_record_once_when_one_is_killed_and_another_joins() {
    members_share_partitions_and_lose_nothing("KILL", Guarantee::ExactlyOnce);
}

/// The members' pipeline: topic `events` copied to `copied` by a consumer group, with `guarantee`.
fn mirror_pipeline(dir: &Path, bootstrap: &str, guarantee: Guarantee) -> std::path::PathBuf {
    let pipeline = dir.join("mirror.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[kafka]
brokers = "{bootstrap}"
guarantee = "{}"

[sources.events]
type = "kafka"
topic = "events"
assignment = "group"
group_id = "mirror"
create_topic = false

[sinks.copied]
type = "kafka"
inputs = ["events"]
topic = "copied"
create_topic = false
# Records wait in the producer before they are sent, so a member killed mid-run always has
# records read and not yet delivered: committing them early would lose them.
options = {{ "linger.ms" = 300 }}
"#,
            match guarantee {
                Guarantee::AtLeastOnce => "at-least-once",
                Guarantee::ExactlyOnce => "exactly-once",
            }
        ),
    )
    .unwrap();
    pipeline
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Guarantee {
    AtLeastOnce,
    ExactlyOnce,
}

/// Three members share a 6-partition topic while it is written; one is stopped with `signal` at a
/// random moment, a fourth member joins at a random later moment (for SIGKILL, often while the
/// dead member's session is still running), the stopped member's partitions must move to the
/// others, and the output must hold every input record.
fn members_share_partitions_and_lose_nothing(signal: &str, guarantee: Guarantee) {
    // One group of members at a time: each test is one cluster (a broker, four members, a
    // writer) on the machine's two cores; three at once starved each other's heartbeats. The
    // SIGKILL tests lost or doubled records then (2026-12-07: 9,901 missing once, 3,464 copied
    // twice once, in 6 full-suite runs), which the broker's fetch explains: while a partition
    // was written, a read resuming inside a batch was answered records twice or past a batch
    // (fixed since; docs/kafka.md, tests/kafka.rs).
    let _turn = ONE_GROUP_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (seed, mut random) = seeded();
    let scratch = scratch(); // WEIR_KEEP_LOGS=1 keeps the members' logs
    let dir = &scratch.path;
    println!("members' logs in {}", dir.display());
    let (_broker, bootstrap) = broker(dir, "memory://");
    create_topic_with(&bootstrap, "events", INPUT_PARTITIONS);
    create_topic_with(&bootstrap, "copied", 1);
    let pipeline = mirror_pipeline(dir, &bootstrap, guarantee);

    let mut members: Vec<Option<Background>> = (0..3)
        .map(|i| Some(member(dir, &pipeline, &format!("member{i}"))))
        .collect();
    let names = |i: usize| format!("member{i}");
    wait_until(
        "three members sharing the 6 partitions",
        Duration::from_secs(60),
        || {
            let holdings: Vec<usize> = (0..3)
                .map(|i| held(&log_of(dir, &names(i))).len())
                .collect();
            holdings.iter().all(|&n| n > 0) && holdings.iter().sum::<usize>() == 6
        },
    );

    // Produce while the group runs: every value is unique (`<seq>:<random>`), so the output
    // topic can be checked value by value.
    let total: usize = 200_000;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let kill_at = total / 4 + random(total as u64 / 4) as usize;
    let join_at = total / 2 + random(total as u64 / 4) as usize;
    let victim = random(3) as usize;
    let mut values = Vec::with_capacity(total);
    let mut killed: Option<(Instant, BTreeSet<String>)> = None;
    let mut taken_over_after: Option<Duration> = None;
    let survivors: Vec<usize> = (0..4).filter(|&i| i != victim).collect();
    let orphans_taken = |orphaned: &BTreeSet<String>| {
        let now_held: BTreeSet<String> = survivors
            .iter()
            .flat_map(|&i| held(&log_of(dir, &names(i))))
            .collect();
        orphaned.iter().all(|p| now_held.contains(p))
    };
    for seq in 0..total {
        let value = format!("{seq}:{}", random(1_000_000));
        let key = seq.to_string();
        loop {
            match producer.send(BaseRecord::to("events").key(&key).payload(&value)) {
                Ok(()) => break,
                Err((_, _)) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        values.push(value);
        if seq % 1000 == 999 {
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(40)); // ~25 k events/s: the run lasts ~8 s
            if let Some((at, orphaned)) = &killed
                && taken_over_after.is_none()
                && orphans_taken(orphaned)
            {
                taken_over_after = Some(at.elapsed());
            }
        }
        if seq == kill_at {
            let before = held(&log_of(dir, &names(victim)));
            let (status, log) = members[victim].take().unwrap().signal(signal);
            if signal == "TERM" {
                assert!(status.success(), "member{victim} failed on SIGTERM:\n{log}");
            }
            killed = Some((Instant::now(), before));
        }
        if seq == join_at {
            members.push(Some(member(dir, &pipeline, "member3")));
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let (killed_at, orphaned) = killed.unwrap();
    if taken_over_after.is_none() {
        wait_until(
            "the stopped member's partitions taken over",
            Duration::from_secs(60),
            || orphans_taken(&orphaned),
        );
        taken_over_after = Some(killed_at.elapsed());
    }
    wait_until(
        "the member that joined late reading its share",
        Duration::from_secs(60),
        || !held(&log_of(dir, "member3")).is_empty(),
    );
    println!(
        "seed {seed}: stopped member{victim} (SIG{signal}) holding {orphaned:?}; the others took \
         them over {:.1} s after the signal",
        taken_over_after.unwrap().as_secs_f64()
    );

    let copies = read_copies(&bootstrap, "copied", total, Duration::from_secs(120));
    let expected: BTreeSet<&String> = values.iter().collect();
    let missing: Vec<&&String> = expected
        .iter()
        .filter(|v| !copies.contains_key(**v))
        .collect();
    let foreign: Vec<&String> = copies.keys().filter(|v| !expected.contains(v)).collect();
    let duplicates: u32 = copies.values().map(|n| n - 1).sum();
    println!(
        "{total} events: {} missing, {} not among the input, {duplicates} duplicates",
        missing.len(),
        foreign.len()
    );
    assert!(
        missing.is_empty(),
        "{} events never reached the output, e.g. {:?}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>()
    );
    assert!(foreign.is_empty(), "values changed on the way: {foreign:?}");
    if guarantee == Guarantee::ExactlyOnce {
        let mut twice: Vec<u64> = copies
            .iter()
            .filter(|(_, n)| **n > 1)
            .filter_map(|(v, _)| v.split(':').next()?.parse().ok())
            .collect();
        twice.sort_unstable();
        assert_eq!(
            duplicates,
            0,
            "seed {seed}: exactly once wrote records twice: sequence numbers {:?} … {:?} (killed \
             at {kill_at}, joined at {join_at})",
            twice.first(),
            twice.last()
        );
    }
    // The live members settle on a split of every partition (a rebalance may still be going on
    // when the last record arrives).
    let holdings = || -> Vec<BTreeSet<String>> {
        survivors
            .iter()
            .map(|&i| held(&log_of(dir, &names(i))))
            .collect()
    };
    let split = |holdings: &[BTreeSet<String>]| {
        let shares: usize = holdings.iter().map(BTreeSet::len).sum();
        let all: BTreeSet<&String> = holdings.iter().flatten().collect();
        shares == INPUT_PARTITIONS as usize && all.len() == shares
    };
    let settle = Instant::now();
    while !split(&holdings()) {
        assert!(
            settle.elapsed() < Duration::from_secs(30),
            "the live members did not settle on a split of the {INPUT_PARTITIONS} partitions: \
             {:?}",
            holdings()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("at the end the live members read {:?}", holdings());

    // The live members stop cleanly on SIGTERM, leaving the group.
    for (i, m) in members.into_iter().enumerate() {
        if let Some(m) = m {
            let (status, log) = m.signal("TERM");
            assert!(status.success(), "member{i} failed on SIGTERM:\n{log}");
        }
    }
}

/// A zombie: one of two exactly-once members is paused (SIGSTOP) past its session timeout while
/// the input is written, so the group gives its partitions to the other; then it is let go on
/// (SIGCONT) with a transaction open under the old generation. The broker must refuse that
/// transaction's offsets, the member must abort it and carry on once the group grants it
/// partitions again, and an independent reader must find every input record exactly once.
#[test]
#[ignore = "flaky in the full suite (2026-12-07: once in three runs the paused member was not reading again within 60 s, cause not found yet); run with --ignored: 6 of 6 alone since its last fix"]
fn a_member_paused_past_its_session_is_fenced_and_goes_on_exactly_once() {
    let _turn = ONE_GROUP_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (seed, mut random) = seeded();
    let scratch = scratch();
    let dir = &scratch.path;
    let (_broker, bootstrap) = broker(dir, "memory://");
    create_topic_with(&bootstrap, "events", INPUT_PARTITIONS);
    create_topic_with(&bootstrap, "copied", 1);
    let pipeline = mirror_pipeline(dir, &bootstrap, Guarantee::ExactlyOnce);
    // The pause (session timeout, then a rebalance: 6 to ~20 s) stays within the transaction
    // and delivery timeouts, so the broker does not abort the paused member's transaction by
    // itself first and its unsent messages do not time out: a member paused past those ends its
    // run instead (docs/kafka.md), which is not what this test is about.
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        r#"options = { "linger.ms" = 300 }"#,
        r#"options = { "linger.ms" = 300, "transaction.timeout.ms" = 60000, "delivery.timeout.ms" = 60000 }"#,
    );
    std::fs::write(&pipeline, text).unwrap();
    let mut members: Vec<Background> = (0..2)
        .map(|i| member(dir, &pipeline, &format!("member{i}")))
        .collect();
    wait_until(
        "two members sharing the 6 partitions",
        Duration::from_secs(60),
        || {
            let a = held(&log_of(dir, "member0"));
            let b = held(&log_of(dir, "member1"));
            !a.is_empty() && !b.is_empty() && a.len() + b.len() == 6
        },
    );
    let victim = random(2) as usize;
    let total: usize = 150_000;
    let writer = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let producer: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .unwrap();
            let mut values = Vec::with_capacity(total);
            for seq in 0..total {
                let value = format!("{seq}:{seed}");
                let key = seq.to_string();
                while producer
                    .send(BaseRecord::to("events").key(&key).payload(&value))
                    .is_err()
                {
                    producer.poll(Duration::from_millis(10));
                }
                values.push(value);
                if seq % 1000 == 999 {
                    producer.poll(Duration::ZERO);
                    std::thread::sleep(Duration::from_millis(80)); // ~12 k events/s: ~12 s
                }
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            values
        })
    };
    std::thread::sleep(Duration::from_millis(2000 + random(1000)));
    let pid = members[victim].child.id().to_string();
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([format!("-{name}"), pid.clone()])
            .status()
            .unwrap();
    };
    signal("STOP");
    let other = format!("member{}", 1 - victim);
    wait_until(
        "the other member taking every partition",
        Duration::from_secs(40),
        || held(&log_of(dir, &other)).len() == 6,
    );
    signal("CONT");
    let values = writer.join().unwrap();
    let victim_log = format!("member{victim}");
    wait_until(
        "the paused member reading again",
        Duration::from_secs(60),
        || {
            let log = log_of(dir, &victim_log);
            let regranted = log.rfind(": reads ");
            let woke = log
                .rfind("refused this member's offsets")
                .or(log.rfind("lost "));
            matches!((regranted, woke), (Some(r), Some(w)) if r > w)
        },
    );
    let fenced = log_of(dir, &victim_log).contains("refused this member's offsets");
    let copies = read_copies(&bootstrap, "copied", total, Duration::from_secs(120));
    let missing = values.iter().filter(|v| !copies.contains_key(*v)).count();
    let duplicates: u32 = copies.values().map(|n| n - 1).sum();
    println!(
        "seed {seed}: member{victim} paused; fenced on waking: {fenced}; {total} events: \
         {missing} missing, {duplicates} duplicates"
    );
    assert_eq!(missing, 0, "seed {seed}: records never reached the output");
    assert_eq!(duplicates, 0, "seed {seed}: records written twice");
    assert_eq!(
        copies.len(),
        total,
        "seed {seed}: values changed on the way"
    );
    for (i, m) in members.drain(..).enumerate() {
        let (status, log) = m.signal("TERM");
        assert!(status.success(), "member{i} failed on SIGTERM:\n{log}");
    }
}
