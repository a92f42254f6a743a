//! Sink `console`: writes records to standard output, one line each.

use crate::format::lines::{Encoder, Format};
use crate::progress;
use crate::record::Batch;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, Sink, Stage, StageConfig, StageError,
    StageKind, StageMetrics, StageResult,
};
use async_trait::async_trait;
use serde::Deserialize;
use std::io::Write;
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `console` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ConsoleConfig, documented in OPTIONS {
        #[serde(default)]
        format: Format => OptionDoc::of("\"json\" | \"seed\"", "\"json\"", "json: one object per record; seed: one [{\"key\":value},...] array per window"),
    }
}

/// The `console` sink type.
pub fn factory() -> Builtin<ConsoleConfig> {
    Builtin::new(
        StageKind::Sink,
        "console",
        "Prints records to standard output, one line each",
        OPTIONS,
    )
}

impl BuiltinConfig for ConsoleConfig {}

impl StageConfig for ConsoleConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Sink(Box::new(Console {
            encoder: Encoder::new(self.format),
            buffer: Vec::with_capacity(64 * 1024),
            metrics: Arc::clone(&cx.metrics),
        })))
    }
}

struct Console {
    encoder: Encoder,
    buffer: Vec<u8>,
    metrics: Arc<StageMetrics>,
}

#[async_trait]
impl Sink for Console {
    async fn write(&mut self, batch: Batch) -> StageResult {
        self.buffer.clear();
        self.encoder.encode(&batch, &mut self.buffer);
        let buffer = &self.buffer;
        // stdout may be a slow pipe; let the runtime move other tasks off this thread meanwhile.
        tokio::task::block_in_place(|| {
            progress::suspend(|| {
                let mut out = std::io::stdout().lock();
                out.write_all(buffer).and_then(|()| out.flush())
            })
        })
        .map_err(|e| {
            batch.acks().fail();
            StageError::stream("write to", "stdout", e)
        })?;
        self.metrics.add_bytes_written(self.buffer.len() as u64);
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        std::io::stdout()
            .flush()
            .map_err(|e| StageError::stream("flush", "stdout", e))
    }
}
