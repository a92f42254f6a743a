//! Plugins through the real `weir` binary with real `.so` files built from this workspace: the
//! example plugin end to end, plugins that panic or fail, a future ABI, a library that is not a
//! plugin, a file that is not a library, and config errors inside plugin options.

/// A plugin written in C against the generated header.
#[path = "plugins/c_plugin.rs"]
mod c_plugin;
mod common;

use common::plugins::{lib, plugin_dir};
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `pipeline` (with PLUGIN replaced by the library path of `plugin`) and runs `args` on it.
fn run_with(plugin: &Path, pipeline: &str, command: &str) -> (Output, String, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("p.toml");
    let text = pipeline
        .replace("PLUGIN", &plugin.display().to_string())
        .replace("DIR", &dir.display().to_string());
    std::fs::write(&file, text).unwrap();
    let out = run(&[command, file.to_str().unwrap()]);
    let stderr = text_of(&out).replace(&file.display().to_string(), "p.toml");
    (out, stderr, dir)
}

fn text_of(out: &Output) -> String {
    text(out).1
}

#[test]
fn shipped_plugin_pipeline_runs_end_to_end() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = weir()
        .args([
            "run",
            "pipelines/shopping_gender_plugins.toml",
            "--set",
            "sources.log.rate=0",
            "--set",
            "sources.log.rows=10000",
        ])
        .env("WEIR_PLUGIN_DIR", plugin_dir())
        .env("WEIR_OUT_DIR", out_dir.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let printed = sum_seed(&stdout);
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        ["female", "male", "unknown"],
        "labels from shop.label"
    );
    assert_eq!(
        printed.values().sum::<u64>(),
        10_000,
        "shop.generate produced every row"
    );
    let csv = std::fs::read_to_string(out_dir.path().join("gender_counts.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("window_start,window_end,gender,count"));
    let mut written = std::collections::BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        *written.entry(f[2].to_string()).or_insert(0u64) += f[3].parse::<u64>().unwrap();
    }
    assert_eq!(
        written, printed,
        "shop.csv_append wrote what the console printed"
    );
}

