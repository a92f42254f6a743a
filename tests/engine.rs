//! The engine through the library API, with stages registered from outside the crate the way
//! plugins will be: a panic inside a stage becomes that stage's failure (the process lives on and
//! the other stages drain), and a failing stage stops an endless source.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use weir::config::parse_text;
use weir::record::Batch;
use weir::registry::Registry;
use weir::stage::StageKind;
use weir::stage::{BuildContext, Builtin, BuiltinConfig, StageConfig};
use weir::stage::{Stage, StageError, StageResult, Transform, shutdown_pair};
use weir::topology;

/// A transform that panics after letting `after` batches through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Explode {
    after: usize,
}

impl BuiltinConfig for Explode {}

impl StageConfig for Explode {
    fn build(&self, _cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Transform(Box::new(Exploding { left: self.after })))
    }
}

struct Exploding {
    left: usize,
}

impl Transform for Exploding {
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        if self.left == 0 {
            panic!("boom");
        }
        self.left -= 1;
        out.push(batch);
        Ok(())
    }
}

fn registry() -> Registry {
    let mut registry = weir::builtins::registry();
    registry.register(Arc::new(Builtin::<Explode>::new(
        StageKind::Transform,
        "explode",
        "panics on purpose",
        &[],
    )));
    registry
}

async fn run(pipeline: &str) -> topology::RunReport {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let text = pipeline.replace(
        "DATA",
        &repo.join("data/user_log_sample.csv").display().to_string(),
    );
    let doc = parse_text("engine.toml", text, &[], |_| None).unwrap();
    let (plan, diagnostics) = topology::plan(&doc, &registry());
    let plan = plan.unwrap_or_else(|| panic!("{diagnostics}"));
    let (trigger, _) = shutdown_pair();
    tokio::time::timeout(Duration::from_secs(30), topology::run(plan, &trigger))
        .await
        .expect("the run ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_stage_is_reported_as_its_failure() {
    let report = run(r#"
[sources.log]
type = "csv"
path = "DATA"
batch_size = 100
[transforms.bad]
type = "explode"
inputs = ["log"]
after = 3
[sinks.out]
type = "blackhole"
inputs = ["bad"]
"#)
    .await;
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = &report.failures[0];
    assert_eq!(failure.path, "transforms.bad");
    assert_eq!(failure.type_name, "explode");
    assert_eq!(failure.error.to_string(), "panicked: boom");
    let sink = report
        .counts
        .iter()
        .find(|c| c.path == "sinks.out")
        .unwrap();
    assert_eq!(
        sink.received, 300,
        "the three batches let through were delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_one_branch_stops_an_endless_source_and_the_other_branch_drains() {
    let report = run(r#"
[sources.log]
type = "csv"
path = "DATA"
loop = true
[transforms.bad]
type = "explode"
inputs = ["log"]
after = 5
[transforms.w]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]
[sinks.a]
type = "blackhole"
inputs = ["bad"]
[sinks.b]
type = "blackhole"
inputs = ["w"]
"#)
    .await;
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].path, "transforms.bad");
    let source = report
        .counts
        .iter()
        .find(|c| c.path == "sources.log")
        .unwrap();
    let window = report
        .counts
        .iter()
        .find(|c| c.path == "transforms.w")
        .unwrap();
    assert_eq!(
        window.received, source.emitted,
        "the healthy branch saw every row the source sent"
    );
    let sink = report.counts.iter().find(|c| c.path == "sinks.b").unwrap();
    assert_eq!(
        sink.received, window.emitted,
        "and delivered every window, including the last"
    );
}
