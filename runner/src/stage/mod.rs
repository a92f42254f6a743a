//! The stage contract, the bottom of the build layer: every built-in and plugin stage, and the
//! engine that runs them, meet here and nowhere else.
//!
//! A pipeline is a graph of stages in three roles ([`StageKind`]): a [`Source`] produces batches
//! until it is done or told to stop; a [`Transform`] turns each incoming batch into zero or more
//! outgoing ones (and may act on a timer or at end of input); a [`Sink`] delivers batches out of
//! the pipeline. A stage type is a [`StageFactory`] that reads a component's options into a
//! [`StageConfig`], which builds the [`Stage`]. The engine (`topology`) runs each stage as its own
//! task and connects them with bounded channels of batches ([`Output`]), so a slow stage slows its
//! inputs instead of growing memory.
//!
//! This module and its children name no stage, no registry and no engine part: they sit on
//! `config` (option documents) and `record` (batches) only.

mod drive;
mod error;
mod factory;
mod kind;
mod metrics;
mod output;
mod rejects;
mod runtime;
mod signals;

pub use drive::{Happening, TransformDriver, Watermarks};
pub use error::{StageError, StageResult, panic_message};
pub use factory::{
    BuildContext, Builtin, BuiltinConfig, Configured, FieldUse, OptionDoc, OptionIssue, Parallel,
    RunResources, StageConfig, StageFactory, option_key, union_of_fields,
};
pub use kind::StageKind;
pub use metrics::{DropReason, Figures, PartitionFigures, StageMetrics};
pub use output::{DownstreamClosed, Joiner, Message, Output, StageEnded, Tap};
pub use rejects::{ERROR_FIELDS, Rejected, Rejects, WeakRejects, error_schema, error_stream};
pub use runtime::{
    EditRefusal, Sink, Source, SourceContext, Stage, Transform, adopt_stateless, blocking,
    can_adopt_stateless,
};
pub use signals::{RunHealth, Shutdown, ShutdownTrigger, shutdown_pair};
#[cfg(test)]
pub mod testing;
