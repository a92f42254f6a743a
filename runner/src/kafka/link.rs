//! Finite runs through Kafka: when a `kafka` source reads a topic that a `kafka` sink of the same
//! pipeline writes, the source ends once that sink has finished and everything it wrote has been
//! read. The sink reports the offset after each message it delivered; the source compares with
//! what it has read. (A broker's high watermark is not used: some brokers report it late.)

use std::collections::HashMap;
use std::sync::Mutex;

/// All links of one run, by (brokers, topic).
#[derive(Debug, Default)]
pub struct TopicLinks(Mutex<HashMap<(String, String), LinkState>>);

/// What the sinks writing one topic have done so far.
#[derive(Debug, Default, Clone)]
struct LinkState {
    writers: usize,
    finished: usize,
    /// Per partition, the offset after the last message delivered.
    ends: HashMap<i32, i64>,
}

/// How far a reader has to read before the writers of its topic are all done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// No sink of this run writes the topic: read until stopped.
    Unlinked,
    /// A writer is still writing.
    Writing,
    /// Every writer finished; these are the per-partition ends to reach.
    Done(HashMap<i32, i64>),
}

impl TopicLinks {
    fn with<R>(&self, brokers: &str, topic: &str, f: impl FnOnce(&mut LinkState) -> R) -> R {
        let mut links = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(links
            .entry((brokers.to_string(), topic.to_string()))
            .or_default())
    }

    /// A sink will write `topic` (called when the sink is built, before anything runs).
    pub fn add_writer(&self, brokers: &str, topic: &str) {
        self.with(brokers, topic, |s| s.writers += 1);
    }

    /// A message was delivered to `partition` at `offset`.
    pub fn delivered(&self, brokers: &str, topic: &str, partition: i32, offset: i64) {
        self.with(brokers, topic, |s| {
            let end = s.ends.entry(partition).or_insert(0);
            *end = (*end).max(offset + 1);
        });
    }

    /// A sink finished: everything it wrote is delivered.
    pub fn writer_finished(&self, brokers: &str, topic: &str) {
        self.with(brokers, topic, |s| s.finished += 1);
    }

    /// Where the writers of `topic` stand.
    pub fn progress(&self, brokers: &str, topic: &str) -> Progress {
        self.with(brokers, topic, |s| match s.writers {
            0 => Progress::Unlinked,
            n if s.finished < n => Progress::Writing,
            _ => Progress::Done(s.ends.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_is_done_only_after_every_writer_finished() {
        let links = TopicLinks::default();
        assert_eq!(links.progress("b", "t"), Progress::Unlinked);
        links.add_writer("b", "t");
        links.add_writer("b", "t");
        links.delivered("b", "t", 0, 41);
        links.delivered("b", "t", 0, 7);
        links.writer_finished("b", "t");
        assert_eq!(links.progress("b", "t"), Progress::Writing);
        links.writer_finished("b", "t");
        assert_eq!(
            links.progress("b", "t"),
            Progress::Done(HashMap::from([(0, 42)]))
        );
        assert_eq!(links.progress("b", "other"), Progress::Unlinked);
    }
}
