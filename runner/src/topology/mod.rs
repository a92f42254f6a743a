//! The pipeline graph: planning it from a document (`plan`), rendering it (`graph`), running it
//! (`run`; a keyed transform with several instances through `parallel`; edits through `reload`;
//! rejected records through `errors`) and watching it run (`view`).

pub mod counts;
pub mod errors;
pub mod graph;
pub mod inputs;
pub mod parallel;
pub mod plan;
pub mod reload;
pub mod run;
pub mod share;
pub mod spec;
pub mod view;

pub use counts::StageCounts;
pub use plan::{Plan, PlannedStage, plan};
pub use run::{RunReport, StageFailure, run, run_reloadable};
pub use spec::{ComponentSpec, InputRef, PipelineSpec};
pub use view::{GraphSnapshot, RunView, StageSnapshot, TapError};
