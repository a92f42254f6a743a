//! The engine through the library API, with stages registered from outside the crate the way
//! plugins will be: a panic inside a stage becomes that stage's failure (the process lives on and
//! the other stages drain), a failing stage stops an endless source, and a transform failing from
//! any of its calls marks the run failed before the records it held are let go.

use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use weir::ack::{Acks, Ledger};
use weir::config::parse_text;
use weir::record::{Batch, BatchBuilder, Schema};
use weir::registry::Registry;
use weir::stage::{
    BuildContext, Builtin, BuiltinConfig, RunHealth, Source, SourceContext, Stage, StageConfig,
    StageError, StageKind, StageResult, Transform, shutdown_pair,
};
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

/// How each ticket of the `ticketed` source settled: (ticket, delivered, run failed by then).
/// A source that commits progress would commit a ticket that settled delivered in a healthy run.
static SETTLED: std::sync::Mutex<Vec<(u64, bool, bool)>> = std::sync::Mutex::new(Vec::new());

struct Recorder(RunHealth);

impl Ledger for Recorder {
    fn settle(&self, seq: u64, delivered: bool) {
        SETTLED
            .lock()
            .unwrap()
            .push((seq, delivered, self.0.has_failed()));
    }
}

/// A source of `batches` one-row batches at event times 0, 1000, 2000, …, each with a ticket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ticketed {
    batches: u64,
}

impl BuiltinConfig for Ticketed {}

impl StageConfig for Ticketed {
    fn build(&self, _cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Source(Box::new(TicketedSource(self.batches))))
    }
}

struct TicketedSource(u64);

#[async_trait::async_trait]
impl Source for TicketedSource {
    async fn run(self: Box<Self>, mut cx: SourceContext) -> StageResult {
        let ledger: Arc<dyn Ledger> = Arc::new(Recorder(cx.health.clone()));
        for seq in 0..self.0 {
            let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["n"])), 1);
            b.push_str(&seq.to_string());
            b.end_row(seq as i64 * 1000);
            let batch = b.build().with_acks(Acks::issue(Arc::clone(&ledger), seq));
            if cx.output.send(batch).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// A transform that holds every batch (as a window holds its records) and fails when the
/// watermark advances.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldThenFail {}

impl BuiltinConfig for HoldThenFail {}

impl StageConfig for HoldThenFail {
    fn build(&self, _cx: &BuildContext) -> Result<Stage, StageError> {
        Ok(Stage::Transform(Box::new(Holding(Vec::new()))))
    }
}

struct Holding(Vec<Batch>);

impl Transform for Holding {
    fn process(&mut self, batch: Batch, _out: &mut Vec<Batch>) -> StageResult {
        self.0.push(batch);
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: i64, _out: &mut Vec<Batch>) -> StageResult {
        Err(StageError::Input("the watermark cannot be handled".into()))
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
    registry.register(Arc::new(Builtin::<Ticketed>::new(
        StageKind::Source,
        "ticketed",
        "one-row batches with delivery tickets",
        &[],
    )));
    registry.register(Arc::new(Builtin::<HoldThenFail>::new(
        StageKind::Transform,
        "hold_then_fail",
        "holds batches, fails on the watermark",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transform_failing_on_the_watermark_lets_go_of_no_record_as_delivered() {
    let report = run(r#"
[sources.s]
type = "ticketed"
batches = 5
[transforms.t]
type = "hold_then_fail"
inputs = ["s"]
[sinks.out]
type = "blackhole"
inputs = ["t"]
"#)
    .await;
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].path, "transforms.t");
    let settled = SETTLED.lock().unwrap().clone();
    assert!(!settled.is_empty(), "the held tickets settled");
    let committable: Vec<_> = settled
        .iter()
        .filter(|(_, delivered, failed)| *delivered && !*failed)
        .collect();
    assert!(
        committable.is_empty(),
        "tickets that settled as delivered in a healthy run although nothing was delivered: \
         {committable:?} (all: {settled:?})"
    );
}
