//! The read loop's per-message work: decoding messages into records, dropping those stamped
//! too far in the future, and tracking each partition's position, latest event time and
//! idleness, from which the source's watermark comes.

use super::group::Change;
use crate::kafka::codec::Decoder;
use crate::record::{BatchBuilder, Millis};
use crate::sources::checkpoint::{Partition, Tenures};
use crate::stage::{DropReason, Rejected, Rejects, StageMetrics};
use crate::time::now_millis;
use rdkafka::message::{BorrowedMessage, Message};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bad messages logged one by one before the rest are only counted.
pub(super) const LOGGED_BAD_MESSAGES: u64 = 10;

/// The shortest silence after which a partition that never reported its end stops holding the
/// watermark back.
const QUIET_WITHOUT_END: Duration = Duration::from_secs(30);

/// How long a partition read to its end stays quiet before its event time follows the clock
/// (`follow_clock`).
const CLOCK_QUIET: Duration = Duration::from_secs(1);

/// How long the broker's word that a partition has nothing new counts (it is asked again about
/// every second while the partition stays quiet).
const CONFIRMED_FOR: Duration = Duration::from_secs(2);

/// A partition's records follow the clock when the newest trailed it by at most this.
const FOLLOWS_CLOCK_WITHIN: Millis = 10_000;

/// How far behind the clock, beyond the partition's own lag, a quiet partition's event time
/// stays: a record delivered this much slower than the last ones is still on time.
const CLOCK_MARGIN: Millis = 1_000;

/// The event time a quiet partition has reached when its records follow the clock: the clock
/// less the lag its newest record (`latest`, which arrived at wall time `arrived`) had, less
/// [`CLOCK_MARGIN`]; never behind `latest`. None when the records do not follow the clock (a
/// replay of old data, whose event time has nothing to do with when it is read).
pub(super) fn clock_follower(latest: Millis, arrived: Millis, now: Millis) -> Option<Millis> {
    let lag = arrived.saturating_sub(latest);
    (lag <= FOLLOWS_CLOCK_WITHIN)
        .then(|| latest.max(now.saturating_sub(lag.max(0)).saturating_sub(CLOCK_MARGIN)))
}

/// Whether a message stamped `time` is believed, or dropped as a broken clock (one years ahead
/// would drag the watermark along, close every window and make all later records late). It is
/// believed if it is at most `tolerance` past the clock (`clock_limit`) — or at most `tolerance`
/// past its partition's `latest` believed event time, since a stream that already runs ahead of
/// the clock by steps (a log replayed faster than its event time passes) is not a broken clock;
/// a broken clock shows as a jump. The first message read from a partition in this run is
/// judged by the clock only when the partition starts there (`past_start` false); one further
/// in is believed, as where the stream already is (a replay resumed hours ahead of the clock).
pub(super) fn believable(
    time: Millis,
    clock_limit: Millis,
    latest: Option<Millis>,
    tolerance: Millis,
    past_start: bool,
) -> bool {
    time <= clock_limit
        || match latest {
            Some(latest) => time <= latest.saturating_add(tolerance),
            None => past_start,
        }
}

/// Per-partition reading state.
#[derive(Debug)]
pub(super) struct PartitionState {
    /// When a message last came (or the partition was assigned).
    pub(super) last_activity: Instant,
    /// Warned that it went quiet without reporting its end.
    pub(super) warned_quiet: bool,
    /// The offset after the last record read (where a restart would resume).
    pub(super) next_offset: i64,
    /// Latest event time read.
    pub(super) latest: Option<Millis>,
    /// Since when it has been read to its end with nothing new (None while data flows).
    pub(super) idle_since: Option<Instant>,
    /// Read from since the last batch was sent.
    pub(super) touched: bool,
    /// This process's tenure of the partition (0: owned for good).
    pub(super) tenure: u64,
    /// How many partitions its topic has.
    pub(super) topic_partitions: i64,
    /// Told the run's tenures that it is idle.
    pub(super) reported_idle: bool,
    /// When the broker last confirmed that nothing follows what was read (see
    /// [`Reader::confirm_quiet`]): a quiet partition follows the clock only while it does.
    pub(super) quiet_confirmed: Option<Instant>,
}

