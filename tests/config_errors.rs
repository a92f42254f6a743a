//! `weir validate` / `weir run` on broken pipeline files: every mistake is reported at once, each
//! with file:line:col, key path and hint, and the exit code is 1.

mod common;

use common::{run, text};
use std::io::Write;

#[test]
fn five_mistakes_give_five_positioned_errors() {
    let out = run(&["validate", "tests/fixtures/five_mistakes.toml"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let file = "tests/fixtures/five_mistakes.toml";
    let expected = [
        format!(
            "{file}:5:8: error: sources.user_log.rate: invalid value: string \"fast\", expected rows per second (a number) or \"max\""
        ),
        format!(
            "{file}:8:8: error: transforms.per_second.type: unknown transform type `windw`\n  hint: did you mean `window`?"
        ),
        format!(
            "{file}:26:1: error: sinks.out.fromat: unknown key `fromat`\n  hint: did you mean `format`?"
        ),
        format!(
            "{file}:25:11: error: sinks.out.inputs[0]: no component `per_secnd` to read from\n  hint: did you mean `per_second`?"
        ),
        format!("{file}:14:11: error: transforms.a.inputs: cycle: a -> b -> a"),
    ];
    for e in &expected {
        assert!(
            stderr.contains(e.as_str()),
            "missing:\n{e}\n--- in stderr:\n{stderr}"
        );
    }
    assert!(stderr.contains("5 errors found"), "{stderr}");
}

#[test]
fn validate_accepts_the_shipped_pipeline() {
    let out = run(&["validate", "pipelines/shopping_gender_local.toml"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

fn validate_text(toml: &str) -> (i32, String) {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    let out = run(&["validate", file.path().to_str().unwrap()]);
    let (_, stderr) = text(&out);
    (
        out.status.code().unwrap_or(-1),
        stderr.replace(&file.path().display().to_string(), "p.toml"),
    )
}

#[test]
fn toml_syntax_error_has_its_position() {
    let (code, stderr) = validate_text("[sources.a]\ntype = \"csv\"\npath = \"x.csv\n");
    assert_eq!(code, 1);
    assert!(stderr.starts_with("p.toml:3:"), "{stderr}");
    assert!(stderr.contains("TOML syntax"), "{stderr}");
}

#[test]
fn type_errors_name_the_expected_type() {
    let (code, stderr) = validate_text(
        "[sources.a]\ntype = \"csv\"\npath = 5\n[sinks.b]\ntype = \"console\"\ninputs = \"a\"\n",
    );
    assert_eq!(code, 1);
    assert!(
        stderr
            .contains("p.toml:3:8: error: sources.a.path: expected path string, found integer `5`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "p.toml:6:10: error: sinks.b.inputs: expected an array of component ids, found string"
        ),
        "{stderr}"
    );
}

#[test]
fn missing_and_unset_things() {
    let (code, stderr) = validate_text("[sources.a]\npath = \"${WEIR_TEST_SURELY_UNSET}\"\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "p.toml:2:9: error: environment variable `WEIR_TEST_SURELY_UNSET` is not set"
        ),
        "{stderr}"
    );
    let (code, stderr) = validate_text("[sources.a]\npath = \"x\"\n");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("p.toml:1:1: error: sources.a.type: missing required key `type`"),
        "{stderr}"
    );
}

#[test]
fn a_sink_cannot_feed_and_a_source_must_exist() {
    let (code, stderr) = validate_text(
        "[transforms.t]\ntype = \"select\"\ninputs = [\"s\"]\nkeep = [\"a\"]\n[sinks.s]\ntype = \"console\"\ninputs = [\"t\"]\n",
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("p.toml:3:11: error: transforms.t.inputs[0]: `s` is a sink; sinks have no output to read"), "{stderr}");
    assert!(
        stderr.contains("the pipeline has no sources") || stderr.contains("`s` is a sink"),
        "{stderr}"
    );
}

#[test]
fn wrong_kind_of_type_gets_a_hint() {
    let (code, stderr) = validate_text(
        "[sources.a]\ntype = \"console\"\n[sinks.b]\ntype = \"console\"\ninputs = [\"a\"]\n",
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("unknown source type `console`\n  hint: `console` is a sink, not a source"),
        "{stderr}"
    );
}

#[test]
fn set_overrides_are_checked_like_the_file() {
    let out = run(&[
        "validate",
        "pipelines/shopping_gender_local.toml",
        "--set",
        "transforms.per_second.size=\"1 fortnight\"",
    ]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("--set transforms.per_second.size=\"1 fortnight\": error: transforms.per_second.size: invalid duration"), "{stderr}");
}

#[test]
fn warnings_do_not_fail_validation() {
    let (code, stderr) = validate_text(
        "[sources.a]\ntype = \"csv\"\npath = \"no/such/file.csv\"\n[sinks.b]\ntype = \"console\"\ninputs = [\"a\"]\n",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr
            .contains("p.toml:3:8: warning: sources.a.path: no/such/file.csv does not exist (yet)"),
        "{stderr}"
    );
}

#[test]
fn missing_pipeline_file_is_an_error() {
    let out = run(&["validate", "no/such/pipeline.toml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("no/such/pipeline.toml:1:1: error: cannot read pipeline file"),
        "{stderr}"
    );
}

#[test]
fn list_shows_every_stage_with_options() {
    let out = run(&["list"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for name in [
        "csv",
        "window",
        "filter",
        "select",
        "console",
        "file",
        "blackhole",
    ] {
        assert!(
            stdout.lines().any(|l| l.trim_start().starts_with(name)),
            "{name} missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains("allowed_lateness"), "{stdout}");
}

#[test]
fn graph_prints_dot_and_text() {
    let out = run(&["graph", "pipelines/shopping_gender_local.toml"]);
    let (stdout, _) = text(&out);
    assert!(stdout.starts_with("digraph"), "{stdout}");
    assert!(
        stdout.contains("\"user_log\" -> \"per_second\";"),
        "{stdout}"
    );
    assert!(stdout.contains("\"per_second\" -> \"out\";"), "{stdout}");
    let out = run(&[
        "graph",
        "--format",
        "text",
        "pipelines/shopping_gender_local.toml",
    ]);
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("out         sink       console  <- per_second"),
        "{stdout}"
    );
}

#[test]
fn kafka_stages_inherit_kafka_and_say_where_a_mistake_is() {
    let pipeline = r#"[kafka]
brokers = "embedded"
embedded = { listen = "127.0.0.1:0" }
optons = { "linger.ms" = 5 }

[sources.in]
type = "kafka"
topic = "sex"
codec = "json"

[sinks.out]
type = "kafka"
inputs = ["in"]
topic = "result"
group_id = "g"
"#;
    let (code, stderr) = validate_text(pipeline);
    assert_eq!(code, 1, "{stderr}");
    // An unknown key in [kafka] is reported where it is written (once per stage inheriting it).
    assert!(
        stderr.contains("p.toml:4:1: error: sources.in.optons: unknown key `optons`\n  hint: did you mean `options`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("p.toml:4:1: error: sinks.out.optons"),
        "{stderr}"
    );
    // With the key fixed, the values are checked; an inherited one is pointed at in [kafka].
    let (code, stderr) = validate_text(&pipeline.replace("optons", "options"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "p.toml:3:23: error: sources.in.embedded.listen: the embedded broker needs a fixed port"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("sources.in.fields: codec \"json\" needs the fields to read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sinks.out.group_id: `group_id` applies to kafka sources only"),
        "{stderr}"
    );
}

#[test]
fn a_kafka_stage_without_brokers_says_where_to_set_them() {
    let pipeline = r#"[sources.in]
type = "kafka"
topic = "sex"

[sinks.out]
type = "console"
inputs = ["in"]
"#;
    let (code, stderr) = validate_text(pipeline);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("sources.in.brokers: no brokers set for this Kafka stage"),
        "{stderr}"
    );
    assert!(stderr.contains("WEIR_KAFKA_BROKERS"), "{stderr}");
    // The environment variable fills the gap.
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(pipeline.as_bytes()).unwrap();
    let out = common::weir()
        .args(["validate", file.path().to_str().unwrap()])
        .env("WEIR_KAFKA_BROKERS", "127.0.0.1:9092")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn a_window_after_a_group_member_is_split_for_merging_and_needs_exactly_once() {
    let group_source = "[sources.events]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9\"\n\
                        topic = \"sex\"\nassignment = \"group\"\n";
    let window = "[transforms.per_second]\ntype = \"window\"\ninputs = [\"events\"]\n\
                  size = \"1s\"\ngroup_by = [\"value\"]\n";
    let sink = "[sinks.out]\ntype = \"console\"\ninputs = [\"per_second\"]\n";
    // At least once, the members' partial windows cannot be merged exactly.
    let (code, stderr) = validate_text(&format!(
        "{group_source}guarantee = \"at-least-once\"\n{window}{sink}"
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("error: transforms.per_second: `per_second` keeps state across records")
            && stderr.contains("merging the members' partial windows needs exactly-once writes"),
        "{stderr}"
    );
    // Exactly once (the default), the window is split into a partial and a merging half.
    let (code, stderr) = validate_text(&format!("{group_source}{window}{sink}"));
    assert_eq!(code, 0, "{stderr}");
    let graph = graph_text(&format!("{group_source}{window}{sink}"));
    for edge in [
        "\"events\" -> \"per_second__partial\"",
        "\"per_second__partial\" -> \"per_second__partials_out\"",
        "\"per_second__partials_in\" -> \"per_second\"",
        "\"per_second\" -> \"out\"",
    ] {
        assert!(graph.contains(edge), "no {edge} in:\n{graph}");
    }
    // `avg` cannot be merged from partials.
    let (code, stderr) = validate_text(&format!(
        "{group_source}{window}aggregates = [{{ op = \"avg\", field = \"value\" }}]\n{sink}"
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("`avg` cannot be merged across the members of a consumer group"),
        "{stderr}"
    );
    // A group member straight into a sink writes exactly once, or at least once.
    for guarantee in ["", "guarantee = \"at-least-once\"\n"] {
        let (code, stderr) = validate_text(&format!(
            "{group_source}{guarantee}[sinks.out]\ntype = \"console\"\ninputs = [\"events\"]\n"
        ));
        assert_eq!(code, 0, "{stderr}");
    }
}

/// `weir graph` of a pipeline text.
fn graph_text(pipeline: &str) -> String {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(pipeline.as_bytes()).unwrap();
    let out = common::weir()
        .args(["graph", file.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    text(&out).0
}

/// Mistakes a newcomer makes on the command line and in a file get weir's words, not a
/// library's: a negative duration, one value where a list belongs (with the list to write), and
/// a broken table in `--set` (the TOML error and its column, not "found string").
#[test]
fn common_value_mistakes_say_what_to_write() {
    let cases = [
        (
            r#"transforms.per_second.size="-1s""#,
            r#"transforms.per_second.size: invalid duration "-1s": a duration cannot be negative"#,
        ),
        (
            r#"transforms.per_second.group_by="gender""#,
            "transforms.per_second.group_by: expected a sequence, found string \"gender\"\n  hint: a list: [\"gender\"]",
        ),
        (
            r#"sinks.console={format="json""#,
            "sinks.console: the value is not valid TOML: unclosed inline table, expected `}` (column 15 of the value)",
        ),
        (
            "sinks.console={format=json}",
            "sinks.console: the value is not valid TOML: string values must be quoted",
        ),
    ];
    for (set, expected) in cases {
        let out = run(&[
            "validate",
            "pipelines/shopping_gender_local.toml",
            "--set",
            set,
        ]);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "--set {set}: {stderr}");
        assert!(stderr.contains(expected), "--set {set}:\n{stderr}");
    }
}

#[test]
fn expressions_naming_missing_fields_are_errors_at_the_name() {
    let out = run(&["validate", "tests/fixtures/expression_mistakes.toml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let file = "tests/fixtures/expression_mistakes.toml";
    for e in [
        format!(
            "{file}:11:10: error: transforms.purchases.where: no field `acton` in the records of user_log\n  hint: did you mean `action`?"
        ),
        format!(
            "{file}:17:25: error: transforms.banded.compute.band: no field `age` in the records of purchases\n  hint: its input has user_id, item_id, cat_id, merchant_id, brand_id, month, day, action, age_range, gender, province"
        ),
        format!(
            "{file}:28:23: error: transforms.big.where: no field `gender` in the records of w\n  hint: its input has window_start, window_end, band, count"
        ),
    ] {
        assert!(
            stderr.contains(&e),
            "missing:\n{e}\n--- in stderr:\n{stderr}"
        );
    }
    assert!(stderr.contains("3 errors found"), "{stderr}");
}

#[test]
fn a_syntax_mistake_in_an_expression_is_reported_at_its_column() {
    let (code, stderr) = validate_text(
        "[sources.s]\ntype = \"csv\"\npath = \"x.csv\"\n\n[transforms.f]\ntype = \"filter\"\ninputs = [\"s\"]\nwhere = \"a == 1 && (b > 2\"\n\n[sinks.o]\ntype = \"console\"\ninputs = [\"f\"]\n",
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(":8:26: error: transforms.f.where: expected `)` to close the parenthesis"),
        "{stderr}"
    );
}

/// A `dedupe` or `session` straight after a consumer-group member would keep state over one
/// member's share of the partitions: refused, with the way out.
#[test]
fn a_stateful_transform_after_a_group_member_is_refused() {
    let group_source = "[sources.events]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9\"\n\
                        topic = \"sex\"\nassignment = \"group\"\n";
    let sink = "[sinks.out]\ntype = \"console\"\ninputs = [\"state\"]\n";
    for stage in [
        "[transforms.state]\ntype = \"dedupe\"\ninputs = [\"events\"]\nkeys = [\"value\"]\nwithin = \"1m\"\n",
        "[transforms.state]\ntype = \"session\"\ninputs = [\"events\"]\ngap = \"1m\"\n",
        // Not only right after the source: through a filter, and as one side of a join.
        "[transforms.some]\ntype = \"filter\"\ninputs = [\"events\"]\nwhere = \"value != ''\"\n\
         [transforms.state]\ntype = \"dedupe\"\ninputs = [\"some\"]\nkeys = [\"value\"]\nwithin = \"1m\"\n",
        "[transforms.some]\ntype = \"filter\"\ninputs = [\"events\"]\nwhere = \"value != ''\"\n\
         [transforms.state]\ntype = \"join\"\ninputs = [\"events\", \"some\"]\non = [\"value\"]\nwithin = \"1m\"\n",
    ] {
        let (code, stderr) = validate_text(&format!("{group_source}{stage}{sink}"));
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(
                "`state` keeps state across records, but `events` reads only the partitions"
            ) && stderr.contains("assignment = \"all\""),
            "{stderr}"
        );
        let all = group_source.replace("assignment = \"group\"", "assignment = \"all\"");
        let (code, stderr) = validate_text(&format!("{all}{stage}{sink}"));
        assert_eq!(code, 0, "{stderr}");
    }
}

/// A pipeline whose marking stage reaches exactly-once Kafka sinks along more than one path.
const FAN_OUT: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"

[sources.log]
type = "csv"
path = "data/user_log_sample.csv"

[transforms.per_second]
type = "window"
inputs = ["log"]
size = "1s"
group_by = ["gender"]

[sinks.result]
type = "kafka"
inputs = ["per_second"]
topic = "result"

[sinks.copy]
type = "kafka"
inputs = ["per_second"]
topic = "copy"
"#;

/// `postgres` commits progress as a Kafka sink writing exactly once does: a window reaching both
/// (the dashboard of the shipped job swapped for a table while `result` stays) is refused.
#[test]
fn a_window_reaching_a_postgres_table_and_an_exactly_once_topic_is_refused() {
    let out = common::weir()
        .args([
            "validate",
            "pipelines/shopping_gender.toml",
            "--set",
            "sinks.dashboard={ type = \"postgres\", inputs = [\"per_second\"], url = \"postgres://weir@127.0.0.1/weir\", table = \"t\" }",
        ])
        .current_dir(common::repo())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("along 2 paths (per_second -> dashboard; per_second -> result)")
            || stderr.contains("along 2 paths (per_second -> result; per_second -> dashboard)"),
        "{stderr}"
    );
}

#[test]
fn a_marking_stage_reaching_exactly_once_sinks_along_two_paths_is_refused() {
    let out = common::weir()
        .args(["validate", "tests/fixtures/count_fan_out.toml"])
        .env("BROKERS", "127.0.0.1:9092")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: transforms.per_second: `per_second` resumes after a restart from how far its \
             output was committed, but its output reaches sinks that commit progress (Kafka \
             sinks writing exactly once, postgres) along 2 paths (per_second -> \
             per_five_seconds -> result5; per_second -> result)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("hint: write it to one topic"), "{stderr}");

    // Two sinks side by side: refused the same way.
    let (code, stderr) = validate_text(FAN_OUT);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("along 2 paths (per_second -> result; per_second -> copy)"),
        "{stderr}"
    );
    // The csv source marks its row count too; its only path runs through the window.
    assert!(!stderr.contains("`log` resumes"), "{stderr}");

    // One of them at least once: one path commits marks; a dashboard sink commits none.
    let one_path = FAN_OUT.replace(
        "topic = \"copy\"",
        "topic = \"copy\"\nguarantee = \"at-least-once\"",
    );
    let (code, stderr) = validate_text(&one_path);
    assert_eq!(code, 0, "{stderr}");
    let with_console = FAN_OUT.replace(
        "type = \"kafka\"\ninputs = [\"per_second\"]\ntopic = \"copy\"",
        "type = \"console\"\ninputs = [\"per_second\"]",
    );
    let (code, stderr) = validate_text(&with_console);
    assert_eq!(code, 0, "{stderr}");

    // A source fanned out to a sink and into a window that writes: two paths from the source.
    let source_fan_out = format!(
        "{FAN_OUT}\n[sinks.rows]\ntype = \"kafka\"\ninputs = [\"log\"]\ntopic = \"rows\"\n"
    )
    .replace(
        "[sinks.copy]",
        "[sinks.copy]\nguarantee = \"at-least-once\"",
    );
    let (code, stderr) = validate_text(&source_fan_out);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("`log` resumes after a restart")
            && stderr.contains("along 2 paths (log -> per_second -> result; log -> rows)"),
        "{stderr}"
    );
}

/// A Kafka source's records have the fields its codecs say (`fields`, `key_fields`, or the
/// codec's own), so an expression reading another name is caught before anything runs.
#[test]
fn an_expression_after_a_kafka_source_is_checked_against_the_codec_fields() {
    let (code, stderr) = validate_text(
        "[sources.sex]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopic = \"sex\"\nfields = [\"gender\"]\n\n\
         [transforms.women]\ntype = \"filter\"\ninputs = [\"sex\"]\nwhere = \"gendr == '0'\"\n\n\
         [sinks.o]\ntype = \"console\"\ninputs = [\"women\"]\n",
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            ":10:10: error: transforms.women.where: no field `gendr` in the records of sex\n  hint: did you mean `gender`?"
        ),
        "{stderr}"
    );
    // The tutorial's seed codec has `key` and `count`; a JSON key adds its fields.
    let (code, stderr) = validate_text(
        "[sources.result]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopic = \"result\"\ncodec = \"seed\"\n\
         key_codec = \"json\"\nkey_fields = [\"shop\"]\n\n\
         [transforms.big]\ntype = \"filter\"\ninputs = [\"result\"]\nwhere = \"count > 3 && shop == 'a' && key != ''\"\n\n\
         [sinks.o]\ntype = \"console\"\ninputs = [\"big\"]\n",
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_join_needs_two_inputs_and_its_keys_on_each_side() {
    let sources = "[sources.carts]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n\
                   [transforms.counts]\ntype = \"window\"\ninputs = [\"carts\"]\nsize = \"1s\"\n\
                   group_by = [\"gender\"]\n";
    let sink = "[sinks.out]\ntype = \"console\"\ninputs = [\"pairs\"]\n";
    let one = "[transforms.pairs]\ntype = \"join\"\ninputs = [\"carts\"]\non = [\"user_id\"]\nwithin = \"1m\"\n";
    let (code, stderr) = validate_text(&format!("{sources}{one}{sink}"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "p.toml:11:11: error: transforms.pairs.inputs: a `join` reads 2 inputs, 1 given"
        ),
        "{stderr}"
    );
    // `user_id` is in the log's records, not in the window's counts.
    let two = one.replace("[\"carts\"]", "[\"carts\", \"counts\"]");
    let (code, stderr) = validate_text(&format!("{sources}{two}{sink}"));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("transforms.pairs.on[0]: no field `user_id` in the records of counts"),
        "{stderr}"
    );
    assert!(!stderr.contains("records of carts"), "{stderr}");
    let both = two.replace("[\"carts\", \"counts\"]", "[\"carts\", \"carts2\"]");
    let second = "[sources.carts2]\ntype = \"csv\"\npath = \"data/user_log_sample.csv\"\n";
    let (code, stderr) = validate_text(&format!("{sources}{second}{both}{sink}"));
    assert_eq!(code, 0, "{stderr}");
}
