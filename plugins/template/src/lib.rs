//! Template plugin `template` with one transform, `template.upper`, that upper-cases a text field.
//! Copy this crate to start a plugin (or let `weir plugin new` write one, from this very file):
//! rename it, change the component, keep the shape; plugins/README.md explains it all.

use serde::Deserialize;
use weir_plugin::{Batch, BatchBuilder, Component, Field, Host, Transform, option};

/// The component's options, read from its table in the pipeline file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The field to upper-case.
    field: String,
}

/// The running transform: its config and an output batch it reuses.
pub struct Upper {
    field: String,
    out: BatchBuilder,
}

/// What the transform does to one value.
fn shout(text: &str) -> String {
    text.to_uppercase()
}

impl Component for Upper {
    const NAME: &'static str = "upper";
    const DESCRIPTION: &'static str = "Upper-cases a text field";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[option(
        "field",
        "string",
        "required",
        "the field to upper-case",
    )];
    type Config = Config;

    fn check(config: &Config) -> Result<(), String> {
        if config.field.is_empty() {
            return Err("field must not be empty".into());
        }
        Ok(())
    }

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        Ok(Upper {
            field: config.field,
            out: BatchBuilder::default(),
        })
    }
}

impl Transform for Upper {
    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String> {
        if self.out.names() != batch.names() {
            self.out = BatchBuilder::new(batch.names().iter().copied());
        }
        let target = batch.index_of(&self.field);
        for row in 0..batch.len() {
            for column in 0..batch.names().len() {
                match batch.get(row, column) {
                    Field::Str(text) if Some(column) == target => self.out.push_str(&shout(text)),
                    other => self.out.push(other),
                }
            }
            self.out.end_row(batch.time(row));
        }
        host.emit(&mut self.out)
    }
}

weir_plugin::export_plugin!(
    name: "template",
    version: env!("CARGO_PKG_VERSION"),
    components: [transform(Upper)],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_upper_cased_whatever_their_script() {
        assert_eq!(shout("weir"), "WEIR");
        assert_eq!(shout("straße"), "STRASSE");
        assert_eq!(shout("内蒙古"), "内蒙古");
    }
}
