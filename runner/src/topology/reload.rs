//! Reloading a running pipeline: what an edited file may change while the pipeline runs, and how.
//! A component whose type, options (with what it inherits) and inputs are the same keeps running
//! untouched, with its state. A changed transform is offered its edited self and keeps running
//! with the new settings and all it holds, if it can take them (`Transform::can_adopt`: a
//! window's `allowed_lateness`, a filter's values); a changed sink is finished (flushed) and
//! replaced by one built from the new options, on the same input, between two batches; a removed
//! sink becomes a discard; an added transform or sink joins the outputs it reads; a removed
//! transform finishes and stops. Nothing is lost or delivered twice, and everything upstream goes
//! on as it was. Any other edit (a source changed, added or removed, a transform or sink reading
//! other inputs, a sink that cannot be replaced or started while running, such as a Kafka sink)
//! is refused with the reason, and the pipeline keeps running as it was.

use super::plan::{Plan, PlannedStage};
use crate::record::Batch;
use crate::stage::{
    BuildContext, EditRefusal, Sink, StageConfig, StageKind, StageResult, Transform,
};
use async_trait::async_trait;
use tokio::sync::oneshot;

/// An edited pipeline to apply to the running one, and where to say what happened.
pub struct Reload {
    /// The new plan, checked.
    pub plan: Plan,
    /// What was applied, or why nothing was.
    pub reply: oneshot::Sender<Result<ReloadOutcome, ReloadError>>,
}

/// What an applied edit changed, one phrase per stage ("transforms.t changed (its state kept)").
#[derive(Debug, Default)]
pub struct ReloadOutcome {
    /// The changes, in the order they were made.
    pub changed: Vec<String>,
}

impl std::fmt::Display for ReloadOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.changed.is_empty() {
            f.write_str("nothing changed")
        } else {
            f.write_str(&self.changed.join(", "))
        }
    }
}

/// Why an edit was not applied; the pipeline keeps running as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The edit changes what a running pipeline cannot change (a source, a stage's inputs, a sink
    /// that cannot be replaced while running).
    #[error("{0}; restart to apply")]
    NeedsRestart(String),
    /// A changed transform cannot take its edited settings and keep what it holds.
    #[error("{stage} cannot take the edit: {refusal}; restart to apply")]
    Refused {
        /// The transform's key path.
        stage: String,
        /// Why.
        refusal: EditRefusal,
    },
    /// A stage the edit touches has ended (its input was exhausted).
    #[error("{stage} has already ended")]
    Ended {
        /// The stage's key path.
        stage: String,
    },
    /// An edited or added stage could not be built or started.
    #[error("{stage}: {reason}")]
    NotStarted {
        /// The stage's key path.
        stage: String,
        /// The build's error.
        reason: String,
    },
}

/// What a running stage is, for comparing with an edit.
#[derive(Clone, Debug)]
pub struct Running {
    /// Component id.
    pub id: String,
    /// Role.
    pub kind: StageKind,
    /// Stage type.
    pub type_name: String,
    /// Ids of its inputs.
    pub inputs: Vec<String>,
    /// Type, options and inputs as text (`PlannedStage::fingerprint`).
    pub fingerprint: String,
    /// Whether it may be finished and replaced while the pipeline runs (a sink).
    pub replaceable: bool,
}

impl Running {
    /// The running stages of `plan`, in plan order.
    pub fn of(plan: &Plan) -> Vec<Running> {
        plan.stages
            .iter()
            .map(|s| Running::stage(plan, s))
            .collect()
    }

    /// Stage `index` of `plan`.
    pub fn of_stage(plan: &Plan, index: usize) -> Running {
        Running::stage(plan, &plan.stages[index])
    }

    fn stage(plan: &Plan, s: &PlannedStage) -> Running {
        Running {
            id: s.id.clone(),
            kind: s.kind,
            type_name: s.type_name.clone(),
            inputs: s
                .inputs
                .iter()
                .map(|&i| plan.stages[i].id.clone())
                .collect(),
            fingerprint: s.fingerprint.clone(),
            replaceable: s.config.replaceable_while_running(),
        }
    }
}

