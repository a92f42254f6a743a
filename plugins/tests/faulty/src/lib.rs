//! Test plugin `faulty`: components that panic or fail on purpose, to check that the host turns
//! each into the stage's error and never crashes.

use serde::Deserialize;
use weir_plugin::{Batch, Component, Host, Sink, Transform, option};

/// Options of `panic_after`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanicConfig {
    after: usize,
}

/// Passes batches through, then panics on batch number `after` (0-based).
pub struct PanicAfter {
    left: usize,
}

impl Component for PanicAfter {
    const NAME: &'static str = "panic_after";
    const DESCRIPTION: &'static str = "Passes `after` batches through, then panics";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[option(
        "after",
        "integer",
        "required",
        "batches to pass first",
    )];
    type Config = PanicConfig;

    fn new(config: PanicConfig, _host: &mut Host) -> Result<Self, String> {
        Ok(PanicAfter { left: config.after })
    }
}

impl Transform for PanicAfter {
    fn process(&mut self, batch: &Batch<'_>, host: &mut Host) -> Result<(), String> {
        if self.left == 0 {
            panic!("deliberate panic in a plugin");
        }
        self.left -= 1;
        let mut out = weir_plugin::BatchBuilder::new(batch.names().iter().copied());
        for row in 0..batch.len() {
            for column in 0..batch.names().len() {
                out.push(batch.get(row, column));
            }
            out.end_row(batch.time(row));
        }
        host.emit(&mut out)
    }
}

/// Options of `fail_create` (none).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Cannot be created.
pub struct FailCreate;

impl Component for FailCreate {
    const NAME: &'static str = "fail_create";
    const DESCRIPTION: &'static str = "Fails to start";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[];
    type Config = NoConfig;

    fn new(_config: NoConfig, _host: &mut Host) -> Result<Self, String> {
        Err("cannot start: the simulated device is missing".into())
    }
}

impl Transform for FailCreate {
    fn process(&mut self, _batch: &Batch<'_>, _host: &mut Host) -> Result<(), String> {
        Ok(())
    }
}

/// A sink whose every write fails.
pub struct Reject;

impl Component for Reject {
    const NAME: &'static str = "reject";
    const DESCRIPTION: &'static str = "Fails every write";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] = &[];
    type Config = NoConfig;

    fn new(_config: NoConfig, _host: &mut Host) -> Result<Self, String> {
        Ok(Reject)
    }
}

impl Sink for Reject {
    fn write(&mut self, _batch: &Batch<'_>, _host: &mut Host) -> Result<(), String> {
        Err("disk full (simulated)".into())
    }
}

weir_plugin::export_plugin!(
    name: "faulty",
    version: "0.0.1",
    components: [transform(PanicAfter), transform(FailCreate), sink(Reject)],
);
