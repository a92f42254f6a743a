//! Plugin `bench`: `bench.filter` keeps the rows whose field equals a value, like the built-in
//! `filter` with `equals`, so the two can be timed against each other
//! (`runner/examples/plugin_overhead.rs`). `bench.filter_copy` does the same but builds its output
//! batch and has the host copy it, the path a transform that changes values takes.

use serde::Deserialize;
use weir_plugin::{Batch, BatchBuilder, Component, Field, Host, Transform, option};

/// Options.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    field: String,
    equals: String,
}

/// The running filter: emits a selection of the input's rows (no copy).
pub struct Filter {
    config: Config,
    rows: Vec<u32>,
}

/// The running copying filter: builds the output batch.
pub struct FilterCopy {
    config: Config,
    out: BatchBuilder,
}

impl Component for Filter {
    const NAME: &'static str = "filter";
    const DESCRIPTION: &'static str =
        "Keeps rows whose field equals a value (the built-in filter, as a plugin)";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[
        option("field", "string", "required", "the field to test"),
        option(
            "equals",
            "string",
            "required",
            "keep rows whose field has this text",
        ),
    ];
    type Config = Config;

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        Ok(Filter {
            config,
            rows: Vec::new(),
        })
    }
}

impl Transform for Filter {
    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String> {
        let Some(target) = batch.index_of(&self.config.field) else {
            return Ok(());
        };
        self.rows.clear();
        let wanted = Field::Str(&self.config.equals);
        self.rows.extend(
            (0..batch.len())
                .filter(|&row| batch.get(row, target) == wanted)
                .map(|row| row as u32),
        );
        host.emit_rows(&self.rows)
    }
}

impl Component for FilterCopy {
    const NAME: &'static str = "filter_copy";
    const DESCRIPTION: &'static str = "Like filter, but builds its output batch (the copying path)";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = Filter::OPTIONS;
    type Config = Config;

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        Ok(FilterCopy {
            config,
            out: BatchBuilder::default(),
        })
    }
}

impl Transform for FilterCopy {
    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String> {
        if self.out.names() != batch.names() {
            self.out = BatchBuilder::new(batch.names().iter().copied());
        }
        let Some(target) = batch.index_of(&self.config.field) else {
            return Ok(());
        };
        let columns = batch.columns();
        for row in 0..batch.len() {
            if batch.get(row, target) != Field::Str(&self.config.equals) {
                continue;
            }
            for column in 0..columns {
                self.out.push(batch.get(row, column));
            }
            self.out.end_row(batch.time(row));
        }
        host.emit(&mut self.out)
    }
}

weir_plugin::export_plugin!(name: "bench", version: env!("CARGO_PKG_VERSION"), components: [transform(Filter), transform(FilterCopy)]);
