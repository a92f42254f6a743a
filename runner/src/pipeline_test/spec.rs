//! Reading a pipeline's tests: the `[[tests]]` tables of the pipeline file and of a
//! `<name>.test.toml` file beside it. Each test is a list of steps, each step one action — inject
//! records at a component, move event time (`watermark`) or processing time (`advance`), end the
//! input, or check what a component put out since the last check — with the place it was
//! written, so a failure names its file and line.

use crate::config::{Diagnostic, Document, Edit, Node, Origin, de::from_node, parse_text};
use crate::record::Millis;
use crate::time::{DurationSpec, TimePoint};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One `[[tests]]` table.
#[derive(Debug)]
pub struct TestCase {
    /// Its `name`.
    pub name: String,
    /// Where it was written.
    pub origin: Origin,
    /// Processing time when it starts (epoch ms).
    pub start: Millis,
    /// What it does, in order.
    pub steps: Vec<Step>,
}

/// One step and where it was written.
#[derive(Debug)]
pub struct Step {
    /// What it does.
    pub action: Action,
    /// Where it was written.
    pub origin: Origin,
}

/// What a step does.
#[derive(Debug)]
pub enum Action {
    /// `inject = ID, records = [...]`: records leave component ID (a source is not opened).
    Inject {
        /// The component.
        component: String,
        /// The records: fields, and `_time` for the event time.
        records: Vec<toml::Table>,
    },
    /// `watermark = T`: every source has seen all records up to event time T.
    Watermark(Millis),
    /// `advance = "D"`: processing time moves on by D; timers due on the way fire.
    Advance(Millis),
    /// `end = true`: every input ends; stages emit what they hold.
    End,
    /// `expect = ID` with one of `records`, `count` or `none`: what ID put out since the last
    /// check of ID.
    Expect {
        /// The component.
        component: String,
        /// What must have come out.
        expectation: Expectation,
    },
}

/// What a component must have put out.
#[derive(Debug)]
pub enum Expectation {
    /// Exactly these records, in any order; each names the fields it checks (and `_time`).
    Records(Vec<toml::Table>),
    /// This many records.
    Count(usize),
    /// No record.
    Nothing,
}

/// The field that holds a record's event time in `records`.
pub const TIME_FIELD: &str = "_time";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestTable {
    name: String,
    start: Option<TimePoint>,
    #[serde(default)]
    #[allow(dead_code)] // read from the nodes, for their origins
    steps: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepTable {
    inject: Option<String>,
    records: Option<Vec<toml::Table>>,
    watermark: Option<TimePoint>,
    advance: Option<DurationSpec>,
    end: Option<bool>,
    expect: Option<String>,
    count: Option<usize>,
    none: Option<bool>,
}

/// The file of tests beside pipeline `path`: `x.toml` → `x.test.toml`.
pub fn companion(path: &Path) -> PathBuf {
    path.with_extension("test.toml")
}

/// True for a file of tests (`*.test.toml`) rather than a pipeline.
pub fn is_companion(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".test.toml")
}

/// The tests of pipeline `doc` (read from `path`) and of its companion file, or every problem
/// found in them.
pub fn load(doc: &Document, path: &Path) -> Result<Vec<TestCase>, Vec<Diagnostic>> {
    let mut tests = Vec::new();
    let mut errors = Vec::new();
    let read = |root: &Node, tests: &mut Vec<TestCase>, errors: &mut Vec<Diagnostic>| {
        if let Some(node) = root.get("tests") {
            match read_tests(node) {
                Ok(found) => tests.extend(found),
                Err(e) => errors.extend(e),
            }
        }
    };
    read(&doc.root, &mut tests, &mut errors);
    let beside = companion(path);
    if beside.is_file() {
        let shown = beside.display().to_string();
        match std::fs::read_to_string(&beside) {
            Ok(text) => match parse_text(&shown, text, &[] as &[Edit], |name| {
                std::env::var(name).ok()
            }) {
                Ok(companion) => {
                    for entry in companion.root.entries().unwrap_or_default() {
                        if entry.key != "tests" {
                            errors.push(Diagnostic::error(
                                entry.key_origin.clone(),
                                &entry.key,
                                "a tests file has only [[tests]] tables",
                            ));
                        }
                    }
                    read(&companion.root, &mut tests, &mut errors);
                }
                Err(diagnostics) => errors.extend(diagnostics.0),
            },
            Err(e) => errors.push(Diagnostic::error(
                Origin::Builtin,
                "",
                format!("cannot read {shown}: {e}"),
            )),
        }
    }
    if errors.is_empty() {
        Ok(tests)
    } else {
        Err(errors)
    }
}

