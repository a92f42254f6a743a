//! `weir schema`, checked the way an editor uses it: a JSON Schema validator (Python's
//! `jsonschema`, independent of weir) reads the shipped `weir.schema.json`, which must be what
//! `weir schema` prints; every shipped pipeline and test file passes it, and a misspelt key or
//! a value of the wrong type is flagged at its path.

mod common;

use common::{python, repo, weir};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn check(files: &[&Path]) -> Value {
    let out = Command::new(python("WEIR_TEST_PYTHON", "venv-sio5"))
        .arg(repo().join("tests/python/check_schema.py"))
        .arg(repo().join("weir.schema.json"))
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_shipped_schema_is_what_weir_schema_prints() {
    let out = weir().arg("schema").output().unwrap();
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shipped: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("weir.schema.json")).unwrap())
            .unwrap();
    assert_eq!(
        printed, shipped,
        "weir.schema.json is stale: run `weir schema > weir.schema.json`"
    );
}

#[test]
fn every_shipped_pipeline_passes_the_schema() {
    let files: Vec<_> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let report = check(&paths);
    for (file, problems) in report.as_object().unwrap() {
        assert_eq!(problems, &Value::Array(Vec::new()), "{file}");
    }
}

#[test]
fn a_misspelt_key_and_a_wrong_type_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.toml");
    let shipped =
        std::fs::read_to_string(repo().join("pipelines/shopping_gender_dashboard.toml")).unwrap();
    let typo = shipped
        .replace("\nrate = 10\n", "\nrat = 10\n")
        .replace("points = 20", "points = \"many\"");
    assert_ne!(typo, shipped);
    std::fs::write(&file, typo).unwrap();
    let report = check(&[&file]);
    let problems = report[file.to_str().unwrap()].as_array().unwrap();
    let text = serde_json::to_string(problems).unwrap();
    assert!(!problems.is_empty(), "{text}");
    assert!(
        problems.iter().any(|p| p["path"] == "sources/user_log"
            && p["message"] == "Additional properties are not allowed ('rat' was unexpected)"),
        "{text}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p["path"] == "sinks/dashboard/points"
                && p["message"] == "'many' is not of type 'integer'"),
        "{text}"
    );
    assert_eq!(problems.len(), 2, "{text}");
}
