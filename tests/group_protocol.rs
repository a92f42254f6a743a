//! The embedded broker's consumer-group coordinator on the raw client API (plain rdkafka
//! consumers and a transactional producer, no weir members), on both storage engines where it
//! matters: a leader leaving while the group forms, and Kafka's KIP-447 checks — a stale member's
//! transactional offset commit refused, an offset inside an open transaction not handed out.
//! (weir members sharing partitions under kills and pauses: tests/groups.rs.)

mod common;

use common::kafka::{broker, create_topic_with, scratch};
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

/// The group coordinator on its own (plain rdkafka consumers, no weir members): the member that
/// leads a group leaves while the group is forming again (a second member has just joined). The
/// other must become leader and get every partition. Before the fix the departed member stayed
/// named as leader and the group never formed again (seen in the live churn test of
/// tests/shared_window.rs).
#[test]
fn a_group_whose_leader_leaves_while_it_forms_still_forms() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let scratch = scratch();
    let (_broker, bootstrap) = broker(&scratch.path, "memory://");
    create_topic_with(&bootstrap, "shared", 4);
    let consumer = |name: &str| group_consumer(&bootstrap, "leaving-leader", name);
    let owned = |c: &BaseConsumer| c.assignment().map(|a| a.count()).unwrap_or(0);
    // The first member forms the group alone and leads it.
    let leader = consumer("first");
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned(&leader) < 4 {
        assert!(
            Instant::now() < deadline,
            "the first member never got the partitions"
        );
        leader.poll(Duration::from_millis(100));
    }
    // A second member joins (the group forms again), and the leader leaves at once.
    let second = consumer("second");
    second.poll(Duration::from_millis(300));
    drop(leader); // closes: LeaveGroup
    let deadline = Instant::now() + Duration::from_secs(40);
    while owned(&second) < 4 {
        assert!(
            Instant::now() < deadline,
            "the remaining member never got the partitions ({} of 4)",
            owned(&second)
        );
        second.poll(Duration::from_millis(100));
    }
}

/// A consumer-group member (plain rdkafka consumers) that owns every partition.
fn group_consumer(bootstrap: &str, group: &str, name: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&["shared"]).unwrap();
    consumer
}

/// Runs `test` against a fresh embedded broker of each storage engine, with a topic `shared` of
/// `partitions` partitions; `test` gets the engine's URL and the bootstrap address.
fn on_each_engine(partitions: i32, test: impl Fn(&str, &str)) {
    for engine in ["memory://", "sqlite"] {
        let scratch = scratch();
        let storage = match engine {
            "sqlite" => format!("sqlite://{}", scratch.path.join("broker.db").display()),
            other => other.to_string(),
        };
        let (_broker, bootstrap) = broker(&scratch.path, &storage);
        create_topic_with(&bootstrap, "shared", partitions);
        test(&storage, &bootstrap);
    }
}

fn transactional_producer(bootstrap: &str, id: &str) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(30)).unwrap();
    producer
}

fn offsets_of(partition: i32, offset: i64) -> rdkafka::TopicPartitionList {
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset("shared", partition, rdkafka::Offset::Offset(offset))
        .unwrap();
    list
}

