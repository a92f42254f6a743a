//! The `window` transform's options: the config struct, its documentation for `weir list`, and
//! the checks between options.

use super::aggregate::AggregateOp;
use crate::stage::{Builtin, BuiltinConfig, OptionDoc, OptionIssue, StageKind};
use crate::time::DurationSpec;
use serde::Deserialize;

/// Most windows one row may fall into (`size / slide`).
const MAX_WINDOWS_PER_ROW: i64 = 1000;

crate::stage_options! {
    /// Options of the `window` transform.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WindowConfig, documented in OPTIONS {
        size: DurationSpec => OptionDoc::of("duration", "required", "window length, e.g. \"1s\""),
        slide: Option<DurationSpec> => OptionDoc::of("duration", "size (tumbling)", "distance between window starts; shorter than size for sliding windows"),
        #[serde(default)]
        time: TimeMode => OptionDoc::of("\"event\" | \"processing\"", "\"event\"", "which clock assigns rows to windows and closes them"),
        allowed_lateness: Option<DurationSpec> => OptionDoc::of("duration", "\"0s\"", "event time: how far behind the newest row a row may be and still count"),
        #[serde(default)]
        group_by: Vec<String> => OptionDoc::of("[string]", "[]", "fields whose values form the group key"),
        #[serde(default = "default_aggregates")]
        aggregates: Vec<AggregateConfig> => OptionDoc::of("[{ op, field, as }]", "[{ op = \"count\" }]", "op: count | sum | min | max | avg | count_distinct; field: input field; as: output name"),
        /// Set by the planner when the window's input is shared by a consumer group: which half of
        /// the shared window this stage is (docs/scaling.md).
        part: Option<SharedPart> => OptionDoc::of("\"partial\" | \"merge\"", "unset", "a half of a window shared by a consumer group; the planner sets it (docs/scaling.md)"),
        /// Instances; unset: [`WindowConfig::instances`] picks from the cores.
        parallelism: Option<usize> => OptionDoc::of("integer", "half the cores (at least 1) with group_by and event time; else 1", "instances, each holding the groups whose key hashes to it (event time, group_by)"),
    }
}

/// A half of a window shared by a consumer group.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SharedPart {
    /// Counts this member's partitions, per partition, and emits partials.
    Partial,
    /// Adds up the partials of every partition.
    Merge,
}

impl WindowConfig {
    /// How many instances run: `parallelism` if set; else, for a keyed event-time window, half
    /// the cores (at least 1), since a row costs the window about what it costs the csv parser
    /// (docs/scaling.md); other windows cannot be split and run as one.
    pub(super) fn instances(&self) -> usize {
        self.parallelism.unwrap_or_else(|| {
            if self.group_by.is_empty() || self.time == TimeMode::Processing {
                1
            } else {
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
            }
        })
    }
}

/// One entry of `aggregates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateConfig {
    pub(super) op: AggregateOp,
    pub(super) field: Option<String>,
    #[serde(rename = "as")]
    pub(super) name: Option<String>,
}

impl AggregateConfig {
    /// The output field of this aggregate: `as`, or `op` or `op_field`.
    pub(super) fn output_name(&self) -> String {
        match (&self.name, &self.field) {
            (Some(name), _) => name.clone(),
            (None, None) => self.op.name().to_string(),
            (None, Some(field)) => format!("{}_{field}", self.op.name()),
        }
    }
}

fn default_aggregates() -> Vec<AggregateConfig> {
    vec![AggregateConfig {
        op: AggregateOp::Count,
        field: None,
        name: None,
    }]
}

/// Which clock windows follow.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TimeMode {
    /// The records' event times.
    #[default]
    Event,
    /// The wall clock when records arrive.
    Processing,
}

/// The `window` transform type.
pub fn factory() -> Builtin<WindowConfig> {
    Builtin::new(
        StageKind::Transform,
        "window",
        "Tumbling or sliding windows with group-by and count / sum / min / max / avg",
        OPTIONS,
    )
}

