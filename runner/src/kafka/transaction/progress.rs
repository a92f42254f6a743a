//! The progress topic's records and reading them back in bounded time.
//!
//! Each commit writes the marks that moved (key = stage, value = how far it had emitted), so the
//! topic grows by a record per moving stage per commit: after a month of 200 ms commits, millions
//! of records. Reading them all at every start and every group grant would take minutes, so a
//! writer also commits, now and then, a *snapshot*: one record (key [`SNAPSHOT_KEY`]) holding every
//! mark it knows, and how far back that knowledge reaches ([`Covers`]). A reader starts at the
//! end of the topic and reads back in growing chunks only until it holds a snapshot that covers
//! everything before the chunks it has read; marks are merged by taking the furthest, so a
//! snapshot plus the records after it gives what reading the whole topic would.

use crate::kafka::KafkaError;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as ClientError;
use rdkafka::message::Message as _;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The key of a snapshot record (not a possible stage key: component ids have no `:`).
pub(super) const SNAPSHOT_KEY: &str = "weir:snapshot";

/// The fewest mark records written between two snapshots (more when a snapshot is larger, so a
/// snapshot never costs more than the records it spares a reader).
const SNAPSHOT_EVERY: usize = 100;

/// Records read in the first chunk from the end; each further chunk is twice as long.
const FIRST_CHUNK: i64 = 256;

/// How far back a snapshot's knowledge reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Covers {
    /// Every mark committed before the snapshot itself: its writer is the only one writing the
    /// topic (it fenced every earlier producer of its id before reading).
    Everything,
    /// Every mark committed at offsets below this one (a consumer-group member: the others
    /// write the topic too, and this is where its last read ended).
    Below(i64),
}

/// The committed marks as one reading found them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct ReadMarks {
    /// The furthest mark of each stage.
    pub marks: BTreeMap<String, i64>,
    /// Every mark committed below this offset of the progress topic is in `marks`.
    pub complete_below: i64,
    /// Records read to find them (for the log and the benchmark).
    pub records_read: u64,
}

/// What a writer knows of the committed marks, and when it owes the topic a snapshot.
#[derive(Debug)]
pub(super) struct MarkBook {
    known: BTreeMap<String, i64>,
    covers: Covers,
    /// Mark records committed since the last snapshot (a fresh book owes one at once).
    since_snapshot: usize,
}

impl MarkBook {
    /// A book starting from what a reading found; `sole_writer` when no other producer writes
    /// the topic.
    pub fn new(read: &ReadMarks, sole_writer: bool) -> Self {
        MarkBook {
            known: read.marks.clone(),
            covers: if sole_writer {
                Covers::Everything
            } else {
                Covers::Below(read.complete_below)
            },
            since_snapshot: usize::MAX,
        }
    }

    /// A book for a run that starts over: its first snapshot replaces every earlier mark.
    pub fn starting_over() -> Self {
        Self::new(&ReadMarks::default(), true)
    }

    /// The marks known (committed by anyone up to the last reading, or by this writer).
    #[cfg(test)]
    pub fn known(&self) -> &BTreeMap<String, i64> {
        &self.known
    }

    /// Takes in a later reading (a group member granted partitions again).
    pub fn reread(&mut self, read: &ReadMarks) {
        merge(
            &mut self.known,
            read.marks.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        if let Covers::Below(below) = &mut self.covers {
            *below = (*below).max(read.complete_below);
        }
    }

    /// The snapshot record's value to write with a transaction carrying `marks`, if one is due.
    pub fn snapshot_with<'a>(
        &self,
        marks: impl Iterator<Item = (&'a str, i64)> + Clone,
    ) -> Option<String> {
        let due = self.since_snapshot.saturating_add(marks.clone().count())
            >= SNAPSHOT_EVERY.max(self.known.len());
        if !due {
            return None;
        }
        let mut all = self.known.clone();
        merge(&mut all, marks);
        Some(encode_snapshot(self.covers, &all))
    }

    /// The transaction carrying `marks` (and a snapshot, if `snapshotted`) committed.
    pub fn committed<'a>(
        &mut self,
        marks: impl Iterator<Item = (&'a str, i64)>,
        snapshotted: bool,
    ) {
        let before = self.known.len();
        let count = marks
            .inspect(|&(stage, through)| {
                let at = self.known.entry(stage.to_string()).or_insert(through);
                *at = (*at).max(through);
            })
            .count();
        debug_assert!(self.known.len() >= before);
        self.since_snapshot = if snapshotted {
            0
        } else {
            self.since_snapshot.saturating_add(count)
        };
    }
}

fn merge<'a>(into: &mut BTreeMap<String, i64>, marks: impl Iterator<Item = (&'a str, i64)>) {
    for (stage, through) in marks {
        let at = into.entry(stage.to_string()).or_insert(through);
        *at = (*at).max(through);
    }
}