impl Default for PartitionState {
    fn default() -> Self {
        PartitionState {
            last_activity: Instant::now(),
            warned_quiet: false,
            next_offset: 0,
            latest: None,
            idle_since: None,
            touched: false,
            tenure: 0,
            topic_partitions: 0,
            reported_idle: false,
            quiet_confirmed: None,
        }
    }
}

/// Decodes messages and tracks partitions.
pub(super) struct Reader<'a> {
    pub(super) decoder: Decoder,
    /// Every assigned partition (a handful: found by a scan, no allocation per message).
    pub(super) partitions: Vec<(Partition, PartitionState)>,
    pub(super) bad_messages: u64,
    /// Messages dropped for a timestamp past `future_limit`.
    pub(super) future_messages: u64,
    /// Records answered again within one read of their partition (a broker fault).
    pub(super) repeated_offsets: u64,
    /// A quiet partition's event time follows the clock when its records do (`follow_clock`).
    pub(super) follow_clock: bool,
    /// Bytes (keys and values) of the messages taken since the stage's counters last got them.
    pub(super) bytes_read: u64,
    /// The latest believable event time by the clock (the clock plus `future_tolerance`), set
    /// per poll round.
    pub(super) future_limit: Millis,
    /// `future_tolerance` in milliseconds: how far a message may also run ahead of its
    /// partition's latest event time.
    pub(super) future_tolerance: Millis,
    pub(super) path: &'a str,
    pub(super) metrics: &'a StageMetrics,
    /// Where undecodable and out-of-range messages go (`<id>.errors`).
    pub(super) rejects: &'a Rejects,
    /// Where partitions' idleness is told to stages that hold records per tenure.
    pub(super) tenures: &'a Tenures,
    /// A group member: partitions are read only within a tenure the group granted.
    pub(super) in_group: bool,
}