impl BuiltinConfig for WindowConfig {
    fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        let size = self.size.as_millis();
        if size <= 0 {
            issues.push(OptionIssue::new("size", "size must be at least 1ms"));
        }
        if let Some(slide) = self.slide.map(DurationSpec::as_millis) {
            if slide <= 0 {
                issues.push(OptionIssue::new("slide", "slide must be at least 1ms"));
            } else if slide > size {
                issues.push(OptionIssue::new("slide", format!("slide ({slide} ms) is longer than size ({size} ms); rows between windows would be lost")).hint("make slide at most size; equal means tumbling"));
            } else if size / slide > MAX_WINDOWS_PER_ROW {
                issues.push(OptionIssue::new("slide", format!("size / slide is {}; at most {MAX_WINDOWS_PER_ROW} windows per row are allowed", size / slide)));
            }
        }
        let parallelism = self.parallelism.unwrap_or(1);
        if !(1..=256).contains(&parallelism) {
            issues.push(OptionIssue::new(
                "parallelism",
                format!("parallelism must be between 1 and 256, found {parallelism}"),
            ));
        } else if parallelism > 1 && self.group_by.is_empty() {
            issues.push(
                OptionIssue::new(
                    "parallelism",
                    "a window without group_by has one group per window; it cannot be split",
                )
                .hint("remove parallelism, or group by a field"),
            );
        } else if parallelism > 1 && self.time == TimeMode::Processing {
            issues.push(OptionIssue::new(
                "parallelism",
                "processing-time windows run as one instance",
            ));
        }
        if self.part.is_some() && self.aggregates.iter().any(|a| a.op == AggregateOp::Avg) {
            issues.push(
                OptionIssue::new(
                    "aggregates",
                    "`avg` cannot be merged across the members of a consumer group yet",
                )
                .hint("compute `sum` and `count` and divide downstream"),
            );
        }
        if self.part.is_some()
            && self
                .aggregates
                .iter()
                .any(|a| a.op == AggregateOp::CountDistinct)
        {
            issues.push(OptionIssue::new(
                "aggregates",
                "`count_distinct` cannot be merged across the members of a consumer group yet",
            ));
        }
        if self.aggregates.is_empty() {
            issues.push(
                OptionIssue::new("aggregates", "aggregates is empty")
                    .hint("the default is [{ op = \"count\" }]"),
            );
        }
        let mut names: Vec<String> = ["window_start", "window_end"].map(String::from).into();
        for (i, g) in self.group_by.iter().enumerate() {
            if names.contains(g) {
                issues.push(OptionIssue::new(
                    format!("group_by[{i}]"),
                    format!("field `{g}` appears twice in the output"),
                ));
            }
            names.push(g.clone());
        }
        for (i, a) in self.aggregates.iter().enumerate() {
            if a.op != AggregateOp::Count && a.field.is_none() {
                issues.push(
                    OptionIssue::new(
                        format!("aggregates[{i}]"),
                        format!("`{}` needs a `field`", a.op.name()),
                    )
                    .hint(format!(
                        "write {{ op = \"{}\", field = \"...\" }}",
                        a.op.name()
                    )),
                );
            }
            let name = a.output_name();
            if names.contains(&name) {
                issues.push(
                    OptionIssue::new(
                        format!("aggregates[{i}]"),
                        format!("output field `{name}` appears twice"),
                    )
                    .hint("give it another name with `as`"),
                );
            }
            names.push(name);
        }
        issues
    }

    fn warnings(&self) -> Vec<OptionIssue> {
        match (self.time, self.allowed_lateness) {
            (TimeMode::Processing, Some(_)) => vec![OptionIssue::new(
                "allowed_lateness",
                "has no effect on processing-time windows",
            )],
            _ => Vec::new(),
        }
    }
}