fn read_tests(node: &Node) -> Result<Vec<TestCase>, Vec<Diagnostic>> {
    let crate::config::NodeValue::Array(items) = &node.value else {
        return Err(vec![
            Diagnostic::error(
                node.origin.clone(),
                "tests",
                "write tests as [[tests]] tables",
            )
            .with_hint("[[tests]]\nname = \"…\"\n[[tests.steps]]\ninject = \"…\""),
        ]);
    };
    let mut tests = Vec::new();
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("tests[{i}]");
        let table: TestTable = match from_node(item, &path) {
            Ok(t) => t,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let mut steps = Vec::new();
        if let Some(crate::config::NodeValue::Array(step_nodes)) =
            item.get("steps").map(|n| &n.value)
        {
            for (j, step) in step_nodes.iter().enumerate() {
                match read_step(step, &format!("{path}.steps[{j}]")) {
                    Ok(s) => steps.push(s),
                    Err(e) => errors.extend(e),
                }
            }
        }
        tests.push(TestCase {
            name: table.name,
            origin: item.origin.clone(),
            start: table.start.map_or(0, |t| t.0),
            steps,
        });
    }
    if errors.is_empty() {
        Ok(tests)
    } else {
        Err(errors)
    }
}

fn read_step(node: &Node, path: &str) -> Result<Step, Vec<Diagnostic>> {
    let t: StepTable = from_node(node, path)?;
    let wrong =
        |message: &str| {
            vec![Diagnostic::error(node.origin.clone(), path, message).with_hint(
            "a step is one of: inject = ID (with records), watermark = T, advance = \"1s\", \
             end = true, expect = ID (with records, count or none = true)",
        )]
        };
    let actions = [
        t.inject.is_some(),
        t.watermark.is_some(),
        t.advance.is_some(),
        t.end.is_some(),
        t.expect.is_some(),
    ];
    if actions.iter().filter(|&&a| a).count() != 1 {
        return Err(wrong("a step does exactly one thing"));
    }
    let payload = t.records.is_some() || t.count.is_some() || t.none.is_some();
    if payload && t.inject.is_none() && t.expect.is_none() {
        return Err(wrong(
            "`records`, `count` and `none` belong to `inject` or `expect`",
        ));
    }
    let action = if let Some(component) = t.inject {
        if t.count.is_some() || t.none.is_some() {
            return Err(wrong("`count` and `none` belong to `expect`"));
        }
        Action::Inject {
            component,
            records: t.records.unwrap_or_default(),
        }
    } else if let Some(w) = t.watermark {
        Action::Watermark(w.0)
    } else if let Some(d) = t.advance {
        Action::Advance(d.as_millis())
    } else if let Some(end) = t.end {
        if !end {
            return Err(wrong("`end = false` does nothing; leave the step out"));
        }
        Action::End
    } else {
        let component = t.expect.unwrap_or_default();
        let expectation = match (t.records, t.count, t.none) {
            (Some(records), None, None) => Expectation::Records(records),
            (None, Some(n), None) => Expectation::Count(n),
            (None, None, Some(true)) => Expectation::Nothing,
            _ => {
                return Err(wrong(
                    "`expect` takes one of `records`, `count` or `none = true`",
                ));
            }
        };
        Action::Expect {
            component,
            expectation,
        }
    };
    Ok(Step {
        action,
        origin: node.origin.clone(),
    })
}
