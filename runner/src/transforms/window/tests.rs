//! Window behaviour: tumbling, sliding, out-of-order and late rows, the final flush, aggregates.

use super::*;
use crate::config::parse_document_for_tests;
use crate::record::{BatchBuilder, JsonWriter, Schema};
use crate::registry::StageFactory;
use crate::topology::inputs::Watermarks;

/// Drives a window the way the engine does: process, then advance the one input's watermark.
struct Driver {
    window: Box<dyn Transform>,
    marks: Watermarks,
}

impl Driver {
    fn process(&mut self, batch: Batch, out: &mut Vec<Batch>) -> StageResult {
        let latest = batch.times().iter().copied().max().unwrap_or(Millis::MIN);
        self.window.process(batch, out)?;
        let advanced = self.marks.observe(0, latest);
        match advanced {
            Some(watermark) => self.window.on_watermark(watermark, out),
            None => Ok(()),
        }
    }

    fn finish(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.window.finish(out)
    }

    fn on_tick(&mut self, out: &mut Vec<Batch>) -> StageResult {
        self.window.on_tick(out)
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.window.tick_interval()
    }
}

fn driven(window: Box<dyn Transform>) -> Driver {
    Driver {
        window,
        marks: Watermarks::new(1),
    }
}

fn window(options: &str) -> Driver {
    let node = parse_document_for_tests(options);
    let configured = factory().configure(&node, "transforms.w").unwrap();
    let cx = BuildContext {
        path: "transforms.w".into(),
        metrics: Arc::default(),
        resources: Default::default(),
    };
    match configured.config.build(&cx).unwrap() {
        Stage::Transform(t) => driven(t),
        _ => unreachable!("window builds a transform"),
    }
}

fn batch(rows: &[(i64, &str, &str)]) -> Batch {
    let mut b = BatchBuilder::with_capacity(Arc::new(Schema::new(["g", "v"])), rows.len());
    for (t, g, v) in rows {
        b.push_str(g);
        b.push_str(v);
        b.end_row(*t);
    }
    b.build()
}

