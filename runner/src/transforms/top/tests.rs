//! Unit tests of `top`.

use super::*;
use crate::stage::testing;

fn rows(options: &str, input: &[(Millis, &[&str])]) -> (Vec<String>, testing::Driver) {
    let mut t = testing::transform(&factory(), options);
    let lines = t.lines_of(testing::batch(&["brand", "buyers"], input));
    (lines, t)
}

#[test]
fn the_k_largest_of_each_event_time_with_their_ranks_ties_in_arrival_order() {
    let (lines, _) = rows(
        "by = 'buyers'\nk = 2",
        &[
            (59_999, &["a", "3"]),
            (59_999, &["b", "9"]),
            (59_999, &["c", "9"]),
            (59_999, &["d", "1"]),
            (119_999, &["a", "4"]),
        ],
    );
    assert_eq!(
        lines,
        [
            r#"{"brand":"b","buyers":"9","rank":1}"#,
            r#"{"brand":"c","buyers":"9","rank":2}"#,
            r#"{"brand":"a","buyers":"4","rank":1}"#,
        ]
    );
}

#[test]
fn smallest_first_and_groups_ranked_apart() {
    let mut t = testing::transform(
        &factory(),
        "by = 'n'\nk = 1\norder = 'asc'\nper = ['shop']\nrank = 'place'",
    );
    let lines = t.lines_of(testing::batch(
        &["shop", "n"],
        &[
            (5, &["x", "7"]),
            (5, &["y", "2"]),
            (5, &["x", "-1.5"]),
            (5, &["y", "3"]),
        ],
    ));
    assert_eq!(
        lines,
        [
            r#"{"shop":"x","n":"-1.5","place":1}"#,
            r#"{"shop":"y","n":"2","place":1}"#,
        ]
    );
}

#[test]
fn a_record_without_a_number_is_rejected_and_counted() {
    let (lines, t) = rows(
        "by = 'buyers'\nk = 5",
        &[(1, &["a", "many"]), (1, &["b", "2"])],
    );
    assert_eq!(lines, [r#"{"brand":"b","buyers":"2","rank":1}"#]);
    assert_eq!(
        t.metrics.dropped.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn open_groups_wait_for_the_watermark_and_the_end_emits_them() {
    let mut t = testing::transform(&factory(), "by = 'buyers'\nk = 1");
    let mut out = Vec::new();
    // The driver moves the watermark to the latest time seen: 20, so time 30 stays open.
    t.process(
        testing::batch(
            &["brand", "buyers"],
            &[(10, &["a", "1"]), (20, &["b", "2"])],
        ),
        &mut out,
    )
    .unwrap();
    assert_eq!(testing::lines(&out).len(), 2);
    out.clear();
    t.process(
        testing::batch(
            &["brand", "buyers"],
            &[(30, &["c", "3"]), (20, &["late", "9"])],
        ),
        &mut out,
    )
    .unwrap();
    // 30 is emitted with the watermark at 30; the row at 20 came after its group was ranked: late.
    assert_eq!(
        testing::lines(&out),
        [r#"{"brand":"c","buyers":"3","rank":1}"#]
    );
    assert_eq!(
        t.metrics.dropped.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    out.clear();
    t.finish(&mut out).unwrap();
    assert!(testing::lines(&out).is_empty());
}

#[test]
fn k_of_zero_is_an_option_error() {
    let errors = testing::option_errors(&factory(), "transforms.t", "by = 'n'\nk = 0");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("keep at least one record")),
        "{errors:?}"
    );
}

/// A running `top` takes a smaller `k` or another rank name, a larger `k` while no group is open,
/// and never another `by`.
#[test]
fn edits_it_can_take_and_a_refusal_told_once() {
    let top = |options: &str| testing::transform(&factory(), options);
    let (_, mut running) = rows("by = 'buyers'\nk = 2", &[(59_999, &["a", "3"])]);
    running
        .offer(top("by = 'buyers'\nk = 1\nrank = 'place'"))
        .unwrap();
    // The watermark passed the only group: nothing is open, so `k` may grow.
    running.offer(top("by = 'buyers'\nk = 5")).unwrap();
    let other_by = running.offer(top("by = 'brand'\nk = 1")).unwrap_err();
    // What stands in the way only: the reload adds the stage and what to do.
    assert_eq!(
        other_by.to_string(),
        "`by`, `per` and `order` cannot change while running"
    );
}
