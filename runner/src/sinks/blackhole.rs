//! Sink `blackhole`: accepts records and discards them (for benchmarks and dry runs). The
//! engine's per-stage counters still report how many arrived.

use crate::record::Batch;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, Sink, Stage, StageConfig, StageError, StageKind,
    StageResult,
};
use async_trait::async_trait;
use serde::Deserialize;

/// Options of the `blackhole` sink (none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {}

/// The `blackhole` sink type.
pub fn factory() -> Builtin<BlackholeConfig> {
    Builtin::new(
        StageKind::Sink,
        "blackhole",
        "Discards records (the run summary still counts them)",
        &[],
    )
}

impl BuiltinConfig for BlackholeConfig {}

impl StageConfig for BlackholeConfig {
    fn build(&self, _cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Sink(Box::new(Blackhole)))
    }
}

struct Blackhole;

#[async_trait]
impl Sink for Blackhole {
    async fn write(&mut self, _batch: Batch) -> StageResult {
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        Ok(())
    }
}