#[test]
fn template_plugin_works_as_documented() {
    let (out, stderr, dir) = run_with(
        &lib("weir_plugin_template"),
        r#"
[plugins]
paths = ["PLUGIN"]
[sources.s]
type = "csv"
path = "data/user_log_sample.csv"
[transforms.up]
type = "template.upper"
inputs = ["s"]
field = "province"
[sinks.f]
type = "file"
inputs = ["up"]
path = "DIR/out.jsonl"
"#,
        "run",
    );
    assert!(out.status.success(), "{stderr}");
    let first = std::fs::read_to_string(dir.join("out.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        first.contains(r#""province":"内蒙古""#),
        "non-ASCII text passes through: {first}"
    );
    let (out, stderr, dir) = run_with(
        &lib("weir_plugin_template"),
        "[plugins]\npaths = [\"PLUGIN\"]\n[sources.s]\ntype = \"csv\"\npath = \"DIR/in.csv\"\n[transforms.up]\ntype = \"template.upper\"\ninputs = [\"s\"]\nfield = \"name\"\n[sinks.f]\ntype = \"file\"\ninputs = [\"up\"]\npath = \"DIR/out.jsonl\"\n",
        "validate",
    );
    assert!(out.status.success(), "{stderr}");
    drop(dir);
}

#[test]
fn weir_plugins_lists_what_a_library_offers() {
    let out = run(&["plugins", lib("weir_shop").to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("plugin `shop` 0.1.0 (ABI 1.2)"), "{stdout}");
    for line in [
        "transform shop.label",
        "transform shop.distinct_buyers",
        "sink      shop.csv_append",
        "source    shop.generate",
    ] {
        assert!(stdout.contains(line), "{line} missing from\n{stdout}");
    }
}

const PANIC_PIPELINE: &str = r#"
[plugins]
paths = ["PLUGIN"]
[sources.s]
type = "csv"
path = "data/user_log_sample.csv"
batch_size = 100
[transforms.p]
type = "faulty.panic_after"
inputs = ["s"]
after = 2
[sinks.out]
type = "blackhole"
inputs = ["p"]
"#;

#[test]
fn a_panicking_plugin_fails_its_stage_not_the_process() {
    let (out, stderr, _) = run_with(&lib("weir_test_faulty"), PANIC_PIPELINE, "run");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an orderly failure, not an abort: {stderr}"
    );
    assert!(stderr.contains("error: stage transforms.p (faulty.panic_after) failed: panicked: deliberate panic in a plugin"), "{stderr}");
    assert!(
        stderr.contains("sinks.out: 200 in"),
        "the batches before the panic were delivered: {stderr}"
    );
}

#[test]
fn plugin_errors_on_create_and_write_name_the_stage() {
    let (out, stderr, _) = run_with(
        &lib("weir_test_faulty"),
        "[plugins]\npaths = [\"PLUGIN\"]\n[sources.s]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n[transforms.c]\ntype = \"faulty.fail_create\"\ninputs = [\"s\"]\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"c\"]\n",
        "run",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("stage transforms.c (faulty.fail_create) failed: cannot start: the simulated device is missing"), "{stderr}");
    let (out, stderr, _) = run_with(
        &lib("weir_test_faulty"),
        "[plugins]\npaths = [\"PLUGIN\"]\n[sources.s]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n[sinks.r]\ntype = \"faulty.reject\"\ninputs = [\"s\"]\n",
        "run",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("stage sinks.r (faulty.reject) failed: disk full (simulated)"),
        "{stderr}"
    );
}

fn validate_plugin_path(plugin: &Path) -> (Option<i32>, String) {
    let (out, stderr, _) = run_with(
        plugin,
        "[plugins]\npaths = [\"PLUGIN\"]\n[sources.s]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"s\"]\n",
        "validate",
    );
    (out.status.code(), stderr)
}

#[test]
fn a_future_abi_is_refused_by_name() {
    let (code, stderr) = validate_plugin_path(&lib("weir_test_future_abi"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("p.toml:2:10: error: plugins.paths[0]: "),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "libweir_test_future_abi.so: built for plugin ABI 2.0, but this weir speaks ABI 1.x"
        ),
        "{stderr}"
    );
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused_by_name() {
    let (code, stderr) = validate_plugin_path(&lib("weir_test_not_a_plugin"));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("libweir_test_not_a_plugin.so: not a weir plugin: it has no `weir_plugin_descriptor` symbol"), "{stderr}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, "this is text, not ELF").unwrap();
    let (code, stderr) = validate_plugin_path(&fake);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("libfake.so: cannot load: dlopen failed: "),
        "{stderr}"
    );
    let (code, stderr) = validate_plugin_path(&dir.path().join("libmissing.so"));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("libmissing.so does not exist"), "{stderr}");
}

#[test]
fn a_library_for_another_architecture_is_refused_by_name() {
    // A real plugin whose ELF header says AArch64 (e_machine, 2 bytes at offset 18) on x86-64,
    // or x86-64 elsewhere: what a library built for another machine looks like to the loader.
    let mut bytes = std::fs::read(lib("weir_shop")).unwrap();
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "plugins are ELF files on this platform"
    );
    let other: u16 = if cfg!(target_arch = "aarch64") {
        62
    } else {
        183
    };
    bytes[18..20].copy_from_slice(&other.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("libforeign.so");
    std::fs::write(&foreign, bytes).unwrap();
    let (code, stderr) = validate_plugin_path(&foreign);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("libforeign.so: cannot load: built for aarch64 (64-bit ELF, machine 183), but this weir runs on x86_64") || cfg!(target_arch = "aarch64"), "{stderr}");
}

#[test]
fn a_plugin_directory_loads_plugins_and_skips_other_libraries() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["weir_shop", "weir_test_not_a_plugin"] {
        std::fs::copy(lib(name), dir.path().join(format!("lib{name}.so"))).unwrap();
    }
    let (out, stderr, _) = run_with(
        dir.path(),
        "[plugins]\npaths = [\"PLUGIN\"]\n[sources.s]\ntype = \"shop.generate\"\nrows = 50\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"s\"]\n",
        "run",
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("sinks.out: 50 in"), "{stderr}");
}