fn lines(out: &[Batch]) -> Vec<String> {
    let mut bytes = Vec::new();
    let mut w = JsonWriter::default();
    for b in out {
        w.write_batch(b, &mut bytes);
    }
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn tumbling_count_by_group_closes_on_the_watermark() {
    let mut w = window("size = \"1s\"\ngroup_by = [\"g\"]");
    let mut out = Vec::new();
    w.process(
        batch(&[(0, "0", ""), (300, "1", ""), (999, "0", "")]),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty(), "window [0,1000) is still open");
    w.process(batch(&[(1000, "1", "")]), &mut out).unwrap();
    assert_eq!(
        lines(&out),
        [
            r#"{"window_start":0,"window_end":1000,"g":"0","count":2}"#,
            r#"{"window_start":0,"window_end":1000,"g":"1","count":1}"#,
        ]
    );
    assert_eq!(out[0].times(), &[999, 999]);
    out.clear();
    w.finish(&mut out).unwrap();
    assert_eq!(
        lines(&out),
        [r#"{"window_start":1000,"window_end":2000,"g":"1","count":1}"#]
    );
}

#[test]
fn sliding_windows_count_a_row_in_each_window_it_falls_in() {
    let mut w = window("size = \"1s\"\nslide = \"500ms\"");
    let mut out = Vec::new();
    w.process(
        batch(&[(100, "a", ""), (600, "a", ""), (1200, "a", "")]),
        &mut out,
    )
    .unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(
        lines(&out),
        [
            r#"{"window_start":-500,"window_end":500,"count":1}"#,
            r#"{"window_start":0,"window_end":1000,"count":2}"#,
            r#"{"window_start":500,"window_end":1500,"count":2}"#,
            r#"{"window_start":1000,"window_end":2000,"count":1}"#,
        ]
    );
}

#[test]
fn out_of_order_rows_within_lateness_count_and_later_ones_are_dropped() {
    let mut w = window("size = \"1s\"\nallowed_lateness = \"500ms\"");
    let mut out = Vec::new();
    // 1200 arrives first; the watermark (700) leaves [0,1000) open, so 900 still counts.
    w.process(batch(&[(1200, "a", ""), (900, "a", "")]), &mut out)
        .unwrap();
    assert!(out.is_empty());
    // 1600 moves the watermark to 1100: [0,1000) closes holding the one row (900) that fell in it.
    w.process(batch(&[(1600, "a", "")]), &mut out).unwrap();
    assert_eq!(
        lines(&out),
        [r#"{"window_start":0,"window_end":1000,"count":1}"#]
    );
    out.clear();
    // 950 is now late: its only window has closed.
    w.process(batch(&[(950, "a", "")]), &mut out).unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(
        lines(&out),
        [r#"{"window_start":1000,"window_end":2000,"count":2}"#]
    );
}

#[test]
fn late_rows_are_counted_as_dropped() {
    let node = parse_document_for_tests("size = \"1s\"");
    let configured = factory().configure(&node, "w").unwrap();
    let metrics = Arc::new(StageMetrics::default());
    let cx = BuildContext {
        path: "w".into(),
        metrics: Arc::clone(&metrics),
        resources: Default::default(),
    };
    let Stage::Transform(w) = configured.config.build(&cx).unwrap() else {
        unreachable!()
    };
    let mut w = driven(w);
    let mut out = Vec::new();
    w.process(batch(&[(5000, "a", "")]), &mut out).unwrap();
    w.process(
        batch(&[(10, "a", ""), (20, "a", ""), (5001, "a", "")]),
        &mut out,
    )
    .unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(metrics.snapshot().2, 2);
    assert_eq!(
        lines(&out),
        [r#"{"window_start":5000,"window_end":6000,"count":2}"#]
    );
}

#[test]
fn aggregates_over_a_field_with_names() {
    let mut w = window(
        "size = \"1s\"\ngroup_by = [\"g\"]\naggregates = [\n  { op = \"count\" },\n  { op = \"sum\", field = \"v\" },\n  { op = \"min\", field = \"v\" },\n  { op = \"max\", field = \"v\", as = \"top\" },\n  { op = \"avg\", field = \"v\" },\n]",
    );
    let mut out = Vec::new();
    w.process(
        batch(&[(1, "x", "4"), (2, "x", "1"), (3, "x", ""), (4, "y", "2.5")]),
        &mut out,
    )
    .unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(
        lines(&out),
        [
            r#"{"window_start":0,"window_end":1000,"g":"x","count":3,"sum_v":5,"min_v":1,"top":4,"avg_v":2.5}"#,
            r#"{"window_start":0,"window_end":1000,"g":"y","count":1,"sum_v":2.5,"min_v":2.5,"top":2.5,"avg_v":2.5}"#,
        ]
    );
}

#[test]
fn several_group_fields_and_a_missing_one() {
    let mut w = window("size = \"1s\"\ngroup_by = [\"g\", \"v\", \"nope\"]");
    let mut out = Vec::new();
    w.process(
        batch(&[(1, "a", "1"), (2, "a", "2"), (3, "a", "1")]),
        &mut out,
    )
    .unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(
        lines(&out),
        [
            r#"{"window_start":0,"window_end":1000,"g":"a","v":"1","nope":null,"count":2}"#,
            r#"{"window_start":0,"window_end":1000,"g":"a","v":"2","nope":null,"count":1}"#,
        ]
    );
}

#[test]
fn processing_time_windows_close_on_the_clock() {
    let mut w = window("size = \"50ms\"\ntime = \"processing\"");
    assert!(w.tick_interval().is_some());
    let mut out = Vec::new();
    w.process(batch(&[(0, "a", ""), (0, "a", "")]), &mut out)
        .unwrap();
    assert!(out.is_empty());
    std::thread::sleep(Duration::from_millis(120));
    w.on_tick(&mut out).unwrap();
    let got = lines(&out);
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with(r#""count":2}"#), "{got:?}");
}

fn config_errors(options: &str) -> Vec<String> {
    let node = parse_document_for_tests(options);
    factory()
        .configure(&node, "transforms.w")
        .unwrap_err()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn option_errors_point_at_the_option() {
    let e = config_errors("size = \"1s\"\nslide = \"2s\"\naggregates = [{ op = \"sum\" }]");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e[0].starts_with(
            "t.toml:2:9: error: transforms.w.slide: slide (2000 ms) is longer than size"
        ),
        "{e:#?}"
    );
    assert!(
        e[1].starts_with("t.toml:3:15: error: transforms.w.aggregates[0]: `sum` needs a `field`"),
        "{e:#?}"
    );
    let e = config_errors("size = \"1x\"\ntime = \"wall\"");
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e.iter()
            .any(|m| m.starts_with("t.toml:1:8: error: transforms.w.size: invalid duration")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("t.toml:2:8: error: transforms.w.time: unknown value `wall`")),
        "{e:#?}"
    );
}

/// Records which tickets settled, and whether delivered.
#[derive(Default)]
struct Settled(std::sync::Mutex<Vec<(u64, bool)>>);

impl crate::ack::Ledger for Settled {
    fn settle(&self, seq: u64, delivered: bool) {
        self.0.lock().unwrap().push((seq, delivered));
    }
}

#[test]
fn a_window_holds_the_tickets_of_its_records_until_its_result_is_let_go() {
    let ledger = Arc::new(Settled::default());
    let ticket = |seq| crate::ack::Acks::issue(ledger.clone(), seq);
    let mut w = window(r#"size = "1s""#);
    let mut out = Vec::new();
    // Ticket 1 covers rows of windows 0 and 1000; its watermark (1100) closes window 0.
    w.process(
        batch(&[(100, "a", "1"), (1100, "a", "1")]).with_acks(ticket(1)),
        &mut out,
    )
    .unwrap();
    assert_eq!(lines(&out).len(), 1, "window 0 closed");
    assert_eq!(out[0].acks().len(), 1);
    out.clear();
    assert!(
        ledger.0.lock().unwrap().is_empty(),
        "window 1000 still holds ticket 1"
    );
    w.process(batch(&[(1200, "b", "1")]).with_acks(ticket(2)), &mut out)
        .unwrap();
    assert!(out.is_empty());
    w.finish(&mut out).unwrap();
    assert_eq!(lines(&out).len(), 1, "window 1000 closed at the end");
    assert!(
        ledger.0.lock().unwrap().is_empty(),
        "its result still holds them"
    );
    out.clear();
    assert_eq!(*ledger.0.lock().unwrap(), [(1, true), (2, true)]);
}
