//! The figures in README.md and BENCHMARKS.md are the last benchmark run's: every generated table
//! equals what `bench/tables.py` makes from `bench/results/`, and the check notices a figure
//! typed by hand.

mod common;

use common::repo;
use std::path::Path;
use std::process::Command;

fn check(root: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("bench/tables.py"))
        .arg("--check")
        .arg("--root")
        .arg(root)
        .output()
        .expect("python3 runs")
}

#[test]
fn the_documented_figures_are_the_last_runs() {
    let out = check(&repo());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_figure_changed_by_hand_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bench")).unwrap();
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            // Benchmark work directories (ignored by git) may sit beside the results.
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
    };
    copy(
        &repo().join("bench/results"),
        &dir.path().join("bench/results"),
    );
    for doc in ["README.md", "BENCHMARKS.md"] {
        std::fs::copy(repo().join(doc), dir.path().join(doc)).unwrap();
    }
    assert!(check(dir.path()).status.success(), "the copy checks");
    let readme = dir.path().join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let start = text
        .find("<!-- generated: readme")
        .expect("README has the figures block");
    let digit = start + text[start..].find(|c: char| c.is_ascii_digit()).unwrap();
    let changed = if &text[digit..digit + 1] == "9" {
        "8"
    } else {
        "9"
    };
    let mut edited = text.clone();
    edited.replace_range(digit..digit + 1, changed);
    std::fs::write(&readme, edited).unwrap();
    let out = check(dir.path());
    assert!(!out.status.success(), "a changed figure passes the check");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("README.md"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
