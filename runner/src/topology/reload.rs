//! Reloading a running pipeline: what an edited file may change while the pipeline runs, and how.
//! A component whose type, options (with what it inherits) and inputs are the same keeps running
//! untouched, with its state. A changed transform is offered its edited self and keeps running
//! with the new settings and all it holds, if it can take them (`Transform::can_adopt`: a
//! window's `allowed_lateness`, a filter's values); a changed sink is finished (flushed) and
//! replaced by one built from the new options, on the same input, between two batches; a removed
//! sink becomes a discard; an added sink joins the outputs it reads. Nothing is lost or delivered
//! twice, and everything upstream goes on as it was. Any other edit (a source changed, added or
//! removed, a transform added, removed or reading other inputs, a sink reading other inputs, a
//! sink that cannot be replaced or started while running, such as a Kafka sink) is refused with
//! the reason, and the pipeline keeps running as it was.

use super::plan::{Plan, PlannedStage};
use crate::record::Batch;
use crate::stage::{BuildContext, Sink, StageConfig, StageKind, StageResult, Transform};
use async_trait::async_trait;
use tokio::sync::oneshot;

/// An edited pipeline to apply to the running one, and where to say what happened.
pub struct Reload {
    /// The new plan, checked.
    pub plan: Plan,
    /// What was applied, or why nothing was.
    pub reply: oneshot::Sender<Result<String, String>>,
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
    /// Sinks added, their inputs given as positions in the running plan.
    pub added: Vec<PlannedStage>,
}

impl Changes {
    /// Whether the edit changes nothing that runs.
    pub fn is_empty(&self) -> bool {
        self.retunes.is_empty() && self.swaps.is_empty() && self.added.is_empty()
    }
}

/// Compares `edited` with what runs; what to change, or why the edit cannot be applied while
/// running.
pub fn changes(running: &[Running], edited: Plan) -> Result<Changes, String> {
    let new = Running::of(&edited);
    let refuse =
        |what: String| -> Result<Changes, String> { Err(format!("{what}; restart to apply")) };
    let with_kind = |stages: &[Running], kind| -> Vec<(String, String)> {
        let mut ids: Vec<_> = stages
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| (s.id.clone(), s.fingerprint.clone()))
            .collect();
        ids.sort();
        ids
    };
    let (old_sources, new_sources) = (
        with_kind(running, StageKind::Source),
        with_kind(&new, StageKind::Source),
    );
    if old_sources != new_sources {
        let mut changed: Vec<&str> = symmetric_difference(&old_sources, &new_sources);
        changed.dedup();
        return refuse(format!(
            "sources cannot change while running ({})",
            changed.join(", ")
        ));
    }
    let ids = |stages: &[Running], kind| -> Vec<String> {
        with_kind(stages, kind)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    if ids(running, StageKind::Transform) != ids(&new, StageKind::Transform) {
        let (old, new) = (
            with_kind(running, StageKind::Transform),
            with_kind(&new, StageKind::Transform),
        );
        let old_ids: Vec<&String> = old.iter().map(|(id, _)| id).collect();
        let new_ids: Vec<&String> = new.iter().map(|(id, _)| id).collect();
        let mut differ: Vec<&str> = old_ids
            .iter()
            .filter(|id| !new_ids.contains(id))
            .chain(new_ids.iter().filter(|id| !old_ids.contains(id)))
            .map(|id| id.as_str())
            .collect();
        differ.sort_unstable();
        return refuse(format!(
            "transforms cannot be added or removed while running ({})",
            differ.join(", ")
        ));
    }
    let mut changes = Changes::default();
    let position = |id: &str, kind| running.iter().position(|r| r.kind == kind && r.id == id);
    let mut stages: Vec<Option<PlannedStage>> = edited.stages.into_iter().map(Some).collect();
    for (new_index, stage) in new.iter().enumerate() {
        let kind = stage.kind;
        if kind == StageKind::Source {
            continue;
        }
        let Some(index) = position(&stage.id, kind) else {
            // A new sink (new transforms were refused above).
            if !stage.replaceable {
                return refuse(format!(
                    "{} sink `{}` is new, and it cannot be started while running",
                    stage.type_name, stage.id
                ));
            }
            let mut planned = stages[new_index].take().expect("each stage once");
            planned.inputs = stage
                .inputs
                .iter()
                .map(|id| {
                    running
                        .iter()
                        .position(|r| r.kind != StageKind::Sink && &r.id == id)
                        .expect("inputs of an added sink run: sources and transforms are unchanged")
                })
                .collect();
            changes.added.push(planned);
            continue;
        };
        let old = &running[index];
        if old.fingerprint == stage.fingerprint {
            continue;
        }
        let role = if kind == StageKind::Sink {
            "sink"
        } else {
            "transform"
        };
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
    for (index, old) in running.iter().enumerate() {
        if old.kind == StageKind::Sink
            && old.fingerprint != REMOVED
            && !new
                .iter()
                .any(|n| n.kind == StageKind::Sink && n.id == old.id)
        {
            if !old.replaceable {
                return refuse(format!(
                    "{} sink `{}` removed, and it cannot be stopped while running",
                    old.type_name, old.id
                ));
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
    }
    Ok(changes)
}

/// The fingerprint of a removed sink (its discard runs on).
const REMOVED: &str = "removed";

/// Ids in one list but not the other, sorted.
fn symmetric_difference<'a>(a: &'a [(String, String)], b: &'a [(String, String)]) -> Vec<&'a str> {
    let mut ids: Vec<&str> = a
        .iter()
        .filter(|s| !b.contains(s))
        .chain(b.iter().filter(|s| !a.contains(s)))
        .map(|(id, _)| id.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

/// What a transform task is offered: its edited self, built from the edited config.
pub struct TransformEdit {
    /// The edited transform.
    pub edited: Box<dyn Transform>,
    /// The running transform's answer: whether it can take the edit.
    pub verdict: oneshot::Sender<Result<(), String>>,
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
        let refused = |plan| changes(&running, plan).err().unwrap();
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
        assert_eq!(added.added[0].inputs, [0, 1], "inputs by running position");
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
