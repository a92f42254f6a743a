//! The three roles a stage can have, and the words for them in pipeline files and messages.

use std::fmt;

/// The three roles a stage can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StageKind {
    /// Produces records.
    Source,
    /// Turns records into other records.
    Transform,
    /// Delivers records out of the pipeline.
    Sink,
}

impl StageKind {
    /// All kinds in pipeline order.
    pub const ALL: [StageKind; 3] = [StageKind::Source, StageKind::Transform, StageKind::Sink];

    /// The top-level table that holds components of this kind.
    pub fn section(self) -> &'static str {
        match self {
            StageKind::Source => "sources",
            StageKind::Transform => "transforms",
            StageKind::Sink => "sinks",
        }
    }

    /// Singular name for messages.
    pub fn noun(self) -> &'static str {
        match self {
            StageKind::Source => "source",
            StageKind::Transform => "transform",
            StageKind::Sink => "sink",
        }
    }
}

impl fmt::Display for StageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}
