//! A plugin in C (plugins/examples/c), built by the test suite with the system compiler against
//! the header generated from the ABI, loaded by the real `weir` binary.

use super::*;

/// Builds the C example (plugins/examples/c) with the system compiler against the generated
/// header, warnings as errors; returns the library.
fn c_example() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-plugin");
    std::fs::create_dir_all(&dir).unwrap();
    let library = dir.join(format!("libc_example.{}", std::env::consts::DLL_EXTENSION));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(cc)
        .current_dir(repo())
        .args([
            "-std=c11", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror",
        ])
        .args(["-I", "plugins/abi", "-o"])
        .arg(&library)
        .arg("plugins/examples/c/not_equal.c")
        .output()
        .expect("a C compiler runs (cc)");
    assert!(out.status.success(), "{}", text_of(&out));
    library
}

/// A plugin written in C against the generated header loads, checks its options with positions,
/// passes rows on (`emit_rows`) and rejects rows (`reject_row`): the output and the errors are a
/// recount of the file.
#[test]
fn a_c_plugin_built_with_the_system_compiler_runs_in_a_pipeline() {
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

[transforms.known]
type = "c_example.not_equal"
inputs = ["log"]
field = "gender"
value = "2"

[sinks.out]
type = "file"
inputs = ["known"]
path = "DIR/out.jsonl"

[sinks.rejected]
type = "file"
inputs = ["known.errors"]
path = "DIR/rejected.jsonl"
"#,
        csv.display()
    );
    let library = c_example();
    let (out, stderr, dir) = run_with(&library, &pipeline, "run");
    assert!(out.status.success(), "{stderr}");
    let recount = count_genders(&csv);
    let lines = |file: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join(file))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let passed = lines("out.jsonl");
    assert_eq!(passed.len() as u64, recount["0"] + recount["1"], "{stderr}");
    assert!(passed.iter().all(|r| r["gender"] != "2"));
    let rejected = lines("rejected.jsonl");
    assert_eq!(rejected.len() as u64, recount["2"], "{stderr}");
    assert!(recount["2"] > 0, "the sample has rows to reject");
    for record in &rejected {
        assert_eq!(record["stage"], "known", "{record}");
        assert_eq!(
            record["reason"], "the field has the value this stage refuses",
            "{record}"
        );
    }
    // `weir schema` with the pipeline describes the plugin's component and options for editors.
    let schema_of = |args: &[&str]| -> serde_json::Value {
        let out = run(args);
        assert!(out.status.success(), "{}", text_of(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let component = |schema: &serde_json::Value| -> Option<serde_json::Value> {
        schema["properties"]["transforms"]["additionalProperties"]["allOf"]
            .as_array()?
            .iter()
            .find(|c| c["if"]["properties"]["type"]["const"] == "c_example.not_equal")
            .map(|c| c["then"].clone())
    };
    let file = dir.join("p.toml");
    let described = component(&schema_of(&["schema", file.to_str().unwrap()]))
        .expect("the plugin's component is in the schema");
    assert_eq!(described["additionalProperties"], false, "{described}");
    assert_eq!(
        described["properties"]["value"]["description"],
        "records whose field is this text are rejected"
    );
    assert_eq!(described["properties"]["field"]["type"], "string");
    assert!(component(&schema_of(&["schema"])).is_none());
    // Its own option check, reported at the value in the pipeline file.
    let escaped = pipeline.replace(r#"value = "2""#, r#"value = "\t""#);
    let (out, stderr, _) = run_with(&library, &escaped, "validate");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "p.toml:15:9: error: transforms.known.value: this example reads plain text only"
        ),
        "{stderr}"
    );
}
