//! Sink `file`: writes records to a file, one line each.
//!
//! `append` defaults to "auto": a run that resumes from committed progress (a `kafka` source with
//! `start = "committed"`, or a `csv` source whose position an earlier exactly-once run committed)
//! appends, so a restart does not erase results whose input was already committed; any other run
//! replaces the file, since it writes everything again. The file is opened when the sink is built
//! (so a path that cannot be written fails the start) and emptied, or not, before the first write:
//! by then every source has said whether it resumes.

use crate::format::lines::{Encoder, Format};
use crate::record::Batch;
use crate::resume::Resumed;
use crate::stage::{
    BuildContext, Builtin, BuiltinConfig, OptionDoc, OptionIssue, Sink, Stage, StageConfig,
    StageError, StageKind, StageMetrics, StageResult,
};
use async_trait::async_trait;
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

crate::stage_options! {
    /// Options of the `file` sink.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct FileConfig, documented in OPTIONS {
        path: PathBuf => OptionDoc::of("string", "required", "file to write (its directory must exist)"),
        #[serde(default)]
        format: Format => OptionDoc::of("\"json\" | \"seed\"", "\"json\"", "as for console"),
        #[serde(default)]
        append: Option<bool> => OptionDoc::of("bool", "auto", "append instead of replacing the file; by default, appends when a source resumes from committed progress (kafka with start = \"committed\", or csv after an exactly-once run)"),
    }
}

/// The `file` sink type.
pub fn factory() -> Builtin<FileConfig> {
    Builtin::new(
        StageKind::Sink,
        "file",
        "Writes records to a file, one line each",
        OPTIONS,
    )
}

impl BuiltinConfig for FileConfig {
    fn warnings(&self) -> Vec<OptionIssue> {
        let parent = self.path.parent().filter(|p| !p.as_os_str().is_empty());
        match parent {
            Some(dir) if !dir.is_dir() => vec![OptionIssue::new(
                "path",
                format!("directory {} does not exist (yet)", dir.display()),
            )],
            _ => Vec::new(),
        }
    }
}

impl StageConfig for FileConfig {
    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| StageError::open_for_writing(&self.path, e))?;
        Ok(Stage::Sink(Box::new(FileSink {
            path: self.path.clone(),
            writer: BufWriter::with_capacity(256 * 1024, file),
            encoder: Encoder::new(self.format),
            buffer: Vec::with_capacity(64 * 1024),
            metrics: Arc::clone(&cx.metrics),
            keep: Keep::Undecided {
                append: self.append,
                resumed: cx.resources.get::<Resumed>(),
            },
        })))
    }
}

struct FileSink {
    path: PathBuf,
    writer: BufWriter<File>,
    encoder: Encoder,
    buffer: Vec<u8>,
    metrics: Arc<StageMetrics>,
    keep: Keep,
}

/// Whether what the file held before this run stays.
enum Keep {
    /// Not yet decided: `append` as configured, else whether a source resumes.
    Undecided {
        append: Option<bool>,
        resumed: Arc<Resumed>,
    },
    Decided,
}

impl FileSink {
    fn error(&self, e: std::io::Error) -> StageError {
        StageError::io("write", &self.path, e)
    }

    /// Empties the file before the first write, unless it is to be appended to.
    fn settle_keep(&mut self) -> std::io::Result<()> {
        if let Keep::Undecided { append, resumed } = &self.keep {
            let append = append.unwrap_or_else(|| resumed.any_source_resumes());
            if !append {
                self.writer.get_ref().set_len(0)?;
            }
            self.keep = Keep::Decided;
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write(&mut self, batch: Batch) -> StageResult {
        if let Err(e) = self.settle_keep() {
            batch.acks().fail();
            return Err(self.error(e));
        }
        self.buffer.clear();
        self.encoder.encode(&batch, &mut self.buffer);
        let (writer, buffer) = (&mut self.writer, &self.buffer);
        // Flushed per batch so readers (`tail -f`, other programs) see each batch as it is done.
        tokio::task::block_in_place(|| writer.write_all(buffer).and_then(|()| writer.flush()))
            .map_err(|e| {
                batch.acks().fail();
                self.error(e)
            })?;
        self.metrics.add_bytes_written(self.buffer.len() as u64);
        Ok(())
    }

    async fn finish(&mut self) -> StageResult {
        self.settle_keep().map_err(|e| self.error(e))?;
        let writer = &mut self.writer;
        tokio::task::block_in_place(|| writer.flush().and_then(|()| writer.get_ref().sync_data()))
            .map_err(|e| self.error(e))
    }
}
