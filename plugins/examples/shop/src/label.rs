//! `shop.label`: replaces a code field (by default `gender`) with a label, e.g. `0` → `female`;
//! a code without a label gets `other`, or with `reject_unknown` is rejected to `<id>.errors`.

use serde::Deserialize;
use std::collections::BTreeMap;
use weir_plugin::{Batch, BatchBuilder, Component, Field, Host, Transform, option};

/// Options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_field")]
    field: String,
    #[serde(default = "default_labels")]
    labels: BTreeMap<String, String>,
    #[serde(default = "default_other")]
    other: String,
    #[serde(default)]
    reject_unknown: bool,
}

fn default_field() -> String {
    "gender".into()
}

fn default_labels() -> BTreeMap<String, String> {
    [("0", "female"), ("1", "male"), ("2", "unknown")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn default_other() -> String {
    "unknown".into()
}

/// The running transform.
pub struct Label {
    config: Config,
    out: BatchBuilder,
}

impl Component for Label {
    const NAME: &'static str = "label";
    const DESCRIPTION: &'static str =
        "Replaces a code field with a label (gender 0/1/2 -> female/male/unknown)";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[
        option("field", "string", "\"gender\"", "the field to relabel"),
        option(
            "labels",
            "{ code = \"label\" }",
            "{ 0 = \"female\", 1 = \"male\", 2 = \"unknown\" }",
            "code to label",
        ),
        option(
            "other",
            "string",
            "\"unknown\"",
            "label for codes not in labels",
        ),
        option(
            "reject_unknown",
            "bool",
            "false",
            "reject rows whose code is not in labels (to `<id>.errors`) instead of labelling them `other`",
        ),
    ];
    type Config = Config;

    fn check(config: &Config) -> Result<(), String> {
        if config.field.is_empty() {
            return Err("field must not be empty".into());
        }
        Ok(())
    }

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        Ok(Label {
            config,
            out: BatchBuilder::default(),
        })
    }
}

impl Transform for Label {
    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String> {
        if self.out.names() != batch.names() {
            self.out = BatchBuilder::new(batch.names().iter().copied());
        }
        let target = batch.index_of(&self.config.field);
        for row in 0..batch.len() {
            let code = target.map(|column| match batch.get(row, column) {
                Field::Str(s) => s.to_string(),
                Field::Int(i) => i.to_string(),
                _ => String::new(),
            });
            let label = code.as_ref().and_then(|code| self.config.labels.get(code));
            if label.is_none() && self.config.reject_unknown {
                let reason = match &code {
                    Some(code) => format!("{} `{code}` has no label", self.config.field),
                    None => format!("no field `{}`", self.config.field),
                };
                host.reject_row(row, &reason)?;
                continue;
            }
            for column in 0..batch.names().len() {
                if Some(column) == target {
                    self.out.push_str(label.unwrap_or(&self.config.other));
                } else {
                    self.out.push(batch.get(row, column));
                }
            }
            self.out.end_row(batch.time(row));
        }
        host.emit(&mut self.out)
    }
}
