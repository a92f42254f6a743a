//! Expressions (`where`, `compute`) and `count_distinct` through the real `weir` binary: the
//! purchases pipeline against a recount of the sample done by hand, and records an expression
//! fails on going to the errors stream while the rest go on.

mod common;

use common::*;
use std::collections::BTreeMap;

/// The expression pipeline (`where` on a filter, `compute` on a select, `count_distinct` in the
/// window) through the binary on the real sample: each band's purchases and distinct buyers over
/// all windows equal a recount of the CSV done here, by hand, with the same rules.
#[test]
fn the_purchases_pipeline_counts_each_band_as_a_recount_of_the_file() {
    let out = run(&[
        "run",
        "pipelines/shopping_purchases.toml",
        "--set",
        "sources.user_log.rate=\"max\"",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    // Per band: purchases, and distinct buyers summed over the 1-second windows.
    let mut counted: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in stdout.lines() {
        let window: serde_json::Value = serde_json::from_str(line).unwrap();
        let entry = counted
            .entry(window["band"].as_str().unwrap().to_string())
            .or_default();
        entry.0 += window["count"].as_u64().unwrap();
        entry.1 += window["buyers"].as_u64().unwrap();
    }
    let mut purchases: BTreeMap<String, u64> = BTreeMap::new();
    let mut buyers: std::collections::BTreeSet<(usize, String, String)> = Default::default();
    let mut reader = csv::Reader::from_path(repo().join("data/user_log_sample.csv")).unwrap();
    for (i, row) in reader.records().enumerate() {
        let row = row.unwrap();
        let (action, age) = (&row[7], &row[8]);
        let Ok(age) = age.parse::<i64>() else {
            continue;
        };
        if action != "2" || age < 4 {
            continue;
        }
        let band = match age {
            6.. => "40+",
            5 => "35-39",
            _ => "30-34",
        };
        *purchases.entry(band.to_string()).or_default() += 1;
        // 10 rows per event second (`event_rate`): row i falls in window i / 10.
        buyers.insert((i / 10, band.to_string(), row[0].to_string()));
    }
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (band, n) in &purchases {
        let distinct = buyers.iter().filter(|(_, b, _)| b == band).count() as u64;
        expected.insert(band.clone(), (*n, distinct));
    }
    assert!(purchases.values().sum::<u64>() > 100, "{expected:?}");
    assert_eq!(counted, expected);
}

/// A record an expression cannot be evaluated on goes to `<stage>.errors` with the reason and is
/// counted as dropped; every other record goes on. The sample has one row with an empty
/// `brand_id`, on which `int(brand_id)` fails.
#[test]
fn records_an_expression_fails_on_go_to_the_errors_stream_and_the_rest_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors.jsonl");
    let kept = dir.path().join("kept.jsonl");
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"[sources.log]
type = "csv"
path = "{}"
[transforms.branded]
type = "filter"
inputs = ["log"]
where = "int(brand_id) % 2 == 0"
[sinks.kept]
type = "file"
inputs = ["branded"]
path = "{}"
[sinks.bad]
type = "file"
inputs = ["branded.errors"]
path = "{}"
"#,
            repo().join("data/user_log_sample.csv").display(),
            kept.display(),
            errors.display()
        ),
    )
    .unwrap();
    let out = run(&["run", pipeline.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let mut reader = csv::Reader::from_path(repo().join("data/user_log_sample.csv")).unwrap();
    let (mut even, mut unreadable) = (0, 0);
    for row in reader.records() {
        match row.unwrap()[4].parse::<i64>() {
            Ok(brand) if brand % 2 == 0 => even += 1,
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    assert_eq!(unreadable, 1, "the sample's one empty brand_id");
    let kept_lines = std::fs::read_to_string(&kept).unwrap().lines().count();
    assert_eq!(kept_lines, even);
    let error_lines: Vec<serde_json::Value> = std::fs::read_to_string(&errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(error_lines.len(), unreadable, "{error_lines:?}");
    let reason = error_lines[0]["reason"].as_str().unwrap();
    assert!(reason.contains("int('')"), "{reason}");
    assert!(stderr.contains("1 dropped"), "{stderr}");
}
