//! weir: a streaming pipeline runner configured by TOML files.
//!
//! A pipeline file declares sources, transforms and sinks (`config`); the registry maps each
//! `type` to a stage factory (`registry`, with the built-ins in `sources`, `transforms`, `sinks`);
//! the topology checks the graph and runs every stage as its own task over bounded channels of
//! record batches (`topology`, `stage`, `record`).

pub mod ack;
pub mod config;
pub mod generate;
pub mod kafka;
pub mod plugins;
pub mod progress;
pub mod record;
pub mod registry;
pub mod sinks;
pub mod sources;
pub mod stage;
pub mod time;
pub mod topology;
pub mod transforms;

/// The text of a panic payload (panics carry a `&str` or a `String`, almost always).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_string(), |s| s.to_string()),
    }
}
