//! `weir test`: a pipeline's own tests, run without its sources and sinks. A test injects
//! records at any component, moves event time and a virtual processing-time clock, and states
//! what must come out of any component; the transforms are the ones `weir run` builds, driven one
//! step at a time, so windows, lateness and timeouts close exactly when the test says, in
//! milliseconds of real time. Above `topology` (it uses plans), beside `topology::engine`.

mod compare;
mod harness;
pub mod spec;

use crate::config::{Diagnostics, load_document};
use crate::registry::Registry;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What a `weir test` run found.
#[derive(Debug, Default)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed, and pipelines or test files that could not be read.
    pub failed: usize,
    /// Pipelines without tests.
    pub untested: Vec<PathBuf>,
}

/// Runs the tests of every pipeline at `paths` (files, or directories of `*.toml` pipelines);
/// writes one line per test and every failure with its file:line to `out`.
pub fn run(paths: &[PathBuf], registry: &Registry, out: &mut String) -> Summary {
    let mut summary = Summary::default();
    for path in paths {
        let files = match pipelines(path) {
            Ok(files) => files,
            Err(e) => {
                let _ = writeln!(out, "{}: error: {e}", path.display());
                summary.failed += 1;
                continue;
            }
        };
        for file in files {
            run_file(&file, registry, out, &mut summary);
        }
    }
    summary
}

/// `path` itself, or the pipelines in directory `path` (`*.toml` but not `*.test.toml`), sorted.
fn pipelines(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && !spec::is_companion(p))
        .collect();
    files.sort();
    Ok(files)
}

fn run_file(file: &Path, registry: &Registry, out: &mut String, summary: &mut Summary) {
    let diagnostics = |out: &mut String, d: &Diagnostics| {
        let _ = write!(out, "{d}");
    };
    let doc = match load_document(file, &[]) {
        Ok(doc) => doc,
        Err(d) => {
            diagnostics(out, &d);
            summary.failed += 1;
            return;
        }
    };
    let tests = match spec::load(&doc, file) {
        Ok(tests) => tests,
        Err(errors) => {
            diagnostics(out, &Diagnostics(errors));
            summary.failed += 1;
            return;
        }
    };
    if tests.is_empty() {
        summary.untested.push(file.to_path_buf());
        let _ = writeln!(out, "{}: no tests", file.display());
        return;
    }
    let (plan, found) = crate::topology::plan::plan(&doc, registry);
    let Some(plan) = plan else {
        diagnostics(out, &found);
        summary.failed += 1;
        return;
    };
    for test in &tests {
        match harness::run(&plan, test) {
            Ok(()) => {
                summary.passed += 1;
                let _ = writeln!(out, "{}: test `{}` ok", file.display(), test.name);
            }
            Err(failure) => {
                summary.failed += 1;
                let _ = writeln!(
                    out,
                    "{}: error: test `{}` failed: {}",
                    failure.origin, test.name, failure.message
                );
            }
        }
    }
}
