//! The [`Transactor`]: one run's transactional producer on one cluster — writing, the commit
//! sequence described in the parent module, aborting, and the periodic committer.

use super::GroupStanding;
use super::meaning::{by_stage, stored_marks};
use super::open::State;
use super::producer::TXN_TIMEOUT;
use super::progress::SNAPSHOT_KEY;
use super::registered::{CommitPoint, Offsets, Registered, fencing_recoverable};
use super::standing::is_fencing;
use crate::ack::Acks;
use crate::kafka::codec::Message;
use crate::kafka::link::TopicLinks;
use crate::kafka::{KafkaError, KafkaOptions, produce_waiting};
use crate::resume::Resumed;
use rdkafka::error::KafkaError as ClientError;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Attempts at a commit whose error librdkafka calls retriable.
const COMMIT_ATTEMPTS: u32 = 3;

/// One run's transactional producer on one cluster, shared by the run's `kafka` sinks.
pub struct Transactor {
    options: KafkaOptions,
    transactional_id: String,
    /// The id whose `.progress` topic holds the marks (the transactional id, or for a consumer
    /// group member the pipeline's id that all members share).
    progress_id: String,
    /// How the progress topic is read (set by `start`).
    progress_reader: Mutex<Option<rdkafka::ClientConfig>>,
    links: Arc<TopicLinks>,
    writers: AtomicUsize,
    finished: AtomicUsize,
    /// Kafka sources whose offsets go into the transactions and that have not finished: the
    /// committer goes on for them after the last writer finished (their offsets still move).
    sources_running: AtomicUsize,
    /// Set once every writer and every Kafka source finished (the committer thread then stops).
    done: AtomicBool,
    sources: Mutex<Vec<Registered>>,
    state: Mutex<State>,
    started: tokio::sync::Mutex<bool>,
    /// The progress marks the last committed transaction left, by stage (read at start).
    committed_marks: Mutex<BTreeMap<String, i64>>,
    /// What the run's marking stages declared their marks mean, and whether it starts over.
    resumed: Arc<Resumed>,
}

impl Transactor {
    pub(super) fn new(
        options: KafkaOptions,
        transactional_id: String,
        progress_id: String,
        links: Arc<TopicLinks>,
        resumed: Arc<Resumed>,
    ) -> Self {
        Transactor {
            resumed,
            options,
            transactional_id,
            progress_id,
            progress_reader: Mutex::new(None),
            links,
            writers: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            sources_running: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            sources: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            started: tokio::sync::Mutex::new(false),
            committed_marks: Mutex::new(BTreeMap::new()),
        }
    }

    /// One more sink writes through this transactor (counted at build time).
    pub(super) fn add_writer(&self) {
        self.writers.fetch_add(1, Ordering::AcqRel);
    }

    /// The topic where progress marks are kept.
    pub fn progress_topic(&self) -> String {
        format!("{}.progress", self.progress_id)
    }

    /// Reads the progress marks committed so far again (a group member taking over partitions
    /// continues from the marks the member before it committed). Blocking.
    pub fn read_marks(&self) -> Result<BTreeMap<String, i64>, KafkaError> {
        let reader = self
            .progress_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| KafkaError::TransactionFailed {
                id: self.transactional_id.clone(),
                why: "the transactional producer was not started".into(),
            })?;
        let read = super::progress::read_progress(
            &reader,
            &self.progress_topic(),
            self.options.connect_timeout(),
        )?;
        if let Some(book) = &mut self.state().book {
            book.reread(&read);
        }
        Ok(by_stage(&read.marks).0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a Kafka source whose commit points go into the transactions, under the consumer
    /// group standing `group` (kept current by the source).
    /// Call [`source_finished`](Self::source_finished) when the source ends.
    pub fn register_source(&self, group: Arc<GroupStanding>, point: Arc<dyn CommitPoint>) {
        self.sources_running.fetch_add(1, Ordering::AcqRel);
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Registered::Offsets { group, point });
    }