impl Reader<'_> {
    /// Decodes `message` into `out` and notes how far its partition has been read.
    pub(super) fn take(&mut self, message: &BorrowedMessage<'_>, out: &mut BatchBuilder) {
        let index = self.index_of(message.topic(), message.partition());
        self.bytes_read += (message.payload_len() + message.key_len()) as u64;
        let state = &self.partitions[index].1;
        self.decoder.set_origin([
            i64::from(message.partition()),
            state.tenure as i64,
            state.topic_partitions,
        ]);
        let time = message.timestamp().to_millis().unwrap_or_else(now_millis);
        let believable = believable(
            time,
            self.future_limit,
            state.latest,
            self.future_tolerance,
            message.offset() > 0,
        );
        if !believable {
            // A clock years ahead would drag the watermark along: drop the message, count it.
            self.future_messages += 1;
            self.metrics.add_dropped(DropReason::OutOfRange, 1);
            self.reject(
                message,
                &format!(
                    "its timestamp {time} is more than `future_tolerance` past the clock and \
                     past the partition's latest event time"
                ),
            );
            if self.future_messages <= LOGGED_BAD_MESSAGES {
                tracing::warn!(
                    "{}: dropped message {}/{}@{}: its timestamp {time} is more than \
                     `future_tolerance` past the clock and past the partition's latest event time",
                    self.path,
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
            }
        } else if let Err(why) = self
            .decoder
            .decode(message.payload(), message.key(), time, out)
        {
            self.bad_messages += 1;
            self.metrics.add_dropped(DropReason::Invalid, 1);
            self.reject(message, &why.to_string());
            if self.bad_messages <= LOGGED_BAD_MESSAGES {
                tracing::warn!(
                    "{}: skipped message {}/{}@{}: {why}",
                    self.path,
                    message.topic(),
                    message.partition(),
                    message.offset()
                );
            }
        }
        let state = &mut self.partitions[index].1;
        if message.offset() < state.next_offset {
            // Offsets only rise within a read of a partition: the broker answered records this
            // reader already had, which would be counted twice (the embedded broker did so while
            // a partition was written to; vendor/README.md).
            self.repeated_offsets += 1;
            if self.repeated_offsets <= LOGGED_BAD_MESSAGES {
                tracing::warn!(
                    "{}: {}/{} answered record {} again after {} (a broker fault)",
                    self.path,
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    state.next_offset - 1
                );
            }
        }
        state.next_offset = message.offset() + 1;
        if believable {
            state.latest = Some(state.latest.map_or(time, |t| t.max(time)));
        }
        state.idle_since = None;
        state.quiet_confirmed = None;
        if state.reported_idle {
            state.reported_idle = false;
            self.tenures.set_idle(state.tenure, false);
        }
        state.last_activity = Instant::now();
        state.touched = true;
    }

    /// Sends `message` to the errors output (if connected), as `topic/partition@offset` and its
    /// payload as text.
    fn reject(&self, message: &BorrowedMessage<'_>, reason: &str) {
        if !self.rejects.is_connected() {
            return;
        }
        self.rejects.reject(Rejected {
            reason,
            at: &format!(
                "{}/{}@{}",
                message.topic(),
                message.partition(),
                message.offset()
            ),
            record: &String::from_utf8_lossy(message.payload().unwrap_or_default()),
        });
    }

    /// Where `topic`/`partition` is in [`partitions`](Self::partitions) (added if new).
    fn index_of(&mut self, topic: &str, partition: i32) -> usize {
        match self
            .partitions
            .iter()
            .position(|((t, p), _)| *p == partition && &**t == topic)
        {
            Some(i) => i,
            None => {
                // A group member hears of each grant before its records come; a record of a
                // partition it never heard of belongs to no current tenure.
                let state = PartitionState {
                    tenure: if self.in_group { u64::MAX } else { 0 },
                    ..PartitionState::default()
                };
                self.partitions.push(((Arc::from(topic), partition), state));
                self.partitions.len() - 1
            }
        }
    }

    /// The partitions read from since the last call, each with the offset after its last record.
    pub(super) fn take_touched(&mut self) -> Vec<(Partition, i64)> {
        self.partitions
            .iter_mut()
            .filter(|(_, state)| state.touched)
            .map(|(partition, state)| {
                state.touched = false;
                (partition.clone(), state.next_offset)
            })
            .collect()
    }

    /// Follows a change of the partitions this source owns (a group member's rebalance).
    pub(super) fn apply(&mut self, change: Change) {
        match change {
            Change::Granted(granted) => {
                for grant in granted {
                    let state = PartitionState {
                        tenure: grant.tenure,
                        topic_partitions: grant.partitions,
                        ..PartitionState::default()
                    };
                    match self
                        .partitions
                        .iter_mut()
                        .find(|(p, _)| *p == grant.partition)
                    {
                        Some((_, existing)) => *existing = state,
                        None => self.partitions.push((grant.partition, state)),
                    }
                }
            }
            Change::Revoked(revoked) => {
                for (partition, state) in &self.partitions {
                    if revoked.contains(partition) {
                        tracing::debug!(
                            "{}: gave up {}/{} having read to {}",
                            self.path,
                            partition.0,
                            partition.1,
                            state.next_offset
                        );
                    }
                }
                self.partitions.retain(|(p, _)| !revoked.contains(p));
            }
        }
    }

    pub(super) fn reached_end(&mut self, partition: i32) {
        // The event names only the partition number; with several topics, each topic's partition
        // of that number is marked (a partition that still has data clears it at its next record).
        let now = Instant::now();
        for ((topic, p), state) in &mut self.partitions {
            if *p == partition {
                if state.idle_since.is_none() {
                    tracing::debug!(
                        "{}: read {topic}/{p} to its end ({})",
                        self.path,
                        state.next_offset
                    );
                }
                state.idle_since.get_or_insert(now);
            }
        }
    }

    /// Partitions that may follow the clock (`follow_clock`: read to their end, quiet for
    /// [`CLOCK_QUIET`], not asked in the last second) are checked with `has_more`, which asks the
    /// broker whether anything follows what was read (true or false) or fails to reach it
    /// (None). Only a partition the broker answered for follows the clock: while a broker is
    /// down, records its producers hold back must not be made late.
    pub(super) fn confirm_quiet(
        &mut self,
        mut has_more: impl FnMut(&str, i32, i64) -> Option<bool>,
    ) {
        if !self.follow_clock {
            return;
        }
        for ((topic, partition), state) in &mut self.partitions {
            let quiet = state.idle_since.is_some_and(|t| t.elapsed() >= CLOCK_QUIET);
            let due = state
                .quiet_confirmed
                .is_none_or(|t| t.elapsed() >= CONFIRMED_FOR / 2);
            if quiet && due && state.latest.is_some() {
                state.quiet_confirmed = match has_more(topic, *partition, state.next_offset) {
                    Some(false) => Some(Instant::now()),
                    Some(true) | None => None,
                };
            }
        }
    }

    /// The oldest latest-event-time among the partitions that are not idle (read to their end,
    /// or sent nothing at all, for `idle_timeout`); when every partition is idle, the newest. A
    /// partition that goes quiet without reporting its end is named in a warning once, and stops
    /// holding the watermark back (else its silence would keep every window open and growing).
    pub(super) fn watermark(&mut self, idle_timeout: Duration) -> Option<Millis> {
        // Without an end report, silence is only believed after much longer: a partition whose
        // records wait behind a busy pipeline must not have them turned late.
        let silent_for = (idle_timeout * 6).max(QUIET_WITHOUT_END);
        for ((topic, partition), state) in &mut self.partitions {
            let quiet = state.last_activity.elapsed() >= silent_for;
            if quiet && state.idle_since.is_none() && !state.warned_quiet {
                state.warned_quiet = true;
                tracing::warn!(
                    "{}: {topic}/{partition} sent nothing for {silent_for:?} and reported no \
                     end; it no longer holds the watermark back",
                    self.path
                );
            }
            if !quiet {
                state.warned_quiet = false;
            }
        }
        // Stages holding records per tenure hear of idleness only once it lasted `idle_timeout`:
        // an end-of-partition event can be stale (from before the partition was granted again).
        for (_, state) in &mut self.partitions {
            let idle = state
                .idle_since
                .is_some_and(|t| t.elapsed() >= idle_timeout);
            if idle && !state.reported_idle && state.tenure != 0 {
                state.reported_idle = true;
                self.tenures.set_idle(state.tenure, true);
            }
        }
        let active = |p: &&PartitionState| {
            p.last_activity.elapsed() < silent_for
                && p.idle_since.is_none_or(|t| t.elapsed() < idle_timeout)
        };
        // A live stream gone quiet: event time moves on with the clock, so its last windows
        // close (issue 30, item 4; docs/kafka.md, "Event time on a quiet input").
        let now = now_millis();
        let follow_clock = self.follow_clock;
        let reached = |p: &PartitionState| -> Option<Millis> {
            let latest = p.latest?;
            let quiet = p.idle_since.is_some_and(|t| t.elapsed() >= CLOCK_QUIET)
                && p.quiet_confirmed
                    .is_some_and(|t| t.elapsed() < CONFIRMED_FOR);
            if !(follow_clock && quiet) {
                return Some(latest);
            }
            let silent = Millis::try_from(p.last_activity.elapsed().as_millis()).unwrap_or(0);
            clock_follower(latest, now.saturating_sub(silent), now).or(Some(latest))
        };
        let states = || self.partitions.iter().map(|(_, state)| state);
        let mut holding = states().filter(active).peekable();
        if holding.peek().is_some() {
            holding.map(&reached).min().flatten()
        } else {
            states().filter_map(reached).max()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CLOCK_MARGIN, believable, clock_follower};
    use proptest::prelude::*;

    #[test]
    fn a_quiet_live_stream_follows_the_clock_and_a_replay_does_not() {
        // The newest record, stamped at 10:00:00.000, arrived 80 ms later; 3 s have passed.
        let stamped = NOW - 3_000;
        let arrived = stamped + 80;
        assert_eq!(
            clock_follower(stamped, arrived, NOW),
            Some(NOW - 80 - CLOCK_MARGIN)
        );
        // Just after it arrived, event time does not go back behind what was read.
        assert_eq!(clock_follower(stamped, arrived, arrived), Some(stamped));
        // A replay of last year's log: event time has nothing to do with the clock.
        assert_eq!(clock_follower(NOW - 365 * 24 * HOUR, NOW, NOW), None);
        // Stamped ahead of the clock: it stays where the records are.
        assert_eq!(clock_follower(NOW + HOUR, NOW, NOW + 5), Some(NOW + HOUR));
    }

    const HOUR: i64 = 3_600_000;
    const NOW: i64 = 1_765_000_000_000;

    /// Runs `stamps` through the check as the reader does (each believed stamp raises the
    /// partition's latest); returns how many were believed.
    fn believed(stamps: &[i64], first_offset: i64) -> usize {
        let mut latest = None;
        let mut count = 0;
        for (i, &time) in stamps.iter().enumerate() {
            if believable(time, NOW + HOUR, latest, HOUR, first_offset + i as i64 > 0) {
                latest = Some(latest.map_or(time, |l: i64| l.max(time)));
                count += 1;
            }
        }
        count
    }

    proptest! {
        /// A replay whose stamps run ahead of the clock by steps within the tolerance is
        /// believed whole, however far ahead it gets, from the start of a partition (starting
        /// near the clock) or resumed anywhere further in (starting anywhere).
        #[test]
        fn a_replay_running_ahead_by_steps_is_believed(
            ahead in 0i64..HOUR,
            resumed_ahead in 0i64..(400 * 24 * HOUR),
            steps in prop::collection::vec(0i64..HOUR, 1..200),
        ) {
            let mut from_start = vec![NOW + ahead];
            let mut resumed = vec![NOW + resumed_ahead];
            for step in &steps {
                from_start.push(from_start.last().unwrap() + step);
                resumed.push(resumed.last().unwrap() + step);
            }
            prop_assert_eq!(believed(&from_start, 0), from_start.len());
            prop_assert_eq!(believed(&resumed, 1_000), resumed.len());
        }

        /// A message that jumps more than the tolerance past both the clock and its partition's
        /// latest stamp is dropped, and the stream goes on being believed after it.
        #[test]
        fn a_jump_past_clock_and_stream_is_dropped(
            jump in (HOUR + 1)..(1_000 * 24 * HOUR),
            before in 1usize..50,
        ) {
            let mut stamps: Vec<i64> = (0..before as i64).map(|i| NOW + i * 100).collect();
            let last = *stamps.last().unwrap();
            stamps.push(last.max(NOW) + jump);
            stamps.push(last + 100);
            prop_assert_eq!(believed(&stamps, 0), stamps.len() - 1);
        }
    }

    #[test]
    fn the_first_message_of_a_partition_is_judged_by_the_clock() {
        assert!(!believable(NOW + 2 * HOUR, NOW + HOUR, None, HOUR, false));
        assert!(believable(NOW + HOUR / 2, NOW + HOUR, None, HOUR, false));
    }
}