fn partitions_of(consumer: &rdkafka::consumer::BaseConsumer) -> BTreeSet<i32> {
    use rdkafka::consumer::Consumer;
    consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// KIP-447 on the embedded broker, both storage engines: a member that has not heard of a
/// rebalance (its group metadata is from the generation before) cannot commit, inside a
/// transaction, the offset of a partition the group has since given to another member — the
/// broker answers ILLEGAL_GENERATION and the transaction must abort. The same stale member may
/// still commit a partition it kept, and the new owner commits its own.
#[test]
fn a_member_of_an_older_generation_cannot_commit_a_partition_now_read_by_another() {
    use rdkafka::consumer::Consumer;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    on_each_engine(4, |storage, bootstrap| {
        let first = group_consumer(bootstrap, "fencing", "first");
        wait_until(
            "the first member owning all 4 partitions",
            Duration::from_secs(30),
            || {
                first.poll(Duration::from_millis(50));
                partitions_of(&first).len() == 4
            },
        );
        let stale = first.group_metadata().unwrap();
        let second = group_consumer(bootstrap, "fencing", "second");
        wait_until(
            "the two members splitting the partitions",
            Duration::from_secs(60),
            || {
                first.poll(Duration::from_millis(50));
                second.poll(Duration::from_millis(50));
                let (a, b) = (partitions_of(&first), partitions_of(&second));
                a.len() + b.len() == 4 && !a.is_empty() && !b.is_empty() && a.is_disjoint(&b)
            },
        );
        let moved = *partitions_of(&second).first().unwrap();
        let kept = *partitions_of(&first).first().unwrap();
        let producer = transactional_producer(bootstrap, "zombie");

        producer.begin_transaction().unwrap();
        let refused = producer.send_offsets_to_transaction(
            &offsets_of(moved, 17),
            &stale,
            Duration::from_secs(10),
        );
        match &refused {
            Err(KafkaError::Transaction(e)) => {
                assert_eq!(
                    e.code(),
                    RDKafkaErrorCode::IllegalGeneration,
                    "{storage}: {e}"
                );
                assert!(
                    e.txn_requires_abort(),
                    "{storage}: {e} must call for an abort"
                );
            }
            other => panic!("{storage}: a stale member's commit of partition {moved}: {other:?}"),
        }
        producer.abort_transaction(Duration::from_secs(10)).unwrap();

        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(&offsets_of(kept, 5), &stale, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{storage}: partition {kept}, still its own: {e}"));
        producer
            .commit_transaction(Duration::from_secs(10))
            .unwrap();
        producer.begin_transaction().unwrap();
        let current = second.group_metadata().unwrap();
        producer
            .send_offsets_to_transaction(&offsets_of(moved, 9), &current, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{storage}: the new owner's commit: {e}"));
        producer
            .commit_transaction(Duration::from_secs(10))
            .unwrap();

        let mut both = offsets_of(moved, 0);
        both.add_partition("shared", kept);
        let committed = second
            .committed_offsets(both, Duration::from_secs(10))
            .unwrap();
        let offset = |p: i32| committed.find_partition("shared", p).unwrap().offset();
        assert_eq!(offset(moved), rdkafka::Offset::Offset(9), "{storage}");
        assert_eq!(offset(kept), rdkafka::Offset::Offset(5), "{storage}");
    });
}

/// KIP-447's other half: while a transaction that commits a group's offset is open, a
/// read_committed member asking for the committed offset (as one taking the partition over does)
/// is told it is unstable and waits, instead of starting from the offset before and reading the
/// transaction's records again. A read_uncommitted reader is answered at once.
#[test]
fn an_offset_committed_in_an_open_transaction_is_not_handed_out_until_it_ends() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    on_each_engine(1, |storage, bootstrap| {
        let asker = |isolation: &str| -> BaseConsumer {
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("group.id", "stable")
                .set("isolation.level", isolation)
                .create()
                .unwrap()
        };
        let committed = asker("read_committed");
        let uncommitted = asker("read_uncommitted");
        let producer = transactional_producer(bootstrap, "committer");
        producer.begin_transaction().unwrap();
        producer
            .send_offsets_to_transaction(
                &offsets_of(0, 42),
                &committed.group_metadata().unwrap(),
                Duration::from_secs(10),
            )
            .unwrap();
        let ask = |consumer: &BaseConsumer, timeout: Duration| {
            consumer
                .committed_offsets(offsets_of(0, 0), timeout)
                .map(|list| list.find_partition("shared", 0).unwrap().offset())
        };
        assert_eq!(
            ask(&uncommitted, Duration::from_secs(10)).unwrap(),
            rdkafka::Offset::Invalid,
            "{storage}: a read_uncommitted reader gets the offset from before at once"
        );
        let waiting = ask(&committed, Duration::from_secs(3));
        assert!(
            waiting.is_err(),
            "{storage}: a read_committed reader was handed {waiting:?} while the transaction was open"
        );
        producer
            .commit_transaction(Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            ask(&committed, Duration::from_secs(10)).unwrap(),
            rdkafka::Offset::Offset(42),
            "{storage}"
        );
    });
}