    /// Adds a source whose position (the single offset of its commit point) goes into the
    /// transactions as the progress mark of `stage`.
    pub fn register_position(&self, stage: &str, point: Arc<dyn CommitPoint>) {
        self.sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Registered::Position {
                stage: Arc::from(stage),
                point,
            });
    }

    /// The progress marks committed by the last run with this transactional id, by stage
    /// (empty before [`start`](Self::start)).
    pub fn committed_marks(&self) -> BTreeMap<String, i64> {
        self.committed_marks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// True once [`start`](Self::start) has connected the producer.
    pub async fn is_started(&self) -> bool {
        *self.started.lock().await
    }

    /// Connects, creates the progress topic, fences any older producer with the same id and
    /// starts the periodic committer (once; later calls return at once). Every other method
    /// blocks (it may wait for a commit): call them on a blocking thread.
    pub async fn start(self: &Arc<Self>) -> Result<(), KafkaError> {
        let mut started = self.started.lock().await;
        if *started {
            // Not `check()`: this runs on the async runtime, where waiting for the state lock
            // while a commit holds it could starve the embedded broker that commit waits for.
            return Ok(());
        }
        let member = self.progress_id != self.transactional_id;
        let (producer, bootstrap) = super::producer::connect(
            &self.options,
            &self.transactional_id,
            &self.progress_topic(),
            member,
            &self.links,
        )
        .await?;
        tracing::debug!("transactional producer {} ready", self.transactional_id);
        // Fenced and the old transaction aborted: what is committed now is final.
        // A consumer: producer settings in the stage's `options` stay with the producer.
        let mut reader = crate::kafka::consumer_config(
            &self
                .options
                .client_config(&bootstrap, crate::kafka::CONSUMER_DEFAULTS)?,
        );
        reader.set(
            "group.id",
            format!("{}.progress-reader", self.transactional_id),
        );
        *self
            .progress_reader
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(reader.clone());
        let (marks, book) = super::loading::load_progress(
            reader,
            &self.transactional_id,
            &self.progress_topic(),
            self.options.connect_timeout(),
            &self.resumed,
            member,
        )
        .await?;
        *self
            .committed_marks
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = marks;
        {
            let mut state = self.state();
            state.book = Some(book);
            state.producer = Some(producer);
            state.last_commit = Some(Instant::now());
        }
        let committer = Arc::clone(self);
        std::thread::Builder::new()
            .name("weir-txn-commit".into())
            .spawn(move || committer.commit_periodically())
            .map_err(|e| KafkaError::TransactionFailed {
                id: self.transactional_id.clone(),
                why: format!("cannot start the committer thread: {e}"),
            })?;
        *started = true;
        Ok(())
    }

    /// Fails with the error that ended this transactor, if one did.
    fn check(&self) -> Result<(), KafkaError> {
        match &self.state().failure {
            None => Ok(()),
            Some(why) => Err(KafkaError::TransactionFailed {
                id: self.transactional_id.clone(),
                why: why.clone(),
            }),
        }
    }

    /// Writes the messages `encode` hands over to `topic` in the open transaction, keeping
    /// `acks` (the batch's tickets and marks) until the transaction commits. Blocking.
    pub fn write(
        &self,
        topic: &str,
        acks: Acks,
        encode: impl FnOnce(
            &mut dyn FnMut(Message<'_>) -> Result<(), KafkaError>,
        ) -> Result<(), KafkaError>,
    ) -> Result<(), KafkaError> {
        let mut state = self.state();
        state.usable(&self.transactional_id)?;
        state.begin(&self.transactional_id)?;
        let State {
            producer, written, ..
        } = &mut *state;
        let producer = producer.as_ref().expect("checked by usable");
        let result = encode(&mut |message: Message<'_>| {
            let mut record = BaseRecord::to(topic).payload(message.value);
            if let Some(key) = message.key {
                record = record.key(key);
            }
            if message.time >= 0 {
                record = record.timestamp(message.time);
            }
            *written += 1;
            produce_waiting(producer, record)
        });
        for mark in acks.marks() {
            let at = state
                .marks
                .entry(Arc::clone(&mark.stage))
                .or_insert(mark.through);
            *at = (*at).max(mark.through);
        }
        state.held.push(acks);
        if let Err(e) = result {
            state.failure = Some(e.to_string());
            state.abort(&self.transactional_id);
            return Err(e);
        }
        if state
            .last_commit
            .is_some_and(|t| t.elapsed() >= self.options.commit_interval.0)
        {
            self.commit(&mut state)?;
        }
        Ok(())
    }

    /// A Kafka source registered with [`register_source`](Self::register_source) has ended and
    /// what it read has settled; after the last writer and the last such source, what is left is
    /// committed and the committer stops. Blocking.
    pub fn source_finished(&self) -> Result<(), KafkaError> {
        let left = self
            .sources_running
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if left > 0 || self.finished.load(Ordering::Acquire) < self.writers.load(Ordering::Acquire)
        {
            return self.check();
        }
        self.finish_all()
    }

    /// A writer has finished; the last one commits what is left. Blocking.
    pub fn finish_writer(&self) -> Result<(), KafkaError> {
        let finished = self.finished.fetch_add(1, Ordering::AcqRel) + 1;
        if finished < self.writers.load(Ordering::Acquire) {
            // Readers of its topics in this run end at the offsets it delivered
            // (`kafka::link`): wait for the delivery reports of what is in flight, or a reader
            // could end before it read them.
            let state = self.state();
            if let Some(producer) = &state.producer {
                while producer.in_flight_count() > 0 && state.delivery_failure().is_none() {
                    let _ = producer.flush(Duration::from_millis(200));
                }
            }
            drop(state);
            return self.check();
        }
        if self.sources_running.load(Ordering::Acquire) > 0 {
            // A Kafka source still reads (feeding other sinks): its offsets go on being
            // committed, in transactions without records, until it ends.
            let mut state = self.state();
            return if state.producer.is_some() {
                self.commit(&mut state)
            } else {
                state.usable(&self.transactional_id).map(|_| ())
            };
        }
        self.finish_all()
    }

    /// Commits what is left and stops the committer.
    fn finish_all(&self) -> Result<(), KafkaError> {
        let mut state = self.state();
        let result = if state.producer.is_some() {
            self.commit(&mut state)
        } else {
            state.usable(&self.transactional_id).map(|_| ())
        };
        self.done.store(true, Ordering::Release);
        if state.committed > 0 {
            tracing::debug!(
                "{}: {} transactions committed",
                self.transactional_id,
                state.committed
            );
        }
        result
    }

    /// This member lost its partitions without handing them over (it missed its session timeout,
    /// and their new owners start from the committed offsets): what the open transaction wrote
    /// from them must never be seen. The transaction is aborted and the member sits the fence out
    /// as if the broker had refused its offsets (or, where that cannot be sat out, the run ends).
    pub fn partitions_lost(&self) {
        let mut state = self.state();
        if state.producer.is_none() || state.failure.is_some() {
            return;
        }
        // Only where every source reads again from the group's committed offsets once it is
        // granted partitions: another source (the merging half of a shared window reads every
        // partition of its partials topic) would not read again what the abort threw away, so
        // there the transaction goes on and commits as before — the shared window's progress
        // rows already make a tenure's records count once (docs/scaling.md).
        if !fencing_recoverable(&self.sources.lock().unwrap_or_else(|p| p.into_inner())) {
            return;
        }
        // Settled, not failed: a failed ticket would hold the ledger back for good, and the
        // partitions are forgotten anyway; fenced, no commit point goes anywhere.
        drop(std::mem::take(&mut state.held));
        state.abort(&self.transactional_id);
        state.fenced = true;
    }

    /// The group has granted partitions again (each starts from its committed offset): a fenced
    /// member may commit again.
    pub fn regranted(&self) {
        let mut state = self.state();
        if std::mem::take(&mut state.fenced) {
            tracing::info!(
                "{}: partitions granted again after the fence; committing again",
                self.transactional_id
            );
        }
    }

    /// Commits the open transaction now, after any commit under way has finished (a group
    /// member handing partitions over: the next owner must find the offsets of everything
    /// written here committed). Blocking.
    pub fn commit_now(&self) -> Result<(), KafkaError> {
        let mut state = self.state();
        if state.producer.is_none() {
            return state.usable(&self.transactional_id);
        }
        self.commit(&mut state)
    }

    /// Commits the open transaction with the sources' offsets and the progress marks.
    fn commit(&self, state: &mut State) -> Result<(), KafkaError> {
        state.usable(&self.transactional_id)?;
        state.last_commit = Some(Instant::now());
        if let Some((topic, partition, source)) = state.delivery_failure() {
            state.failure = Some(format!("delivery to {topic} failed: {source}"));
            state.abort(&self.transactional_id);
            return Err(KafkaError::Delivery {
                topic,
                partition,
                source,
            });
        }
        // 1. What was written lets go of its tickets: the ledgers move their commit points.
        drop(std::mem::take(&mut state.held));
        let sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let mut points: Vec<(usize, Offsets)> = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            match source {
                Registered::Offsets { point, .. } => {
                    if let Some(offsets) = point.take_commit() {
                        points.push((i, offsets));
                    }
                }
                Registered::Position { stage, point } => {
                    let position = point
                        .take_commit()
                        .and_then(|p| p.iter().map(|o| o.1).max());
                    if let Some(position) = position {
                        let at = state.marks.entry(Arc::clone(stage)).or_insert(position);
                        *at = (*at).max(position);
                    }
                }
            }
        }
        if state.fenced {
            // What was read since the fence is read again from the committed offsets once the
            // group grants partitions again; what was written of it must not be seen.
            state.marks.clear();
            drop(sources);
            state.abort(&self.transactional_id);
            return Ok(());
        }
        if !state.open && points.is_empty() && state.marks.is_empty() {
            return Ok(());
        }
        state.begin(&self.transactional_id)?;
        let marks = stored_marks(&self.resumed.meanings(), std::mem::take(&mut state.marks));
        let result = self.commit_open(state, &sources, &points, &marks);
        match result {
            Ok(snapshotted) => {
                drop(sources);
                if let Some(book) = &mut state.book {
                    book.committed(marks.iter().map(|(k, v)| (k.as_str(), *v)), snapshotted);
                }
                state.open = false;
                state.written = 0;
                state.committed += 1;
                Ok(())
            }
            Err((_, source)) if is_fencing(&source) && fencing_recoverable(&sources) => {
                drop(sources);
                tracing::warn!(
                    "{}: the broker refused this member's offsets ({source}): its consumer group \
                     gave a partition to another member before this one heard of the rebalance. \
                     The transaction is aborted and nothing is written until the group grants \
                     partitions again; their owners read the aborted records again",
                    self.transactional_id
                );
                state.abort(&self.transactional_id);
                state.fenced = true;
                Ok(())
            }
            Err((step, source)) => {
                drop(sources);
                let error = match state.delivery_failure() {
                    // The commit failed because a message could not be delivered: say which.
                    Some((topic, partition, source)) => KafkaError::Delivery {
                        topic,
                        partition,
                        source,
                    },
                    None => KafkaError::Transaction {
                        id: self.transactional_id.clone(),
                        step,
                        source,
                    },
                };
                state.failure.get_or_insert_with(|| error.to_string());
                state.abort(&self.transactional_id);
                Err(error)
            }
        }
    }

    /// Steps 2–4 of a commit; true when a snapshot of the marks went in too.
    fn commit_open(
        &self,
        state: &State,
        sources: &[Registered],
        points: &[(usize, Offsets)],
        marks: &[(String, i64)],
    ) -> Result<bool, (&'static str, ClientError)> {
        let producer = state.producer.as_ref().expect("checked by usable");
        // 2. The progress marks, and now and then a snapshot of all of them.
        let progress = self.progress_topic();
        let write = |key: &str, value: &str| {
            let record = BaseRecord::to(&progress)
                .key(key.as_bytes())
                .payload(value.as_bytes());
            produce_waiting(producer, record).map_err(|e| match e {
                KafkaError::Produce { source, .. } => ("writing progress marks", source),
                _ => ("writing progress marks", ClientError::Canceled),
            })
        };
        for (key, through) in marks {
            write(key, &through.to_string())?;
        }
        let snapshot = state
            .book
            .as_ref()
            .and_then(|book| book.snapshot_with(marks.iter().map(|(k, v)| (k.as_str(), *v))));
        if let Some(snapshot) = &snapshot {
            write(SNAPSHOT_KEY, snapshot)?;
        }
        // 3. The offsets.
        for (i, point) in points {
            let mut offsets = TopicPartitionList::new();
            for ((topic, partition), offset) in point {
                offsets
                    .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                    .map_err(|e| ("listing offsets", e))?;
            }
            if let Registered::Offsets { group, .. } = &sources[*i] {
                let metadata = group.lock();
                let Some(metadata) = metadata.as_ref() else {
                    return Err(("send_offsets_to_transaction", ClientError::Canceled));
                };
                producer
                    .send_offsets_to_transaction(&offsets, metadata, TXN_TIMEOUT)
                    .map_err(|e| ("send_offsets_to_transaction", e))?;
            }
        }
        // 4. Commit.
        let mut attempt = 1;
        loop {
            match producer.commit_transaction(TXN_TIMEOUT) {
                Ok(()) => return Ok(snapshot.is_some()),
                // A message that could not be delivered makes retrying pointless.
                Err(ClientError::Transaction(e))
                    if e.is_retriable()
                        && attempt < COMMIT_ATTEMPTS
                        && state.delivery_failure().is_none() =>
                {
                    tracing::warn!("{}: commit failed, retrying: {e}", self.transactional_id);
                    attempt += 1;
                }
                Err(e) => return Err(("commit_transaction", e)),
            }
        }
    }

    /// Commits every `commit_interval` while writers run, so results become visible when no
    /// new batch arrives.
    fn commit_periodically(self: Arc<Self>) {
        let interval = self.options.commit_interval.0;
        while !self.done.load(Ordering::Acquire) {
            std::thread::sleep(interval.min(Duration::from_millis(100)));
            let mut state = self.state();
            if self.done.load(Ordering::Acquire) || state.failure.is_some() {
                break;
            }
            if state.last_commit.is_some_and(|t| t.elapsed() >= interval)
                && let Err(e) = self.commit(&mut state)
            {
                tracing::error!("{e}");
                break;
            }
        }
    }
}
