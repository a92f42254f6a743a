//! The cost of the plugin ABI: the built-in `filter` (equals) and the same filter as a plugin
//! (`plugins/bench`), each fed the same user-log batches of 1, 64 and 1024 rows through the real
//! stage adapters inside a multi-threaded tokio runtime, as the engine runs them.
//!
//! `cargo run --release --example plugin_overhead -- PATH/TO/libweir_bench_plugin.so`

use std::sync::Arc;
use std::time::Instant;
use weir::config::parse_text;
use weir::record::{Batch, BatchBuilder, Schema};
use weir::stage::BuildContext;
use weir::stage::{Stage, Transform};
use weir::topology;

const ROWS: usize = 1 << 20;

type Stages = (Box<dyn Transform>, Box<dyn Transform>, Box<dyn Transform>);

fn transforms(plugin: &str) -> Stages {
    let text = format!(
        r#"
[plugins]
paths = ["{plugin}"]
[sources.s]
type = "csv"
path = "data/user_log_sample.csv"
[transforms.builtin]
type = "filter"
inputs = ["s"]
field = "gender"
equals = "0"
[transforms.plugin]
type = "bench.filter"
inputs = ["s"]
field = "gender"
equals = "0"
[transforms.plugin_copy]
type = "bench.filter_copy"
inputs = ["s"]
field = "gender"
equals = "0"
[sinks.a]
type = "blackhole"
inputs = ["builtin", "plugin", "plugin_copy"]
"#
    );
    let doc = parse_text("bench.toml", text, &[], |_| None).expect("pipeline parses");
    let (plan, diagnostics) = topology::plan(&doc, &weir::builtins::registry());
    let plan = plan.unwrap_or_else(|| panic!("{diagnostics}"));
    let build = |i: usize| {
        let cx = BuildContext {
            pipeline: "plugin_overhead".into(),
            path: plan.stages[i].path.clone(),
            metrics: Arc::default(),
            resources: Default::default(),
            rejects: Default::default(),
            inputs: plan.input_ids(i),
        };
        match plan.stages[i].config.build(&cx).expect("builds") {
            Stage::Transform(t) => t,
            _ => unreachable!("a transform"),
        }
    };
    (build(1), build(2), build(3))
}

fn batches(rows_per_batch: usize) -> Vec<Batch> {
    // The sample's header line names the user log's columns.
    let sample =
        std::fs::read_to_string("data/user_log_sample.csv").expect("run from the repository");
    let header = sample.lines().next().expect("the sample has a header");
    let schema = Arc::new(Schema::new(header.split(',')));
    let mut all = Vec::with_capacity(ROWS / rows_per_batch);
    let mut b = BatchBuilder::with_capacity(Arc::clone(&schema), rows_per_batch);
    for i in 0..ROWS {
        let gender = ["0", "1", "2"][i % 3];
        for field in [
            "328862",
            "323294",
            "833",
            "2882",
            "2661",
            "08",
            "29",
            "0",
            "0",
            gender,
            "内蒙古",
        ] {
            b.push_str(field);
        }
        b.end_row(i as i64);
        if b.len() == rows_per_batch {
            all.push(b.take());
        }
    }
    all
}

/// Nanoseconds per row over all batches (best of three passes).
fn time(transform: &mut dyn Transform, batches: &[Batch]) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut out = Vec::new();
        let started = Instant::now();
        for batch in batches {
            transform.process(batch.clone(), &mut out).expect("process");
            out.clear();
        }
        best = best.min(started.elapsed().as_nanos() as f64 / ROWS as f64);
    }
    best
}

fn main() {
    let plugin = std::env::args()
        .nth(1)
        .expect("usage: plugin_overhead PATH/TO/libweir_bench_plugin.so");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        tokio::spawn(async move {
            let (mut builtin, mut plugin, mut copying) = transforms(&plugin);
            println!(
                "{:>10} {:>16} {:>16} {:>9} {:>20} {:>9}",
                "batch rows",
                "built-in ns/row",
                "plugin ns/row",
                "overhead",
                "copying plugin ns/row",
                "overhead"
            );
            for size in [1, 64, 1024] {
                let input = batches(size);
                let b = time(builtin.as_mut(), &input);
                let p = time(plugin.as_mut(), &input);
                let c = time(copying.as_mut(), &input);
                let pct = |x: f64| (x / b - 1.0) * 100.0;
                println!(
                    "{size:>10} {b:>16.1} {p:>16.1} {:>8.0}% {c:>20.1} {:>8.0}%",
                    pct(p),
                    pct(c)
                );
            }
        })
        .await
        .expect("benchmark task");
    });
}