/// A snapshot's value: a first line `covers everything` or `covers below <offset>`, then a line
/// `<through> <stage>` per mark.
pub(super) fn encode_snapshot(covers: Covers, marks: &BTreeMap<String, i64>) -> String {
    let mut text = match covers {
        Covers::Everything => "covers everything\n".to_string(),
        Covers::Below(offset) => format!("covers below {offset}\n"),
    };
    for (stage, through) in marks {
        text.push_str(&format!("{through} {stage}\n"));
    }
    text
}

/// The inverse of [`encode_snapshot`]; `None` for anything else.
pub(super) fn decode_snapshot(text: &str) -> Option<(Covers, Vec<(String, i64)>)> {
    let mut lines = text.lines();
    let covers = match lines.next()? {
        "covers everything" => Covers::Everything,
        line => Covers::Below(line.strip_prefix("covers below ")?.parse().ok()?),
    };
    let marks = lines
        .map(|line| {
            let (through, stage) = line.split_once(' ')?;
            Some((stage.to_string(), through.parse().ok()?))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((covers, marks))
}

/// One record of the progress topic, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Mark {
        stage: String,
        through: i64,
    },
    Snapshot {
        covers: Covers,
        marks: Vec<(String, i64)>,
    },
}

impl Entry {
    /// What the record with `key` and `value` says; `None` when it is neither kind.
    pub fn parse(key: Option<&[u8]>, value: Option<&[u8]>) -> Option<Entry> {
        let key = std::str::from_utf8(key?).ok()?;
        let value = std::str::from_utf8(value?).ok()?;
        if key == SNAPSHOT_KEY {
            let (covers, marks) = decode_snapshot(value)?;
            return Some(Entry::Snapshot { covers, marks });
        }
        Some(Entry::Mark {
            stage: key.to_string(),
            through: value.parse().ok()?,
        })
    }
}

/// Folds the records read so far (`entries`, from offset `from` to the end) into marks, if they
/// are enough: when `from` is the topic's beginning, or a snapshot among them covers every
/// record before `from`. A sole writer's snapshot ([`Covers::Everything`]) replaces whatever
/// came before it (what its writer knew then, or nothing after `weir run --reset`).
pub(super) fn fold_if_complete(
    entries: &[(i64, Entry)],
    from: i64,
    at_beginning: bool,
) -> Option<BTreeMap<String, i64>> {
    let last_whole = entries.iter().rposition(|(_, entry)| {
        matches!(
            entry,
            Entry::Snapshot {
                covers: Covers::Everything,
                ..
            }
        )
    });
    let covered = last_whole.is_some()
        || entries.iter().any(|(_, entry)| {
            matches!(entry, Entry::Snapshot { covers: Covers::Below(below), .. } if *below >= from)
        });
    if !(covered || at_beginning) {
        return None;
    }
    let mut marks = BTreeMap::new();
    for (_, entry) in &entries[last_whole.unwrap_or(0)..] {
        match entry {
            Entry::Mark { stage, through } => {
                merge(&mut marks, std::iter::once((stage.as_str(), *through)))
            }
            Entry::Snapshot { marks: all, .. } => {
                merge(&mut marks, all.iter().map(|(k, v)| (k.as_str(), *v)))
            }
        }
    }
    Some(marks)
}

