//! Nexmark on weir (issue #36): the queries in `pipelines/nexmark/` pass their own tests, and run
//! on events from `weir gen nexmark` they give what a recount of the generated file gives.

mod common;

use common::{json_lines, succeeding_in_repo, weir};
use std::collections::BTreeMap;

#[test]
fn every_query_passes_its_own_tests() {
    let stdout = succeeding_in_repo(&["test", "pipelines/nexmark/"], &[]);
    assert!(
        stdout.contains("3 passed, 0 failed, 0 pipeline(s) without tests"),
        "{stdout}"
    );
}

/// The generated events as maps from column to value.
fn events(file: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn run_query(query: &str, file: &std::path::Path) -> Vec<serde_json::Value> {
    json_lines(&succeeding_in_repo(
        &["run", &format!("pipelines/nexmark/{query}.toml")],
        &[("WEIR_NEXMARK", file)],
    ))
}

/// q1 and q2 on 100,000 generated events: every bid converted, the bids on every 123rd auction.
#[test]
fn q1_and_q2_on_generated_events_equal_a_recount() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nexmark.csv");
    let status = weir()
        .args([
            "-q", "gen", "nexmark", "--events", "100000", "--seed", "3", "--out",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    let all = events(&file);
    let bids: Vec<_> = all.iter().filter(|e| e["event_type"] == "2").collect();
    assert_eq!(bids.len(), 92_000, "46 of every 50 events are bids");

    let q1 = run_query("q1", &file);
    assert_eq!(q1.len(), bids.len());
    for (row, bid) in q1.iter().zip(&bids) {
        let dollars: f64 = bid["price"].parse().unwrap();
        assert_eq!(row["auction"], bid["auction"].as_str());
        assert!(
            (row["price"].as_f64().unwrap() - dollars * 0.908).abs() < 1e-6,
            "{row}"
        );
    }

    let chosen: Vec<(String, String)> = bids
        .iter()
        .filter(|b| b["auction"].parse::<u64>().unwrap() % 123 == 0)
        .map(|b| (b["auction"].clone(), b["price"].clone()))
        .collect();
    assert!(!chosen.is_empty());
    let q2: Vec<(String, String)> = run_query("q2", &file)
        .iter()
        .map(|r| {
            let text = |f: &str| r[f].as_str().unwrap().to_string();
            (text("auction"), text("price"))
        })
        .collect();
    assert_eq!(q2, chosen);
}
