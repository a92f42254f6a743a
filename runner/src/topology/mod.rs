//! The pipeline graph: planning it from a document (`plan`), rendering it (`graph`), running it
//! (`engine`; a keyed transform with several instances through `parallel`; edits through `reload`;
//! rejected records through `errors`; one committed path per marking stage, `mark_paths`) and watching it run (`view`).

pub mod counts;
pub mod engine;
pub mod errors;
pub mod fields;
pub mod graph;
pub mod inputs;
pub mod mark_paths;
pub mod parallel;
pub mod plan;
pub mod reload;
pub mod share;
pub mod spec;
pub mod view;

pub use counts::StageCounts;
pub use engine::{RunReport, StageFailure, run, run_reloadable};
pub use plan::{Plan, PlannedStage, plan};
pub use spec::{ComponentSpec, InputRef, PipelineSpec};
pub use view::{GraphSnapshot, RunView, StageSnapshot, TapError};
