//! `weir test` through the real binary: a failing test prints a diff with the file and line of
//! its step; processing-time windows close on the virtual clock exactly when a step advances it
//! (not on the wall clock); mistakes in a test file are positioned errors; a pipeline's sources
//! and sinks are never opened (a csv file that does not exist, a Kafka broker nobody runs).

mod common;

use common::weir;
use std::path::Path;
use std::time::{Duration, Instant};

const PIPELINE: &str = r#"
[sources.log]
type = "csv"
path = "/nonexistent/log.csv"
columns = ["gender"]

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[transforms.wall]
type = "window"
inputs = ["log"]
size = "1s"
time = "processing"
group_by = ["gender"]

[sinks.out]
type = "kafka"
brokers = "127.0.0.1:1"
inputs = ["per_second", "wall"]
topic = "never"
# Two windows of one source into one exactly-once sink would be refused (docs/kafka.md, "One path
# per marking stage").
guarantee = "at-least-once"
"#;

fn weir_test(dir: &Path, tests: &str) -> (bool, String) {
    std::fs::write(dir.join("p.toml"), PIPELINE).unwrap();
    std::fs::write(dir.join("p.test.toml"), tests).unwrap();
    let out = weir().arg("test").arg(dir.join("p.toml")).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_failing_expectation_shows_the_diff_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = weir_test(
        dir.path(),
        r#"[[tests]]
name = "off by one"

[[tests.steps]]
inject = "log"
records = [{ gender = "0", _time = 100 }, { gender = "0", _time = 200 }]

[[tests.steps]]
end = true

[[tests.steps]]
expect = "per_second"
records = [{ gender = "0", count = 3 }]
"#,
    );
    assert!(!ok, "{out}");
    let file = dir.path().join("p.test.toml");
    assert!(
        out.contains(&format!(
            "{}:11:1: error: test `off by one` failed: step 3: expect per_second: 1 expected record(s) not found, 1 unexpected",
            file.display()
        )),
        "{out}"
    );
    assert!(out.contains("  - {\"gender\":\"0\",\"count\":3}"), "{out}");
    assert!(
        out.contains("  + {") && out.contains("\"count\":2"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn processing_time_windows_close_on_the_virtual_clock() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (ok, out) = weir_test(
        dir.path(),
        r#"[[tests]]
name = "a processing-time window closes when the clock passes its end"
start = 1_000_000              # processing time at the start, epoch ms

[[tests.steps]]
inject = "log"
records = [{ gender = "1" }, { gender = "1" }]

[[tests.steps]]
advance = "999ms"

[[tests.steps]]
expect = "wall"
none = true

[[tests.steps]]
advance = "1h"                 # an hour of virtual time, no wall time

[[tests.steps]]
expect = "wall"
records = [{ gender = "1", count = 2, window_start = 1_000_000, window_end = 1_001_000 }]

[[tests.steps]]
expect = "per_second"
none = true                    # event time never moved: the event-time window is still open
"#,
    );
    assert!(ok, "{out}");
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(out.contains("1 passed, 0 failed"), "{out}");
}

#[test]
fn mistakes_in_tests_are_positioned_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out) = weir_test(
        dir.path(),
        r#"[[tests]]
name = "mistakes"

[[tests.steps]]
inject = "log"
watermark = 5

[[tests.steps]]
expect = "nowhere"
count = 1
"#,
    );
    assert!(!ok);
    let file = dir.path().join("p.test.toml").display().to_string();
    assert!(
        out.contains(&format!(
            "{file}:4:1: error: tests[0].steps[0]: a step does exactly one thing"
        )),
        "{out}"
    );
    let (ok, out) = weir_test(
        dir.path(),
        "[[tests]]\nname = \"x\"\n[[tests.steps]]\nexpect = \"nowhere\"\ncount = 1\n",
    );
    assert!(!ok);
    assert!(
        out.contains(
            "step 1: no component `nowhere` (there are `log`, `per_second`, `wall`, `out`)"
        ),
        "{out}"
    );
}