#[test]
fn plugin_option_errors_have_positions_like_built_ins() {
    let (out, stderr, _) = run_with(
        &lib("weir_shop"),
        r#"[plugins]
paths = ["PLUGIN"]
[sources.a]
type = "shop.generate"
rows = "many"
[sources.b]
type = "shop.generate"
rowz = 5
[sources.c]
type = "shop.generate"
seed = 3
[sources.d]
type = "shop.generate"
rows = 5
event_rate = 0
[sinks.out]
type = "blackhole"
inputs = ["a", "b", "c", "d"]
"#,
        "validate",
    );
    assert_eq!(out.status.code(), Some(1));
    let expected = [
        "p.toml:5:8: error: sources.a.rows: invalid type: string \"many\", expected u64",
        "p.toml:8:1: error: sources.b.rowz: unknown key `rowz`\n  hint: did you mean `rows`?",
        "p.toml:9:1: error: sources.c: missing field `rows`",
        "p.toml:12:1: error: sources.d: event_rate must be above 0, found 0",
    ];
    for e in expected {
        assert!(stderr.contains(e), "missing:\n{e}\n--- in:\n{stderr}");
    }
    assert!(stderr.contains("4 errors found"), "{stderr}");
}

#[test]
fn a_pinned_plugin_loads_only_with_its_hash() {
    let plugin = lib("weir_shop");
    let hash = sha256_of(&plugin);
    let pipeline = |pin: &str| {
        format!(
            "[plugins]\npaths = [\"PLUGIN\"]\nsha256 = {{ \"PLUGIN\" = \"{pin}\" }}\n\
             [sources.s]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"s\"]\n"
        )
    };
    let (out, stderr, _) = run_with(&plugin, &pipeline(&hash), "validate");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let wrong = format!("{}0", &hash[..63]);
    let wrong = if wrong == hash {
        format!("{}1", &hash[..63])
    } else {
        wrong
    };
    let (out, stderr, _) = run_with(&plugin, &pipeline(&wrong), "validate");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "refusing to load it: its SHA-256 is {hash}, but the pipeline pins {wrong}"
        )),
        "{stderr}"
    );
    let (out, stderr, _) = run_with(&plugin, &pipeline("not-a-hash"), "validate");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`not-a-hash` is not a SHA-256 (64 hex digits)"),
        "{stderr}"
    );
}

#[test]
fn a_pin_is_checked_before_the_library_is_opened_and_a_stray_pin_is_an_error() {
    // A file that is not a library at all: with a wrong pin, the pin refuses it before the
    // loader sees it.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let zeros = "0".repeat(64);
    let (out, stderr, _) = run_with(
        &fake,
        &format!(
            "[plugins]\npaths = [\"PLUGIN\"]\nsha256 = {{ \"PLUGIN\" = \"{zeros}\" }}\n\
             [sources.s]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"s\"]\n"
        ),
        "validate",
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("libfake.so: refusing to load it"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("dlopen"),
        "the loader must not have run: {stderr}"
    );
    // A pin that names no listed library.
    let (out, stderr, _) = run_with(
        &lib("weir_shop"),
        &format!(
            "[plugins]\npaths = [\"PLUGIN\"]\nsha256 = {{ \"{}\" = \"{zeros}\" }}\n\
             [sources.s]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n\
             [sinks.out]\ntype = \"blackhole\"\ninputs = [\"s\"]\n",
            fake.display()
        ),
        "validate",
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("but no library in `paths` is that file"),
        "{stderr}"
    );
}

/// SHA-256 of a file with the system's `sha256sum`, independent of weir's own hashing.
fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// CI runs `weir test pipelines/`: every shipped pipeline has tests, and they pass (the plugin
/// pipeline's with the example plugin built here).
#[test]
fn every_shipped_pipeline_passes_its_own_tests() {
    let stdout = succeeding_in_repo(
        &["test", "pipelines/"],
        &[("WEIR_PLUGIN_DIR", plugin_dir())],
    );
    let shipped = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.ends_with(".toml") && !name.ends_with(".test.toml")
        })
        .count();
    let tested: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter(|l| l.contains(": test `") && l.ends_with("` ok"))
        .filter_map(|l| l.split(": test `").next())
        .collect();
    assert_eq!(
        tested.len(),
        shipped,
        "every shipped pipeline has passing tests:\n{stdout}"
    );
    assert!(
        stdout.contains(" 0 failed, 0 pipeline(s) without tests"),
        "{stdout}"
    );
}

