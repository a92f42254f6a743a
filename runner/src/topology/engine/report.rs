//! How a run ended: the stages that failed and every stage's counts.

use super::super::counts::StageCounts;
use crate::stage::StageError;

/// A stage that failed.
#[derive(Debug)]
pub struct StageFailure {
    /// Its key path, e.g. `sinks.out`.
    pub path: String,
    /// Its type.
    pub type_name: String,
    /// What happened.
    pub error: StageError,
}

impl std::fmt::Display for StageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {} ({}) failed: {}",
            self.path, self.type_name, self.error
        )
    }
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Stages that failed (empty for a clean run).
    pub failures: Vec<StageFailure>,
    /// Counts per stage, in plan order.
    pub counts: Vec<StageCounts>,
}
