use super::*;
use crate::stage::DropReason;
use crate::stage::testing::{self, batch, lines, xorshift};

/// A record of a test: (event time, user, item, what).
type Record = (Millis, String, String, String);

fn side_batch(records: &[Record]) -> Batch {
    let rows: Vec<(Millis, [&str; 3])> = records
        .iter()
        .map(|(t, user, item, what)| (*t, [user.as_str(), item.as_str(), what.as_str()]))
        .collect();
    let rows: Vec<(Millis, &[&str])> = rows.iter().map(|(t, r)| (*t, &r[..])).collect();
    batch(&["user", "item", "what"], &rows)
}

/// The pairs in `out` as (time, left what, right what), sorted.
fn pairs(out: &[Batch]) -> Vec<(Millis, String, String)> {
    let mut found: Vec<(Millis, String, String)> = out
        .iter()
        .flat_map(|b| {
            let what = b.schema().index_of("what").unwrap();
            let right_what = b.schema().index_of("right_what").unwrap();
            b.rows()
                .map(|r| {
                    let (mut l, mut rt) = (String::new(), String::new());
                    r.get(what).write_text(&mut l);
                    r.get(right_what).write_text(&mut rt);
                    (r.event_time(), l, rt)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    found
}

/// The pairs recounted by brute force: every (left, right) with the same user and item, the
/// right one's time in [left − before, left + within], at the later time.
fn recount(
    left: &[Record],
    right: &[Record],
    within: Millis,
    before: Millis,
) -> Vec<(Millis, String, String)> {
    let mut expected = Vec::new();
    for l in left {
        for r in right {
            if l.1 == r.1 && l.2 == r.2 && r.0 >= l.0 - before && r.0 <= l.0 + within {
                expected.push((l.0.max(r.0), l.3.clone(), r.3.clone()));
            }
        }
    }
    expected.sort();
    expected
}

/// Lets `join` forget what can no longer pair at almost every decision, as it does with many
/// records kept.
fn evict_often(join: &mut Join) {
    for side in &mut join.sides {
        side.eviction_floor = 1;
    }
}

fn record(t: Millis, user: &str, item: &str, what: &str) -> Record {
    (t, user.into(), item.into(), what.into())
}

#[test]
fn a_pair_is_made_once_at_the_later_time_with_the_right_fields_renamed() {
    let mut join = testing::transform_with_inputs(
        &factory(),
        r#"on = ["user"]
within = "10s"
before = "2s""#,
        Default::default(),
        2,
    );
    let mut out = Vec::new();
    let carts = [
        record(1_000, "u1", "i1", "cart"),
        record(5_000, "u2", "i2", "cart"),
    ];
    let buys = [
        record(9_000, "u1", "i7", "buy"),  // 8 s after u1's cart: a pair
        record(4_000, "u2", "i2", "buy"),  // 1 s before u2's cart: a pair (before = 2s)
        record(20_000, "u1", "i1", "buy"), // 19 s after: too late
        record(2_000, "u3", "i3", "buy"),  // no cart of u3
    ];
    join.process_from(0, side_batch(&carts), &mut out).unwrap();
    join.process_from(1, side_batch(&buys), &mut out).unwrap();
    join.finish(&mut out).unwrap();
    assert_eq!(
        lines(&out),
        vec![
            r#"{"user":"u2","item":"i2","what":"cart","right_item":"i2","right_what":"buy"}"#,
            r#"{"user":"u1","item":"i1","what":"cart","right_item":"i7","right_what":"buy"}"#,
        ]
    );
    let times: Vec<Millis> = out.iter().flat_map(|b| b.times().to_vec()).collect();
    assert_eq!(
        times,
        vec![5_000, 9_000],
        "each pair at the later of its times"
    );
}

#[test]
fn a_null_or_missing_key_pairs_with_nothing() {
    let mut join = Join::new(vec!["user".into()], 1_000, 0, "right_".into());
    let mut out = Vec::new();
    let left = batch(&["what"], &[(10, &["cart"][..])]);
    let right = batch(&["what"], &[(20, &["buy"][..])]);
    join.process_from(LEFT, left, &mut out).unwrap();
    join.process_from(RIGHT, right, &mut out).unwrap();
    join.finish(&mut out).unwrap();
    assert!(out.is_empty(), "{:?}", lines(&out));
}

/// Random records on both sides, handed over in random batches, sides interleaved at random and
/// the watermark moved now and then: the pairs are exactly the brute-force recount.
#[test]
fn the_pairs_are_the_recount_whatever_the_arrival_order_batching_and_watermarks() {
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
    for case in 0..200 {
        let within = next(30) as Millis;
        let before = next(10) as Millis;
        let make = |what: &str, next: &mut dyn FnMut(u64) -> u64| -> Vec<Record> {
            (0..next(40))
                .map(|n| {
                    record(
                        next(100) as Millis,
                        &format!("u{}", next(4)),
                        &format!("i{}", next(2)),
                        &format!("{what}{n}"),
                    )
                })
                .collect()
        };
        let left = make("l", &mut next);
        let right = make("r", &mut next);
        let expected = recount(&left, &right, within, before);

        // Arrival: each side in random order, in time order within reach of the watermark.
        let mut join = Join::new(
            vec!["user".into(), "item".into()],
            within,
            before,
            "right_".into(),
        );
        evict_often(&mut join);
        let mut out = Vec::new();
        let mut queues = [left.clone(), right.clone()];
        for queue in &mut queues {
            queue.sort_by_key(|r| r.0);
        }
        let mut watermark = Millis::MIN;
        while queues.iter().any(|q| !q.is_empty()) {
            let side = next(2) as usize;
            let take = (1 + next(5) as usize).min(queues[side].len());
            if take == 0 {
                continue;
            }
            let mut chunk: Vec<Record> = queues[side].drain(..take).collect();
            // Out of order within a batch.
            for i in (1..chunk.len()).rev() {
                chunk.swap(i, next(i as u64 + 1) as usize);
            }
            join.process_from(side, side_batch(&chunk), &mut out)
                .unwrap();
            // The watermark may move up to the oldest record still to come on either side.
            let oldest_to_come = queues
                .iter()
                .filter_map(|q| q.first().map(|r| r.0))
                .min()
                .unwrap_or(Millis::MAX);
            if next(3) == 0 && oldest_to_come > Millis::MIN + 1 {
                watermark = watermark.max(oldest_to_come - 1);
                join.on_watermark(watermark, &mut out).unwrap();
            }
        }
        join.finish(&mut out).unwrap();
        assert_eq!(
            pairs(&out),
            expected,
            "case {case}: within {within}, before {before}"
        );
    }
}

/// A restart: the first run emits (and commits) the pairs up to its mark, then dies; the second
/// reads every record again with that mark. Together they emit each pair once.
#[test]
fn a_run_resumed_from_a_mark_emits_the_pairs_after_it_once() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    for case in 0..100 {
        let (within, before) = (next(25) as Millis, next(8) as Millis);
        let make = |what: &str, next: &mut dyn FnMut(u64) -> u64| -> Vec<Record> {
            let mut records: Vec<Record> = (0..next(50))
                .map(|n| {
                    record(
                        next(120) as Millis,
                        &format!("u{}", next(3)),
                        "i",
                        &format!("{what}{n}"),
                    )
                })
                .collect();
            records.sort_by_key(|r| r.0);
            records
        };
        let left = make("l", &mut next);
        let right = make("r", &mut next);
        let expected = recount(&left, &right, within, before);
        let mark = next(120) as Millis;

        let mut first = Join::new(vec!["user".into()], within, before, "right_".into());
        evict_often(&mut first);
        let mut committed = Vec::new();
        first
            .process_from(LEFT, side_batch(&left), &mut committed)
            .unwrap();
        first
            .process_from(RIGHT, side_batch(&right), &mut committed)
            .unwrap();
        first.on_watermark(mark, &mut committed).unwrap();
        assert!(
            committed
                .iter()
                .all(|b| b.times().iter().all(|&t| t <= mark)),
            "case {case}: only pairs up to the watermark are emitted"
        );

        let mut second = Join::new(vec!["user".into()], within, before, "right_".into());
        evict_often(&mut second);
        second.decided_through = mark;
        second.resumed_through = Some(mark);
        let mut rest = Vec::new();
        second
            .process_from(RIGHT, side_batch(&right), &mut rest)
            .unwrap();
        second
            .process_from(LEFT, side_batch(&left), &mut rest)
            .unwrap();
        second.finish(&mut rest).unwrap();
        committed.extend(rest);
        assert_eq!(pairs(&committed), expected, "case {case}: mark {mark}");
    }
}

#[test]
fn a_record_behind_the_decided_point_is_late_counted_and_sent_to_errors() {
    let mut join = Join::new(vec!["user".into()], 10, 0, "right_".into());
    let (rejects, _stream) = crate::stage::error_stream("transforms.join");
    join.rejects = rejects.clone();
    let mut out = Vec::new();
    join.process_from(LEFT, side_batch(&[record(50, "u", "i", "l")]), &mut out)
        .unwrap();
    join.on_watermark(60, &mut out).unwrap();
    join.process_from(RIGHT, side_batch(&[record(55, "u", "i", "r")]), &mut out)
        .unwrap();
    join.finish(&mut out).unwrap();
    assert!(out.is_empty());
    let late = join.metrics.figures().dropped_by[DropReason::Late as usize];
    assert_eq!(late, 1);
    let errors = lines(&[rejects.drain().expect("the late record's error")]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("late: records at or before 60 were paired already")
            && errors[0].contains("event time 55"),
        "{errors:?}"
    );
}

#[test]
fn the_output_fields_are_known_from_the_inputs_fields() {
    let (names, carried) = joined_fields(
        &["user", "item", "time"],
        &["user", "item", "time", "price"],
        &["user".to_string()],
        "r_",
    );
    assert_eq!(
        names,
        vec!["user", "item", "time", "r_item", "r_time", "price"]
    );
    assert_eq!(carried, vec![1, 2, 3]);
}

#[test]
fn options_are_checked() {
    let errors = testing::option_errors(&factory(), "transforms.j", "on = []\nwithin = \"1m\"");
    assert!(
        errors.iter().any(|e| e.contains("no key fields")),
        "{errors:?}"
    );
    let errors = testing::option_errors(
        &factory(),
        "transforms.j",
        "on = [\"u\"]\nwithin = \"1m\"\nright_prefix = \"\"",
    );
    assert!(
        errors.iter().any(|e| e.contains("must not be empty")),
        "{errors:?}"
    );
}