/// A sink to replace, by its position in the running plan.
pub struct Swap {
    /// Position in the running plan.
    pub index: usize,
    /// The new sink's config; `None` for a removed sink (it becomes a discard).
    pub config: Option<Box<dyn StageConfig>>,
    /// The new stage's description, for `running` once applied.
    pub running: Running,
}

/// A transform to offer its edited self, by its position in the running plan.
pub struct Retune {
    /// Position in the running plan.
    pub index: usize,
    /// The edited config.
    pub config: Box<dyn StageConfig>,
    /// The new stage's description, for `running` once applied.
    pub running: Running,
}

/// What an edit changes in the running pipeline.
#[derive(Default)]
pub struct Changes {
    /// Transforms offered their edited selves (applied first: they may still refuse).
    pub retunes: Vec<Retune>,
    /// Sinks replaced or removed.
    pub swaps: Vec<Swap>,
    /// Transforms and sinks added, with their inputs by id (an input may be added too).
    pub added: Vec<PlannedStage>,
    /// Ids of the inputs of each of `added`.
    pub added_inputs: Vec<Vec<String>>,
    /// Transforms removed, by position in the running plan: they finish (emitting what they
    /// hold to their sinks, which are removed too) and stop.
    pub retired: Vec<usize>,
}

impl Changes {
    /// Whether the edit changes nothing that runs.
    pub fn is_empty(&self) -> bool {
        self.retunes.is_empty()
            && self.swaps.is_empty()
            && self.added.is_empty()
            && self.retired.is_empty()
    }
}

/// Compares `edited` with what runs; what to change, or why the edit cannot be applied while
/// running.
pub fn changes(running: &[Running], edited: Plan) -> Result<Changes, ReloadError> {
    let new = Running::of(&edited);
    let refuse =
        |what: String| -> Result<Changes, ReloadError> { Err(ReloadError::NeedsRestart(what)) };
    // What runs now: removed sinks and transforms stay in the plan (a discard, a finished task)
    // but count as gone.
    let live = |r: &&Running| r.fingerprint != REMOVED;
    let sources = |stages: &[Running]| -> Vec<(String, String)> {
        let mut ids: Vec<_> = stages
            .iter()
            .filter(|s| s.kind == StageKind::Source)
            .map(|s| (s.id.clone(), s.fingerprint.clone()))
            .collect();
        ids.sort();
        ids
    };
    let (old_sources, new_sources) = (sources(running), sources(&new));
    if old_sources != new_sources {
        return refuse(format!(
            "sources cannot change while running ({})",
            symmetric_difference(&old_sources, &new_sources).join(", ")
        ));
    }
    let find = |id: &str, kind| {
        running
            .iter()
            .enumerate()
            .filter(|(_, r)| live(r))
            .find(|(_, r)| r.kind == kind && r.id == id)
            .map(|(i, _)| i)
    };
    // Nothing that runs on may lose every reader (it would take that as its end).
    for (i, old) in running.iter().enumerate().filter(|(_, r)| live(r)) {
        let read_now = running
            .iter()
            .filter(live)
            .any(|r| r.inputs.contains(&old.id));
        let read_after = new.iter().any(|r| r.inputs.contains(&old.id));
        let stays = new.iter().any(|r| r.kind == old.kind && r.id == old.id);
        if old.kind != StageKind::Sink && stays && read_now && !read_after {
            return refuse(format!("nothing would read `{}` any more", running[i].id));
        }
    }
    let mut changes = Changes::default();
    let mut stages: Vec<Option<PlannedStage>> = edited.stages.into_iter().map(Some).collect();
    for (new_index, stage) in new.iter().enumerate() {
        let kind = stage.kind;
        if kind == StageKind::Source {
            continue;
        }
        let role = if kind == StageKind::Sink {
            "sink"
        } else {
            "transform"
        };
        let Some(index) = find(&stage.id, kind) else {
            if !stage.replaceable {
                return refuse(format!(
                    "{} {role} `{}` is new, and it cannot be started while running",
                    stage.type_name, stage.id
                ));
            }
            changes
                .added
                .push(stages[new_index].take().expect("each stage once"));
            changes.added_inputs.push(stage.inputs.clone());
            continue;
        };
        let old = &running[index];
        if old.fingerprint == stage.fingerprint {
            continue;
        }
        if old.inputs != stage.inputs {
            return refuse(format!("{role} `{}` reads other inputs", stage.id));
        }
        let config = stages[new_index].take().expect("each stage once").config;
        if kind == StageKind::Transform {
            changes.retunes.push(Retune {
                index,
                config,
                running: stage.clone(),
            });
            continue;
        }
        if !old.replaceable || !stage.replaceable {
            return refuse(format!(
                "{} sink `{}` changed, and it cannot be replaced while running",
                old.type_name, stage.id
            ));
        }
        changes.swaps.push(Swap {
            index,
            config: Some(config),
            running: stage.clone(),
        });
    }
    for (index, old) in running.iter().enumerate().filter(|(_, r)| live(r)) {
        if old.kind == StageKind::Source || new.iter().any(|n| n.kind == old.kind && n.id == old.id)
        {
            continue;
        }
        if !old.replaceable {
            return refuse(format!(
                "{} sink `{}` removed, and it cannot be stopped while running",
                old.type_name, old.id
            ));
        }
        if old.kind == StageKind::Transform {
            changes.retired.push(index);
            continue;
        }
        changes.swaps.push(Swap {
            index,
            config: None,
            running: Running {
                fingerprint: REMOVED.into(),
                ..old.clone()
            },
        });
    }
    Ok(changes)
}

