//! A running pipeline seen from outside: every stage with its live counters, the fill of each of
//! its input queues (backpressure), its output's watermark and how far that lags behind the
//! clock, as a snapshot (the control API's `/graph`, `weir top`) or Prometheus text (`/metrics`);
//! and taps on any stage's output (`weir tap`). The engine registers stages as it starts them,
//! and as edits add or remove them.

use crate::record::Millis;
use crate::stage::{DropReason, Joiner, Message, StageEnded, StageKind, StageMetrics, Tap};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::WeakSender;

/// The stages of a running pipeline, shared by the engine and whoever watches it.
#[derive(Default)]
pub struct RunView {
    stages: Mutex<Vec<Watched>>,
}

/// One stage as the view knows it.
pub(super) struct Watched {
    pub(super) id: String,
    pub(super) path: String,
    pub(super) kind: StageKind,
    pub(super) type_name: String,
    /// Positions of its inputs, one per input port (for an errors stream: the stage whose
    /// rejects it carries, with no port).
    pub(super) inputs: Vec<usize>,
    pub(super) metrics: Arc<StageMetrics>,
    pub(super) joiner: Joiner,
    /// The sending ends of its input queues, one per input port, held weakly so a stage that
    /// ends still closes its queues.
    pub(super) queues: Vec<WeakSender<Message>>,
    pub(super) removed: bool,
}

/// A running pipeline at one moment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GraphSnapshot {
    /// The wall clock when taken, in epoch milliseconds.
    pub at: Millis,
    /// Every stage, in plan order (stages added by edits last).
    pub stages: Vec<StageSnapshot>,
}

/// One stage at one moment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StageSnapshot {
    /// Component id.
    pub id: String,
    /// Key path, e.g. `transforms.per_second`.
    pub path: String,
    /// `source`, `transform` or `sink`.
    pub kind: String,
    /// Stage type.
    pub r#type: String,
    /// Ids of its inputs.
    pub inputs: Vec<String>,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Bytes a source read from its file or broker.
    #[serde(default)]
    pub bytes_read: u64,
    /// Bytes a sink wrote to its file, stdout, topic or browsers.
    #[serde(default)]
    pub bytes_written: u64,
    /// Records dropped as bad or late.
    pub dropped: u64,
    /// The same per reason (`late`, `invalid`, `out_of_range`), those that happened.
    #[serde(default)]
    pub dropped_by: std::collections::BTreeMap<String, u64>,
    /// Batches handled (transforms and sinks).
    pub batches: u64,
    /// Time spent handling them, in milliseconds.
    pub busy_ms: f64,
    /// The watermark its output carries (event time, epoch milliseconds), if any yet.
    pub watermark: Option<Millis>,
    /// How far that watermark is behind the wall clock, in milliseconds.
    pub watermark_lag_ms: Option<Millis>,
    /// Its input queues, one per input.
    pub queues: Vec<QueueSnapshot>,
    /// For a Kafka source: the partitions it reads.
    #[serde(default)]
    pub partitions: Vec<PartitionSnapshot>,
    /// Whether an edit removed it.
    pub removed: bool,
}

/// A partition a Kafka source reads.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartitionSnapshot {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The offset of the next record to read (-1: none read yet).
    pub position: i64,
    /// The offset the next record written will get.
    pub end: i64,
    /// Records still to read.
    pub lag: i64,
    /// The consumer group's committed offset (-1: none).
    pub committed: i64,
}

/// One input queue of a stage.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QueueSnapshot {
    /// The id of the stage that fills it.
    pub from: String,
    /// Messages waiting (0 once the sender has ended).
    pub queued: usize,
    /// How many may wait before the sender has to.
    pub capacity: usize,
}

/// Why a stage cannot be tapped.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TapError {
    /// No stage has that id or key path.
    #[error("no stage `{0}` in the running pipeline (`weir top` lists them)")]
    Unknown(String),
    /// A sink sends nothing on.
    #[error("`{0}` is a sink: nothing leaves it (tap what it reads instead)")]
    Sink(String),
    /// The stage has ended.
    #[error("`{0}` has ended")]
    Ended(String),
}

