//! Reloading a running pipeline: what an edited file may change while the pipeline runs, and how.
//! A component whose type, options (with what it inherits) and inputs are the same keeps running
//! untouched, with its state. This version applies edits of sinks: a changed sink is finished
//! (flushed) and replaced by one built from the new options, on the same input, between two
//! batches, so nothing is lost or delivered twice and everything upstream (sources, their
//! positions, window state) goes on as it was; a removed sink becomes a discard. Any other edit
//! (a source or transform changed, added or removed, a sink added or fed from other inputs, a
//! sink that cannot be replaced while running, such as a Kafka sink) is refused with the reason,
//! and the pipeline keeps running as it was.

use super::plan::Plan;
use crate::record::Batch;
use crate::stage::{BuildContext, Sink, StageConfig, StageKind, StageResult};
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
            .map(|s| Running {
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
            })
            .collect()
    }
}

/// A sink to replace, by its position in the running plan.
pub struct Swap {
    /// Position in the running plan.
    pub index: usize,
    /// The new sink's config; `None` for a removed sink (it becomes a discard).
    pub config: Option<Box<dyn StageConfig>>,
    /// The new stages' description, for `running` once applied.
    pub running: Running,
}

/// Compares `edited` with what runs; the sinks to replace, or why the edit cannot be applied
/// while running.
pub fn sink_swaps(running: &[Running], edited: Plan) -> Result<Vec<Swap>, String> {
    let new = Running::of(&edited);
    let refuse = |what: String| -> Result<Vec<Swap>, String> {
        Err(format!(
            "{what}; only sinks can change while running: restart to apply"
        ))
    };
    let upstream = |stages: &[Running]| -> Vec<(String, String)> {
        stages
            .iter()
            .filter(|s| s.kind != StageKind::Sink)
            .map(|s| (s.id.clone(), s.fingerprint.clone()))
            .collect()
    };
    let (old_up, new_up) = (upstream(running), upstream(&new));
    if old_up != new_up {
        let mut changed: Vec<&str> = new_up
            .iter()
            .filter(|s| !old_up.contains(s))
            .map(|(id, _)| id.as_str())
            .chain(
                old_up
                    .iter()
                    .filter(|s| !new_up.contains(s))
                    .map(|(id, _)| id.as_str()),
            )
            .collect();
        changed.sort_unstable();
        changed.dedup();
        return refuse(format!(
            "sources or transforms changed ({})",
            changed.join(", ")
        ));
    }
    let mut swaps = Vec::new();
    let mut configs: Vec<Option<Box<dyn StageConfig>>> =
        edited.stages.into_iter().map(|s| Some(s.config)).collect();
    for (new_index, sink) in new
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StageKind::Sink)
    {
        let Some(index) = running
            .iter()
            .position(|r| r.kind == StageKind::Sink && r.id == sink.id)
        else {
            return refuse(format!("sink `{}` is new", sink.id));
        };
        let old = &running[index];
        if old.fingerprint == sink.fingerprint {
            continue;
        }
        if old.inputs != sink.inputs {
            return refuse(format!("sink `{}` reads other inputs", sink.id));
        }
        if !old.replaceable || !sink.replaceable {
            return refuse(format!(
                "{} sink `{}` changed, and it cannot be replaced while running",
                old.type_name, sink.id
            ));
        }
        swaps.push(Swap {
            index,
            config: configs[new_index].take(),
            running: sink.clone(),
        });
    }
    for (index, old) in running.iter().enumerate() {
        if old.kind == StageKind::Sink
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
            swaps.push(Swap {
                index,
                config: None,
                running: Running {
                    fingerprint: "removed".into(),
                    ..old.clone()
                },
            });
        }
    }
    Ok(swaps)
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
    fn only_replaceable_sinks_change_while_running() {
        let running = Running::of(&version("json", "\"1s\"", "t"));
        assert!(
            sink_swaps(&running, version("json", "\"1s\"", "t"))
                .unwrap()
                .is_empty()
        );
        let swaps = sink_swaps(&running, version("seed", "\"1s\"", "t")).unwrap();
        assert_eq!(swaps.len(), 1);
        assert_eq!(swaps[0].running.id, "out");
        let refused = |plan| sink_swaps(&running, plan).err().unwrap();
        assert!(
            refused(version("json", "\"2s\"", "t")).contains("sources or transforms changed (w)")
        );
        assert!(refused(version("json", "\"1s\"", "u")).contains("kafka sink `k` changed"));
        let removed = plan(
            &BASE
                .replace("FORMAT", "json")
                .replace("TOPIC", "t")
                .replace(
                    "[sinks.out]\ntype = \"console\"\ninputs = [\"w\"]\nformat = \"json\"\n",
                    "",
                ),
        );
        let swaps = sink_swaps(&running, removed).unwrap();
        assert_eq!((swaps.len(), swaps[0].config.is_none()), (1, true));
    }
}
