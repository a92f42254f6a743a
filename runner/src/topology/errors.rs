//! Error outputs (docs/errors.md): naming `X.errors` among a component's `inputs` reads the
//! records component `X` rejects. The planner adds, for each such name, a component of its own —
//! a source with id `X.errors` and type `errors` — so the graph, the run summary, `/metrics`,
//! `weir top` and `weir tap` show an errors stream like any other stage. The engine connects the
//! stage's [`Rejects`](crate::stage::Rejects) to it; the component forwards what arrives until
//! the stage has ended.

use crate::config::Node;
use crate::record::Batch;
use crate::stage::{
    BuildContext, Source, SourceContext, Stage, StageConfig, StageError, StageKind, StageResult,
};
use crate::topology::spec::{ComponentSpec, PipelineSpec};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// The suffix that names a component's errors stream.
pub const SUFFIX: &str = ".errors";

/// The type name of errors-stream components (not a stage type a pipeline file can name).
pub const TYPE_NAME: &str = "errors";

/// Adds an `X.errors` source for every input naming one whose `X` is a declared component (and
/// no component is itself called `X.errors`). Returns, per added component, its position and
/// the position of the component whose errors it carries.
pub fn add_error_streams(spec: &mut PipelineSpec) -> Vec<(usize, usize)> {
    let mut added = Vec::new();
    let named: Vec<String> = spec
        .components
        .iter()
        .flat_map(|c| c.inputs.iter().map(|i| i.id.clone()))
        .collect();
    for id in named {
        if spec.component(&id).is_some() {
            continue;
        }
        let Some(of) = id
            .strip_suffix(SUFFIX)
            .and_then(|x| spec.components.iter().position(|c| c.id == x))
        else {
            continue;
        };
        let stage = &spec.components[of];
        let component = ComponentSpec {
            id: id.clone(),
            kind: StageKind::Source,
            path: format!("{}{SUFFIX}", stage.path),
            origin: stage.origin.clone(),
            type_name: TYPE_NAME.to_string(),
            type_origin: stage.type_origin.clone(),
            inputs: Vec::new(),
            options: Node::empty_table(stage.origin.clone()),
        };
        spec.components.push(component);
        added.push((spec.components.len() - 1, of));
    }
    added
}

/// The receiving ends of the run's errors streams, by the key path of the rejecting stage: the
/// engine puts each one here when it connects the stage, its errors component takes it.
#[derive(Default)]
pub struct ErrorStreams(Mutex<HashMap<String, mpsc::Receiver<Batch>>>);

impl ErrorStreams {
    /// Keeps `stream`, the errors of the stage at `path`, for its errors component.
    pub fn offer(&self, path: &str, stream: mpsc::Receiver<Batch>) {
        self.lock().insert(path.to_string(), stream);
    }

    fn take(&self, path: &str) -> Option<mpsc::Receiver<Batch>> {
        self.lock().remove(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::Receiver<Batch>>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The errors component of the stage at `of_path`.
#[derive(Debug)]
pub struct ErrorStreamConfig {
    /// The rejecting stage's key path.
    pub of_path: String,
}

impl StageConfig for ErrorStreamConfig {
    fn output_fields(&self, _inputs: &[Option<Vec<String>>]) -> Option<Vec<String>> {
        Some(crate::stage::ERROR_FIELDS.map(String::from).into())
    }

    fn build(&self, cx: &BuildContext) -> Result<Stage, StageError> {
        let stream = cx
            .resources
            .get::<ErrorStreams>()
            .take(&self.of_path)
            .ok_or_else(|| {
                StageError::Input(format!(
                    "the errors of `{}` are not connected (the stage was not started)",
                    self.of_path
                ))
            })?;
        Ok(Stage::Source(Box::new(ErrorStream { stream })))
    }
}

/// Forwards a stage's rejected records until the stage has ended.
struct ErrorStream {
    stream: mpsc::Receiver<Batch>,
}

#[async_trait]
impl Source for ErrorStream {
    async fn run(mut self: Box<Self>, mut cx: SourceContext) -> StageResult {
        // No stop on shutdown: the rejecting stage drains, and so does its errors stream.
        while let Some(batch) = self.stream.recv().await {
            if cx.output.send(batch).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}
