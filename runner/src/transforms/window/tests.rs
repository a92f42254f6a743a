//! Window behaviour: tumbling, sliding, out-of-order and late rows, the final flush, aggregates,
//! and restarts.

use super::*;
use crate::stage::testing::{self, Driver, lines};

fn window(options: &str) -> Driver {
    testing::transform(&factory(), options)
}

/// A batch with fields `g` and `v`, one row per `(event time, g, v)`.
fn batch(rows: &[(i64, &str, &str)]) -> Batch {
    let fields: Vec<[&str; 2]> = rows.iter().map(|&(_, g, v)| [g, v]).collect();
    let rows: Vec<(Millis, &[&str])> = rows
        .iter()
        .zip(&fields)
        .map(|(&(t, ..), f)| (t, &f[..]))
        .collect();
    testing::batch(&["g", "v"], &rows)
}

/// Counts per (window start, group) in the window's JSON output.
fn counted(out: &[Batch]) -> std::collections::BTreeMap<(i64, String), u64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in lines(out) {
        let r: serde_json::Value = serde_json::from_str(&line).unwrap();
        let key = (
            r["window_start"].as_i64().unwrap(),
            r["g"].as_str().unwrap().to_string(),
        );
        *counts.entry(key).or_insert(0) += r["count"].as_u64().unwrap();
    }
    counts
}

proptest::proptest! {
    /// Rows out of order by at most the allowed lateness, cut into batches at random, give
    /// exactly the counts of a plain recount of the rows, each window once.
    #[test]
    fn any_order_within_lateness_and_any_batching_count_like_a_recount(
        rows in proptest::collection::vec((0i64..20_000, 0usize..3, 0i64..=700), 1..400),
        cuts in proptest::collection::vec(1usize..50, 1..40),
        size in proptest::sample::select(vec![500i64, 1000, 3000]),
    ) {
        // Event times advance along the rows; each row is late by its own jitter.
        let mut times: Vec<i64> = rows.iter().map(|r| r.0).collect();
        times.sort_unstable();
        let rows: Vec<(i64, &str)> = times
            .iter()
            .zip(&rows)
            .map(|(&t, &(_, g, jitter))| (t - jitter, ["a", "b", "c"][g]))
            .collect();
        let mut want = std::collections::BTreeMap::new();
        for &(t, g) in &rows {
            *want.entry((t.div_euclid(size) * size, g.to_string())).or_insert(0u64) += 1;
        }
        let mut w = window(&format!(
            "size = \"{size}ms\"\nallowed_lateness = \"700ms\"\ngroup_by = [\"g\"]"
        ));
        let mut out = Vec::new();
        let (mut at, mut cut) = (0, cuts.iter().cycle());
        while at < rows.len() {
            let end = (at + cut.next().unwrap()).min(rows.len());
            let part: Vec<(i64, &str, &str)> =
                rows[at..end].iter().map(|&(t, g)| (t, g, "")).collect();
            w.process(batch(&part), &mut out).unwrap();
            at = end;
        }
        w.finish(&mut out).unwrap();
        proptest::prop_assert_eq!(counted(&out), want);
        proptest::prop_assert_eq!(w.metrics.snapshot().2, 0);
    }

    /// Any event time, the ends of the `i64` range included, is counted or dropped with a
    /// count; nothing panics or wraps.
    #[test]
    fn extreme_event_times_are_counted_or_dropped(
        times in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::num::i64::ANY,
                (i64::MIN..i64::MIN + 5_000),
                (i64::MAX - 5_000..=i64::MAX),
            ],
            1..50,
        ),
        slide in proptest::sample::select(vec![250i64, 1000]),
    ) {
        let mut w = window(&format!(
            "size = \"1s\"\nslide = \"{slide}ms\"\ngroup_by = [\"g\"]"
        ));
        let mut out = Vec::new();
        for &t in &times {
            w.process(batch(&[(t, "a", "")]), &mut out).unwrap();
        }
        w.finish(&mut out).unwrap();
        for line in lines(&out) {
            let r: serde_json::Value = serde_json::from_str(&line).unwrap();
            let (start, end) = (r["window_start"].as_i64().unwrap(), r["window_end"].as_i64().unwrap());
            proptest::prop_assert!(start < end, "{line}");
        }
        // Every row is in the output (once per window it fell in) or counted as dropped.
        let counted_rows: u64 = counted(&out).values().sum();
        let per_row = (1000 / slide) as u64;
        let dropped = w.metrics.snapshot().2;
        proptest::prop_assert!(counted_rows <= times.len() as u64 * per_row);
        proptest::prop_assert!(dropped <= times.len() as u64);
        proptest::prop_assert!(counted_rows > 0 || dropped > 0);
    }
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
fn an_edited_lateness_is_taken_with_the_open_windows_and_a_new_size_is_refused() {
    let mut w = window("size = \"1s\"\nallowed_lateness = \"2s\"\ngroup_by = [\"g\"]");
    let mut out = Vec::new();
    w.process(
        batch(&[(100, "a", ""), (1500, "a", ""), (2500, "b", "")]),
        &mut out,
    )
    .unwrap();
    assert!(out.is_empty(), "2 s of lateness keeps every window open");
    let refused = w
        .offer(window(
            "size = \"2s\"\nallowed_lateness = \"2s\"\ngroup_by = [\"g\"]",
        ))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("size or slide changed"), "{refused}");
    let refused = w.offer(window("size = \"1s\"")).unwrap_err().to_string();
    assert!(refused.contains("group_by changed"), "{refused}");
    w.offer(window("size = \"1s\"\ngroup_by = [\"g\"]"))
        .unwrap();
    // No lateness now: the next row closes every window that ends before it, holding the rows
    // counted before the edit.
    w.process(batch(&[(2600, "a", "")]), &mut out).unwrap();
    assert_eq!(
        counted(&out),
        [((0, "a".to_string()), 1), ((1000, "a".to_string()), 1)].into()
    );
    out.clear();
    // And a row for a closed window is late now.
    w.process(batch(&[(1900, "a", "")]), &mut out).unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(
        counted(&out),
        [((2000, "a".to_string()), 1), ((2000, "b".to_string()), 1)].into()
    );
    assert_eq!(
        w.metrics.snapshot().2,
        1,
        "the late row is dropped and counted"
    );
}