/// The fingerprint of a removed sink (its discard runs on) or transform (its task has ended).
pub const REMOVED: &str = "removed";

/// Ids in one list but not the other, sorted.
fn symmetric_difference<'a>(a: &'a [(String, String)], b: &'a [(String, String)]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = a
        .iter()
        .filter(|s| !b.contains(s))
        .chain(b.iter().filter(|s| !a.contains(s)))
        .map(|(id, _)| id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What a transform task is told between two batches.
pub enum TransformControl {
    /// Its edited self.
    Offer(TransformEdit),
    /// It was removed: finish (emit what it holds) and stop.
    Retire,
}

/// What a transform task is offered: its edited self, built from the edited config.
pub struct TransformEdit {
    /// The edited transform.
    pub edited: Box<dyn Transform>,
    /// The running transform's answer: whether it can take the edit.
    pub verdict: oneshot::Sender<Result<(), EditRefusal>>,
    /// Whether to take it after all (every transform of the edit accepted it).
    pub commit: oneshot::Receiver<bool>,
}

/// What a sink task is told to become.
pub struct SinkSwap {
    /// The new config (`None`: discard from now on).
    pub config: Option<Box<dyn StageConfig>>,
    /// How to build it.
    pub cx: BuildContext,
    /// Told once the new sink is in place (or why it could not be built).
    pub done: oneshot::Sender<Result<(), String>>,
}

/// A removed sink's stand-in: records reaching it count as delivered and go nowhere.
pub struct Discard;

#[async_trait]
impl Sink for Discard {
    async fn write(&mut self, _batch: Batch) -> StageResult {
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refusal is told as "<stage> cannot take the edit: <why>; restart to apply", the advice
    /// once (a transform's reason says only what stands in the way).
    #[test]
    fn a_refused_edit_reads_as_one_sentence() {
        let refused = ReloadError::Refused {
            stage: "transforms.top".into(),
            refusal: EditRefusal::new("`by` cannot change while running"),
        };
        assert_eq!(
            refused.to_string(),
            "transforms.top cannot take the edit: `by` cannot change while running; restart to \
             apply"
        );
        let nothing = ReloadOutcome::default();
        assert_eq!(nothing.to_string(), "nothing changed");
    }
    use crate::config::parse_text;

    fn plan(text: &str) -> Plan {
        let doc = parse_text("p.toml", text.into(), &[], |_| None).unwrap();
        let (plan, diagnostics) = crate::topology::plan(&doc, &crate::builtins::registry());
        plan.unwrap_or_else(|| panic!("{diagnostics}"))
    }

    const BASE: &str = r#"
[sources.log]
type = "csv"
path = "log.csv"
[transforms.w]
type = "window"
inputs = ["log"]
size = "1s"
[sinks.out]
type = "console"
inputs = ["w"]
format = "FORMAT"
[sinks.k]
type = "kafka"
brokers = "127.0.0.1:1"
inputs = ["w"]
topic = "TOPIC"
"#;

    fn version(format: &str, size: &str, topic: &str) -> Plan {
        plan(
            &BASE
                .replace("FORMAT", format)
                .replace("\"1s\"", size)
                .replace("TOPIC", topic),
        )
    }

    #[test]
    fn sinks_change_transforms_are_offered_their_edits_and_kafka_sinks_stay() {
        let running = Running::of(&version("json", "\"1s\"", "t"));
        assert!(
            changes(&running, version("json", "\"1s\"", "t"))
                .unwrap()
                .is_empty()
        );
        let swaps = changes(&running, version("seed", "\"1s\"", "t"))
            .unwrap()
            .swaps;
        assert_eq!(swaps.len(), 1);
        assert_eq!(swaps[0].running.id, "out");
        let retuned = changes(&running, version("json", "\"2s\"", "t")).unwrap();
        assert_eq!(
            (retuned.retunes.len(), retuned.swaps.len()),
            (1, 0),
            "the window is offered its edit (it refuses a new size itself)"
        );
        let refused = |plan| changes(&running, plan).err().unwrap().to_string();
        assert!(refused(version("json", "\"1s\"", "u")).contains("kafka sink `k` changed"));
        assert!(
            refused(plan(
                &BASE
                    .replace("log.csv", "other.csv")
                    .replace("FORMAT", "json")
                    .replace("TOPIC", "t")
            ))
            .contains("sources cannot change while running (log)")
        );
        let added = changes(
            &running,
            plan(&format!(
                "{}[sinks.more]\ntype = \"console\"\ninputs = [\"log\", \"w\"]\n",
                BASE.replace("FORMAT", "json").replace("TOPIC", "t")
            )),
        )
        .unwrap();
        assert_eq!(added.added.len(), 1);
        assert_eq!(added.added_inputs[0], ["log", "w"]);
        let branch = changes(
            &running,
            plan(&format!(
                "{}[transforms.f]\ntype = \"filter\"\ninputs = [\"log\"]\nfield = \"a\"\nequals = 1\n\
                 [sinks.fo]\ntype = \"console\"\ninputs = [\"f\"]\n",
                BASE.replace("FORMAT", "json").replace("TOPIC", "t")
            )),
        )
        .unwrap();
        let ids: Vec<&str> = branch.added.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["f", "fo"]);
        assert!(
            refused(plan(&format!(
                "{}[sinks.k2]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ninputs = [\"w\"]\ntopic = \"t2\"\nguarantee = \"at-least-once\"\n",
                BASE.replace("FORMAT", "json").replace("TOPIC", "t")
            )))
            .contains("kafka sink `k2` is new, and it cannot be started while running")
        );
        let removed = plan(
            &BASE
                .replace("FORMAT", "json")
                .replace("TOPIC", "t")
                .replace(
                    "[sinks.out]\ntype = \"console\"\ninputs = [\"w\"]\nformat = \"json\"\n",
                    "",
                ),
        );
        let swaps = changes(&running, removed).unwrap().swaps;
        assert_eq!((swaps.len(), swaps[0].config.is_none()), (1, true));
    }
}
