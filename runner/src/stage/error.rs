//! Why a stage could not be built or stopped with an error: [`StageError`], the one error type
//! the engine handles. Its variants say what failed; subsystems with errors of their own (the
//! Kafka client, plugins, listening sockets) keep their type inside [`StageError::External`],
//! converted by a `From` impl next to their type, so this module names none of them.

use std::error::Error;
use std::path::Path;

/// Why a stage failed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Reading or writing a file or a standard stream failed.
    #[error("cannot {action} {target}{purpose}: {source}")]
    Io {
        /// What was being done, e.g. `open`, `write`.
        action: &'static str,
        /// The file (its path as given) or stream, e.g. `stdout`.
        target: String,
        /// Why, when it helps, with a leading space: ` for writing`; else empty.
        purpose: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The stage's input does not fit its options, found when the input is opened or read
    /// (e.g. a `timestamp_field` that is not one of the file's columns).
    #[error("{0}")]
    Input(String),
    /// The stage's own code, or a plugin's, panicked.
    #[error("panicked: {0}")]
    Panicked(String),
    /// A task of the stage could not be joined (the runtime is shutting down).
    #[error("{what} failed: {message}")]
    Task {
        /// Which task, e.g. `the consumer thread`.
        what: &'static str,
        /// The join error.
        message: String,
    },
    /// A client library, plugin or server the stage uses failed; the inner error says which and
    /// where (a Kafka topic and partition, a plugin library, an address).
    #[error(transparent)]
    External(Box<dyn Error + Send + Sync>),
}

impl StageError {
    /// Reading or writing `path` failed while doing `action`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        StageError::Io {
            action,
            target: path.display().to_string(),
            purpose: "",
            source,
        }
    }

    /// Opening `path` to write to it failed.
    pub fn open_for_writing(path: &Path, source: std::io::Error) -> Self {
        StageError::Io {
            action: "open",
            target: path.display().to_string(),
            purpose: " for writing",
            source,
        }
    }

    /// A standard stream (`stdout`, `stderr`) failed while doing `action`.
    pub fn stream(action: &'static str, stream: &str, source: std::io::Error) -> Self {
        StageError::Io {
            action,
            target: stream.to_string(),
            purpose: "",
            source,
        }
    }

    /// A join error of a blocking or spawned task: its panic message if it panicked.
    pub fn joined(what: &'static str, error: tokio::task::JoinError) -> Self {
        if error.is_panic() {
            StageError::Panicked(panic_message(error.into_panic()))
        } else {
            StageError::Task {
                what,
                message: error.to_string(),
            }
        }
    }
}

/// Result of a stage operation.
pub type StageResult<T = ()> = Result<T, StageError>;

/// The text of a panic payload (panics carry a `&str` or a `String`, almost always).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "(no message)".to_string(), |s| s.to_string()),
    }
}
