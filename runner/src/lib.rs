//! weir: a streaming pipeline runner configured by TOML files.
//!
//! The modules form layers; each uses only modules of its own layer or below (checked by
//! `tests/layers.rs` against the table in docs/architecture.md):
//!
//! 1. data: `ack` (delivery tickets and progress marks), `resume` (the marks a run restarts
//!    from), `record` (batches), `progress`;
//! 2. `config`: the pipeline file read into nodes, with diagnostics; `time`: durations and time
//!    points as options take them;
//! 3. `stage`: the stage contract (roles, errors, factories, the runtime traits);
//! 4. what stages share: `registry` (factories by name), `format` (record formats), `serve`
//!    (HTTP listeners), `kafka` (the Kafka client layer and the embedded broker);
//! 5. the stages: built-ins in `sources`, `transforms`, `sinks`; plugin stages in `plugins`;
//! 6. `builtins`: the list of built-in stage types;
//! 7. `topology`: the declared graph, its plan and the engine that runs it.

pub mod ack;
pub mod api;
pub mod builtins;
pub mod config;
pub mod expr;
pub mod format;
pub mod kafka;
pub mod pipeline_test;
pub mod plugins;
pub mod progress;
pub mod record;
pub mod registry;
pub mod resume;
pub mod schema;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod stage;
pub mod time;
pub mod topology;
pub mod transforms;