impl RunView {
    /// An empty view, for a run to register its stages in.
    pub fn new() -> Arc<RunView> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Watched>> {
        self.stages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a started stage (its position is the next one).
    pub(super) fn register(&self, stage: Watched) {
        self.lock().push(stage);
    }

    /// Marks stage `index` removed by an edit.
    pub(super) fn remove(&self, index: usize) {
        if let Some(stage) = self.lock().get_mut(index) {
            stage.removed = true;
        }
    }

    /// The pipeline now.
    pub fn snapshot(&self) -> GraphSnapshot {
        let at = crate::time::now_millis();
        let stages = self.lock();
        let snapshots = stages
            .iter()
            .map(|s| {
                let f = s.metrics.figures();
                StageSnapshot {
                    id: s.id.clone(),
                    path: s.path.clone(),
                    kind: s.kind.noun().to_string(),
                    r#type: s.type_name.clone(),
                    inputs: s.inputs.iter().map(|&i| stages[i].id.clone()).collect(),
                    records_in: f.received,
                    records_out: f.emitted,
                    bytes_read: f.bytes_read,
                    bytes_written: f.bytes_written,
                    dropped: f.dropped,
                    dropped_by: DropReason::ALL
                        .iter()
                        .zip(f.dropped_by)
                        .filter(|(_, n)| *n > 0)
                        .map(|(reason, n)| (reason.name().to_string(), n))
                        .collect(),
                    batches: f.batches,
                    busy_ms: f.busy_nanos as f64 / 1e6,
                    watermark: f.watermark,
                    watermark_lag_ms: f.watermark.map(|w| at.saturating_sub(w)),
                    queues: s
                        .inputs
                        .iter()
                        .zip(&s.queues)
                        .map(|(&from, queue)| {
                            let (queued, capacity) = match queue.upgrade() {
                                Some(sender) => (
                                    sender.max_capacity() - sender.capacity(),
                                    sender.max_capacity(),
                                ),
                                None => (0, 0),
                            };
                            QueueSnapshot {
                                from: stages[from].id.clone(),
                                queued,
                                capacity,
                            }
                        })
                        .collect(),
                    partitions: s
                        .metrics
                        .partitions()
                        .into_iter()
                        .map(|p| PartitionSnapshot {
                            lag: p.lag(),
                            topic: p.topic,
                            partition: p.partition,
                            position: p.position,
                            end: p.end,
                            committed: p.committed,
                        })
                        .collect(),
                    removed: s.removed,
                }
            })
            .collect();
        GraphSnapshot {
            at,
            stages: snapshots,
        }
    }

    /// Taps the output of the stage with id or key path `stage`, with a buffer of `buffer`
    /// batches.
    pub fn tap(&self, stage: &str, buffer: usize) -> Result<Tap, TapError> {
        let stages = self.lock();
        let found = stages
            .iter()
            .rev()
            .find(|s| !s.removed && (s.id == stage || s.path == stage))
            .ok_or_else(|| TapError::Unknown(stage.to_string()))?;
        if found.kind == StageKind::Sink {
            return Err(TapError::Sink(stage.to_string()));
        }
        found
            .joiner
            .tap(buffer)
            .map_err(|StageEnded| TapError::Ended(stage.to_string()))
    }
}

/// `snapshot` as Prometheus text (exposition format 0.0.4).
pub fn prometheus(snapshot: &GraphSnapshot) -> String {
    let mut text = String::new();
    let stage_metric = |text: &mut String,
                        name: &str,
                        kind: &str,
                        help: &str,
                        value: &dyn Fn(&StageSnapshot) -> Option<f64>| {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for s in snapshot.stages.iter().filter(|s| !s.removed) {
            if let Some(v) = value(s) {
                let _ = writeln!(
                    text,
                    "{name}{{stage=\"{}\",type=\"{}\"}} {v}",
                    s.path, s.r#type
                );
            }
        }
    };
    stage_metric(
        &mut text,
        "weir_stage_records_in_total",
        "counter",
        "Records that came into the stage.",
        &|s| (s.kind != "source").then_some(s.records_in as f64),
    );
    stage_metric(
        &mut text,
        "weir_stage_records_out_total",
        "counter",
        "Records the stage sent on.",
        &|s| (s.kind != "sink").then_some(s.records_out as f64),
    );
    stage_metric(
        &mut text,
        "weir_stage_bytes_read_total",
        "counter",
        "Bytes a source read from its file or broker (message keys and values).",
        &|s| (s.kind == "source").then_some(s.bytes_read as f64),
    );
    stage_metric(
        &mut text,
        "weir_stage_bytes_written_total",
        "counter",
        "Bytes a sink wrote to its file, stdout, topic (message keys and values) or browsers.",
        &|s| (s.kind == "sink").then_some(s.bytes_written as f64),
    );
    let _ = writeln!(
        text,
        "# HELP weir_stage_dropped_total Records or input rows the stage dropped, by reason \
         (late, invalid, out_of_range)."
    );
    let _ = writeln!(text, "# TYPE weir_stage_dropped_total counter");
    for s in snapshot.stages.iter().filter(|s| !s.removed) {
        for reason in DropReason::ALL {
            let n = s.dropped_by.get(reason.name()).copied().unwrap_or(0);
            let _ = writeln!(
                text,
                "weir_stage_dropped_total{{stage=\"{}\",type=\"{}\",reason=\"{}\"}} {n}",
                s.path,
                s.r#type,
                reason.name()
            );
        }
    }
    stage_metric(
        &mut text,
        "weir_stage_batches_total",
        "counter",
        "Batches the stage handled.",
        &|s| (s.kind != "source").then_some(s.batches as f64),
    );
    stage_metric(
        &mut text,
        "weir_stage_busy_seconds_total",
        "counter",
        "Time the stage spent handling batches.",
        &|s| (s.kind != "source").then_some(s.busy_ms / 1000.0),
    );
    stage_metric(
        &mut text,
        "weir_stage_watermark_seconds",
        "gauge",
        "Event time up to which the stage's output is complete.",
        &|s| s.watermark.map(|w| w as f64 / 1000.0),
    );
    stage_metric(
        &mut text,
        "weir_stage_watermark_lag_seconds",
        "gauge",
        "How far the stage's watermark is behind the wall clock.",
        &|s| s.watermark_lag_ms.map(|w| w as f64 / 1000.0),
    );
    for (name, help, value) in [
        (
            "weir_kafka_partition_lag_records",
            "Records a Kafka source has still to read from a partition.",
            (|p: &PartitionSnapshot| p.lag) as fn(&PartitionSnapshot) -> i64,
        ),
        (
            "weir_kafka_partition_committed_offset",
            "The consumer group's committed offset of a partition a Kafka source reads (-1: none).",
            |p: &PartitionSnapshot| p.committed,
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        for s in snapshot.stages.iter().filter(|s| !s.removed) {
            for p in &s.partitions {
                let _ = writeln!(
                    text,
                    "{name}{{stage=\"{}\",topic=\"{}\",partition=\"{}\"}} {}",
                    s.path,
                    p.topic,
                    p.partition,
                    value(p)
                );
            }
        }
    }
    for (name, help, value) in [
        (
            "weir_queue_messages",
            "Messages waiting in a stage's input queue.",
            (|q: &QueueSnapshot| q.queued) as fn(&QueueSnapshot) -> usize,
        ),
        (
            "weir_queue_capacity_messages",
            "Messages a stage's input queue holds before its sender waits.",
            |q: &QueueSnapshot| q.capacity,
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} gauge");
        for s in snapshot.stages.iter().filter(|s| !s.removed) {
            for q in &s.queues {
                let _ = writeln!(
                    text,
                    "{name}{{from=\"{}\",to=\"{}\"}} {}",
                    q.from,
                    s.id,
                    value(q)
                );
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Output;

    #[test]
    fn drops_are_shown_per_reason_and_sinks_cannot_be_tapped() {
        let view = RunView::new();
        let mut outputs = Vec::new();
        for (id, kind, inputs) in [
            ("w", StageKind::Transform, vec![]),
            ("out", StageKind::Sink, vec![0]),
        ] {
            let metrics = Arc::new(StageMetrics::default());
            if id == "w" {
                metrics.add_dropped(DropReason::Late, 2);
                metrics.add_dropped(DropReason::Invalid, 1);
            }
            view.register(Watched {
                id: id.into(),
                path: format!("{}.{id}", kind.section()),
                kind,
                type_name: "t".into(),
                queues: vec![],
                inputs,
                metrics,
                joiner: {
                    let mut output = Output::new(Vec::new(), Arc::default());
                    let joiner = output.joiner();
                    outputs.push(output);
                    joiner
                },
                removed: false,
            });
        }
        let snapshot = view.snapshot();
        assert_eq!(snapshot.stages[0].dropped, 3);
        assert_eq!(
            snapshot.stages[0].dropped_by,
            [("invalid".to_string(), 1), ("late".to_string(), 2)].into()
        );
        let text = prometheus(&snapshot);
        for line in [
            "weir_stage_dropped_total{stage=\"transforms.w\",type=\"t\",reason=\"late\"} 2",
            "weir_stage_dropped_total{stage=\"transforms.w\",type=\"t\",reason=\"invalid\"} 1",
            "weir_stage_dropped_total{stage=\"transforms.w\",type=\"t\",reason=\"out_of_range\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert_eq!(view.tap("out", 1).err(), Some(TapError::Sink("out".into())));
        assert_eq!(
            view.tap("nope", 1).err(),
            Some(TapError::Unknown("nope".into()))
        );
        assert!(view.tap("transforms.w", 1).is_ok());
        drop(outputs);
        assert_eq!(view.tap("w", 1).err(), Some(TapError::Ended("w".into())));
    }
}