#[test]
fn late_rows_are_counted_as_dropped() {
    let mut w = window("size = \"1s\"");
    let mut out = Vec::new();
    w.process(batch(&[(5000, "a", "")]), &mut out).unwrap();
    w.process(
        batch(&[(10, "a", ""), (20, "a", ""), (5001, "a", "")]),
        &mut out,
    )
    .unwrap();
    w.finish(&mut out).unwrap();
    assert_eq!(w.metrics.snapshot().2, 2);
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
    w.tick(&mut out).unwrap();
    let got = lines(&out);
    assert_eq!(got.len(), 1);
    assert!(got[0].ends_with(r#""count":2}"#), "{got:?}");
}

fn config_errors(options: &str) -> Vec<String> {
    testing::option_errors(&factory(), "transforms.w", options)
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

/// One pipeline run in the restart model of `runs_killed_or_stopped_at_random_commit_each_window_once`.
struct Run {
    window: Driver,
    ledger: Arc<crate::sources::checkpoint::Checkpoints>,
    /// Window results written since the last commit (the open transaction).
    open: Vec<Batch>,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The exactly-once design at the window's level: input batches carry tickets from a
    /// ledger (offset = batch number); at random moments a "transaction" commits the results
    /// written so far, the ledger's commit point and the furthest progress mark; at random
    /// moments the run dies (SIGKILL: the open transaction is lost) or is stopped (SIGTERM:
    /// `stop`, then a commit) and a new run resumes from the committed point with the
    /// committed mark. The committed results must be the batch recount: each window once,
    /// complete.
    #[test]
    fn runs_killed_or_stopped_at_random_commit_each_window_once(
        steps in proptest::collection::vec((0i64..400, 0usize..3), 1..300),
        cuts in proptest::collection::vec(1usize..30, 1..40),
        events in proptest::collection::vec(0u8..10, 1..60),
    ) {
        // Rows in event-time order with random gaps; group g.
        let mut t = 10_000i64;
        let rows: Vec<(i64, String)> = steps
            .iter()
            .map(|&(gap, g)| {
                t += gap;
                (t, g.to_string())
            })
            .collect();
        let mut batches: Vec<Vec<(i64, String)>> = Vec::new();
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= rows.len() {
                break;
            }
            let end = (at + cut).min(rows.len());
            batches.push(rows[at..end].to_vec());
            at = end;
        }
        let mut want = std::collections::BTreeMap::new();
        for (t, g) in &rows {
            *want.entry((t.div_euclid(1000) * 1000, g.clone())).or_insert(0u64) += 1;
        }

        let start_run = |resources: &Arc<crate::stage::RunResources>| Run {
            window: testing::transform_in(
                &factory(),
                "size = \"1s\"\ngroup_by = [\"g\"]",
                Arc::clone(resources),
            ),
            ledger: crate::sources::checkpoint::Checkpoints::new(Default::default()),
            open: Vec::new(),
        };
        let mut committed: Vec<Batch> = Vec::new();
        let mut resume_at = 0usize;
        let mut mark: Option<i64> = None;
        let mut events = events.iter().cycle();
        let mut runs = 0;
        let commit = |run: &mut Run, committed: &mut Vec<Batch>, resume_at: &mut usize, mark: &mut Option<i64>| {
            for mut batch in run.open.drain(..) {
                let acks = batch.take_acks();
                for m in acks.marks() {
                    *mark = Some(mark.map_or(m.through, |old| old.max(m.through)));
                }
                drop(acks); // in the transaction: the tickets settle
                committed.push(batch);
            }
            if let Some(point) = run.ledger.take_commit() {
                *resume_at = point[0].1 as usize;
            }
        };
        'runs: loop {
            runs += 1;
            proptest::prop_assert!(runs < 200, "no progress");
            let fresh = Arc::new(crate::stage::RunResources::default());
            if let Some(m) = mark {
                fresh.get::<crate::resume::Resumed>().restore("s", m);
            }
            let mut run = start_run(&fresh);
            for (i, batch) in batches.iter().enumerate().skip(resume_at) {
                let fields: Vec<[&str; 2]> = batch.iter().map(|(_, g)| [g.as_str(), "1"]).collect();
                let rows: Vec<(Millis, &[&str])> = batch
                    .iter()
                    .zip(&fields)
                    .map(|((t, _), f)| (*t, &f[..]))
                    .collect();
                let tickets = run.ledger.issue(vec![((Arc::from("t"), 0), i as i64 + 1)]);
                let input = testing::batch(&["g", "v"], &rows).with_acks(tickets);
                run.window.process(input, &mut run.open).unwrap();
                match events.next().copied().unwrap_or(0) {
                    0..=3 => commit(&mut run, &mut committed, &mut resume_at, &mut mark),
                    4 if runs < 20 => continue 'runs, // killed: the open transaction is lost
                    5 if runs < 20 => {
                        let mut out = Vec::new();
                        run.window.stop(&mut out).unwrap();
                        run.open.extend(out);
                        commit(&mut run, &mut committed, &mut resume_at, &mut mark);
                        continue 'runs;
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            run.window.finish(&mut out).unwrap();
            run.open.extend(out);
            commit(&mut run, &mut committed, &mut resume_at, &mut mark);
            break;
        }
        let mut got = std::collections::BTreeMap::new();
        for line in lines(&committed) {
            let r: serde_json::Value = serde_json::from_str(&line).unwrap();
            let key = (r["window_start"].as_i64().unwrap(), r["g"].as_str().unwrap().to_string());
            proptest::prop_assert!(got.insert(key.clone(), r["count"].as_u64().unwrap()).is_none(), "{key:?} written twice");
        }
        proptest::prop_assert_eq!(got, want);
    }
}

proptest::proptest! {
    /// `count_distinct` per window and group equals a recount with a set, whatever the values,
    /// their order and the batching (one batch per row here: the worst case for carrying state).
    #[test]
    fn count_distinct_equals_a_recount_with_a_set(
        rows in proptest::collection::vec((0i64..5_000, 0usize..2, 0u8..12), 1..300),
    ) {
        let mut sorted = rows.clone();
        sorted.sort_unstable_by_key(|r| r.0);
        let mut want: std::collections::BTreeMap<(i64, String), std::collections::BTreeSet<u8>> =
            std::collections::BTreeMap::new();
        for &(t, g, v) in &sorted {
            want.entry((t.div_euclid(1000) * 1000, ["a", "b"][g].to_string())).or_default().insert(v);
        }
        let mut w = window(
            "size = \"1s\"\ngroup_by = [\"g\"]\naggregates = [{ op = \"count_distinct\", field = \"v\", as = \"count\" }]",
        );
        let mut out = Vec::new();
        for &(t, g, v) in &sorted {
            let value = v.to_string();
            w.process(batch(&[(t, ["a", "b"][g], &value)]), &mut out).unwrap();
        }
        w.finish(&mut out).unwrap();
        let got = counted(&out);
        let want: std::collections::BTreeMap<(i64, String), u64> =
            want.into_iter().map(|(k, set)| (k, set.len() as u64)).collect();
        proptest::prop_assert_eq!(got, want);
    }
}