/// A plugin transform rejects rows (ABI 1.1 `reject_row`): `shop.label` with `reject_unknown`
/// sends the rows whose code has no label to `labelled.errors`, with reason and fields, and
/// the other rows' totals are those of a recount of the input.
#[test]
fn rows_a_plugin_rejects_reach_its_errors_output() {
    let csv = repo().join("data/user_log_sample.csv");
    let pipeline = format!(
        r#"
[plugins]
paths = ["PLUGIN"]

[sources.log]
type = "csv"
path = "{}"
event_rate = 1000
start_time = 1700000000000

[transforms.labelled]
type = "shop.label"
inputs = ["log"]
labels = {{ 0 = "female", 1 = "male" }}
reject_unknown = true

[transforms.per_second]
type = "window"
inputs = ["labelled"]
size = "1s"
group_by = ["gender"]

[sinks.out]
type = "file"
inputs = ["per_second"]
path = "DIR/out.jsonl"

[sinks.rejected]
type = "file"
inputs = ["labelled.errors"]
path = "DIR/rejected.jsonl"
"#,
        csv.display()
    );
    let (out, stderr, dir) = run_with(&lib("weir_shop"), &pipeline, "run");
    assert!(out.status.success(), "{stderr}");
    let recount = count_genders(&csv);
    let rejected: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("rejected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejected.len() as u64, recount["2"], "{stderr}");
    for record in &rejected {
        assert_eq!(record["stage"], "labelled", "{record}");
        assert_eq!(record["reason"], "gender `2` has no label", "{record}");
        let fields: serde_json::Value =
            serde_json::from_str(record["record"].as_str().unwrap()).unwrap();
        assert_eq!(fields["gender"], "2", "{record}");
        assert!(
            record["at"].as_str().unwrap().starts_with("event time "),
            "{record}"
        );
    }
    let counted = sum_json_counts(
        &std::fs::read_to_string(dir.join("out.jsonl")).unwrap(),
        "gender",
    );
    assert_eq!(
        counted,
        totals(&[("female", recount["0"]), ("male", recount["1"])]),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{} dropped", recount["2"])),
        "the rejected rows are counted as dropped: {stderr}"
    );
}

/// `weir plugin new` writes a crate that builds outside this repository (the SDK comes with it)
/// and `weir plugin test` runs its unit test, a release build and its pipeline's tests — for each
/// kind; a pipeline test that no longer holds makes it fail.
#[test]
fn a_scaffolded_plugin_of_each_kind_builds_and_passes_its_tests_outside_the_repository() {
    let both = |out: &Output| {
        let (stdout, stderr) = text(out);
        format!("{stdout}\n{stderr}")
    };
    let outside = tempfile::tempdir().unwrap();
    // Shared between runs of this test: the first build compiles serde and toml once.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold");
    for kind in ["transform", "sink", "source"] {
        let name = format!("my_{kind}");
        let out = weir()
            .args(["plugin", "new", &name, "--kind", kind])
            .current_dir(outside.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", both(&out));
        let dir = outside.path().join(&name);
        assert!(dir.join("weir-sdk/sdk/src/glue.rs").is_file());
        let out = weir()
            .args(["plugin", "test", dir.to_str().unwrap()])
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_NET_OFFLINE", "true")
            .output()
            .unwrap();
        let shown = both(&out);
        assert!(out.status.success(), "{kind}: {shown}");
        assert!(
            shown.contains("test result: ok. 1 passed") && shown.contains("1 passed, 0 failed"),
            "{kind}: the unit test and the pipeline test ran: {shown}"
        );
    }
    // The pipeline test fails once the transform's expected output is wrong.
    let tests = outside.path().join("my_transform/pipeline.test.toml");
    let text = std::fs::read_to_string(&tests).unwrap();
    std::fs::write(&tests, text.replace("\"ADA\"", "\"ada\"")).unwrap();
    let out = weir()
        .args(["plugin", "test", "my_transform"])
        .current_dir(outside.path())
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", both(&out));
    assert!(both(&out).contains("0 passed, 1 failed"), "{}", both(&out));
    // A name that cannot be a plugin's, and a directory that exists, are refused.
    let out = weir()
        .args(["plugin", "new", "My-Stage"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    assert!(!out.status.success() && both(&out).contains("cannot name a plugin"));
    let out = weir()
        .args(["plugin", "new", "my_sink"])
        .current_dir(outside.path())
        .output()
        .unwrap();
    assert!(!out.status.success() && both(&out).contains("exists already"));
}