/// The progress marks committed to `topic`, read with `read_committed` using `config`: from the
/// end back to the newest snapshot that covers the rest. A missing topic means none. Blocking.
pub(super) fn read_progress(
    config: &rdkafka::ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<ReadMarks, KafkaError> {
    let failed = |source| KafkaError::Progress {
        topic: topic.to_string(),
        source,
    };
    let mut config = config.clone();
    config.set("isolation.level", "read_committed");
    config.set("enable.partition.eof", "true");
    config.set("enable.auto.commit", "false");
    let consumer = crate::kafka::consumer(&config, "consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(failed)?;
    let exists = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if !exists {
        return Ok(ReadMarks::default());
    }
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, timeout)
        .map_err(failed)?;
    let deadline = Instant::now() + timeout;
    let mut entries: Vec<(i64, Entry)> = Vec::new();
    let mut records_read = 0u64;
    let mut complete_below = low;
    let mut chunk = FIRST_CHUNK;
    let mut until = high;
    let mut from = high;
    while from > low {
        from = (until - chunk).max(low);
        // The newest chunk is read to the partition's end, wherever that is by now.
        let to = if until == high { i64::MAX } else { until };
        let read = read_range(&consumer, topic, from, to, deadline)?;
        if until == high {
            complete_below = read.last().map_or(from, |(offset, _, _)| offset + 1);
        }
        records_read += read.len() as u64;
        let mut older: Vec<(i64, Entry)> = read
            .into_iter()
            .filter_map(|(offset, key, value)| {
                let entry = Entry::parse(key.as_deref(), value.as_deref());
                if entry.is_none() {
                    tracing::warn!(
                        "{topic}@{offset}: not a progress mark (key = stage, value = integer) \
                         nor a snapshot; skipped"
                    );
                }
                entry.map(|e| (offset, e))
            })
            .collect();
        older.append(&mut entries);
        entries = older;
        if fold_if_complete(&entries, from, from <= low).is_some() {
            break;
        }
        until = from;
        chunk = chunk.saturating_mul(2);
    }
    let marks = fold_if_complete(&entries, from, true).unwrap_or_default();
    Ok(ReadMarks {
        marks,
        complete_below,
        records_read,
    })
}

/// The progress marks committed to `topic` as a starting run reads them (see the module
/// documentation), with how many records it read: for tests and benchmarks. `config` names the
/// cluster; a `group.id` is added when it has none. Blocking.
pub fn read_progress_marks(
    config: &rdkafka::ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<(BTreeMap<String, i64>, u64), KafkaError> {
    let mut config = config.clone();
    if config.get("group.id").is_none() {
        config.set("group.id", format!("{topic}-reader"));
    }
    let read = read_progress(&config, topic, timeout)?;
    Ok((read.marks, read.records_read))
}

/// The key and value of a snapshot of `marks` as the only writer of a progress topic commits it
/// (for tests and benchmarks that fill a topic the way a long run would).
pub fn progress_snapshot(marks: &BTreeMap<String, i64>) -> (&'static str, String) {
    (SNAPSHOT_KEY, encode_snapshot(Covers::Everything, marks))
}

type Raw = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// The committed records of partition 0 of `topic` from `from` up to (not including) `until`,
/// or to its last stable offset if that comes first.
fn read_range(
    consumer: &BaseConsumer<crate::kafka::ClientLog>,
    topic: &str,
    from: i64,
    until: i64,
    deadline: Instant,
) -> Result<Vec<Raw>, KafkaError> {
    let failed = |source| KafkaError::Progress {
        topic: topic.to_string(),
        source,
    };
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(from))
        .and_then(|()| consumer.assign(&assignment))
        .map_err(failed)?;
    let mut read = Vec::new();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) if message.offset() >= until => return Ok(read),
            Some(Ok(message)) if message.offset() >= from => read.push((
                message.offset(),
                message.key().map(<[u8]>::to_vec),
                message.payload().map(<[u8]>::to_vec),
            )),
            // Left from an earlier chunk's assignment.
            Some(Ok(_)) => {}
            Some(Err(ClientError::PartitionEOF(_))) => return Ok(read),
            Some(Err(e)) => tracing::warn!("reading {topic}: {e} (retrying)"),
            None => {}
        }
        if Instant::now() >= deadline {
            return Err(failed(ClientError::Global(
                RDKafkaErrorCode::OperationTimedOut,
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(stage: &str, through: i64) -> Entry {
        Entry::Mark {
            stage: stage.into(),
            through,
        }
    }

    #[test]
    fn snapshots_read_back_as_written() {
        let mut marks = BTreeMap::new();
        marks.insert("w".to_string(), 7);
        marks.insert("csv@start_time".to_string(), -3);
        for covers in [Covers::Everything, Covers::Below(42)] {
            let text = encode_snapshot(covers, &marks);
            let (back, listed) = decode_snapshot(&text).expect("decodes");
            assert_eq!(back, covers);
            assert_eq!(listed.into_iter().collect::<BTreeMap<_, _>>(), marks);
        }
        assert_eq!(decode_snapshot("covers nothing\n"), None);
        assert_eq!(decode_snapshot("covers everything\nx y\n"), None);
    }

    #[test]
    fn a_tail_without_a_covering_snapshot_is_not_enough() {
        let snapshot = |covers| Entry::Snapshot {
            covers,
            marks: vec![("w".into(), 3)],
        };
        let tail = vec![(10, snapshot(Covers::Below(8))), (11, mark("w", 5))];
        assert_eq!(fold_if_complete(&tail, 9, false), None);
        let folded = fold_if_complete(&tail, 8, false).expect("covered");
        assert_eq!(folded.get("w"), Some(&5));
        let sole = vec![(10, snapshot(Covers::Everything)), (11, mark("v", 1))];
        assert!(fold_if_complete(&sole, 10, false).is_some());
        assert!(fold_if_complete(&sole[1..], 11, false).is_none());
        assert!(fold_if_complete(&sole[1..], 11, true).is_some());
    }

    #[test]
    fn a_sole_writers_snapshot_replaces_what_came_before_it() {
        let topic = vec![
            (0, mark("w", 900)),
            (
                1,
                Entry::Snapshot {
                    covers: Covers::Everything,
                    marks: vec![],
                },
            ),
            (2, mark("w", 5)),
        ];
        let folded = fold_if_complete(&topic, 0, true).expect("complete");
        assert_eq!(folded.get("w"), Some(&5));
        assert_eq!(fold_if_complete(&topic[1..], 1, false), Some(folded));
    }

    /// Several group members writing one topic, each reading it again at random moments (a
    /// grant) or starting over (a restart): a reading from the end back to a covering snapshot
    /// gives what the whole topic gives.
    #[test]
    fn members_snapshots_and_the_tail_equal_the_whole_history() {
        let mut next = crate::stage::testing::xorshift(0x2545_f491_4f6c_dd1d_u64);
        let read_all = |topic: &[(i64, Entry)]| ReadMarks {
            marks: fold_if_complete(topic, 0, true).expect("whole"),
            complete_below: topic.len() as i64,
            records_read: 0,
        };
        for _ in 0..200 {
            let mut topic: Vec<(i64, Entry)> = Vec::new();
            let mut members: Vec<MarkBook> = (0..3)
                .map(|_| MarkBook::new(&ReadMarks::default(), false))
                .collect();
            for _ in 0..next(600) {
                let who = next(3) as usize;
                match next(20) {
                    0 => members[who].reread(&read_all(&topic)),
                    1 => members[who] = MarkBook::new(&read_all(&topic), false),
                    _ => {
                        let moved: Vec<(String, i64)> = (0..next(3))
                            .map(|_| (format!("s{}", next(6)), next(1000) as i64))
                            .collect();
                        let iter = moved.iter().map(|(k, v)| (k.as_str(), *v));
                        let snapshot = members[who].snapshot_with(iter.clone());
                        for (stage, through) in &moved {
                            topic.push((topic.len() as i64, mark(stage, *through)));
                        }
                        if let Some(text) = &snapshot {
                            let (covers, marks) = decode_snapshot(text).expect("decodes");
                            topic.push((topic.len() as i64, Entry::Snapshot { covers, marks }));
                        }
                        members[who].committed(iter, snapshot.is_some());
                    }
                }
            }
            let whole = fold_if_complete(&topic, 0, true).expect("from the beginning");
            let tail_start = (0..=topic.len())
                .rev()
                .find(|&from| fold_if_complete(&topic[from..], from as i64, from == 0).is_some())
                .expect("the whole topic is enough");
            let tail = fold_if_complete(&topic[tail_start..], tail_start as i64, tail_start == 0);
            assert_eq!(tail.as_ref(), Some(&whole));
        }
    }

    /// Any history of commits by one writer, read back from any point after its latest
    /// snapshot, gives the marks a reading of the whole history gives.
    #[test]
    fn a_snapshot_and_the_tail_after_it_equal_the_whole_history() {
        let mut next = crate::stage::testing::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for _ in 0..200 {
            let mut topic: Vec<(i64, Entry)> = Vec::new();
            let mut book = MarkBook::new(&ReadMarks::default(), true);
            for _ in 0..next(400) {
                let moved: Vec<(String, i64)> = (0..next(4))
                    .map(|_| (format!("s{}", next(5)), next(1000) as i64))
                    .collect();
                let iter = moved.iter().map(|(k, v)| (k.as_str(), *v));
                let snapshot = book.snapshot_with(iter.clone());
                for (stage, through) in &moved {
                    topic.push((topic.len() as i64, mark(stage, *through)));
                }
                if let Some(text) = &snapshot {
                    let (covers, marks) = decode_snapshot(text).expect("decodes");
                    topic.push((topic.len() as i64, Entry::Snapshot { covers, marks }));
                }
                book.committed(iter, snapshot.is_some());
            }
            let whole = fold_if_complete(&topic, 0, true).expect("from the beginning");
            assert_eq!(&whole, book.known());
            let tail_start = (0..=topic.len())
                .rev()
                .find(|&from| fold_if_complete(&topic[from..], from as i64, from == 0).is_some())
                .expect("the whole topic is enough");
            let tail = fold_if_complete(&topic[tail_start..], tail_start as i64, tail_start == 0);
            assert_eq!(tail.as_ref(), Some(&whole));
            // At most one snapshot's worth of records after it (plus one commit's).
            assert!(topic.len() - tail_start <= SNAPSHOT_EVERY + 5);
        }
    }
}
