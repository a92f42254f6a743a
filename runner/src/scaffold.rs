//! `weir plugin new` and `weir plugin test`: start a plugin crate of one's own, outside this
//! repository, and test it the way weir runs it.
//!
//! `new` writes a Cargo crate with one component of the chosen kind, a unit test, a pipeline that
//! uses the component and that pipeline's `[[tests]]`. The SDK (`weir-plugin` and the ABI crate
//! `weir-plugin-abi`, embedded in this binary) is written into the crate under `weir-sdk/`, so it
//! builds anywhere with only serde and toml from the crate registry, against the ABI of the weir
//! that wrote it. `test` runs `cargo test`, `cargo build --release` and then this weir's pipeline
//! tests from the crate's directory, with `WEIR_PLUGIN_DIR` naming where the library was built.

use crate::cli::PluginKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The SDK's files, as this weir was built with them.
const SDK_FILES: [(&str, &str); 6] = [
    (
        "weir-sdk/abi/src/lib.rs",
        include_str!("../../plugins/abi/src/lib.rs"),
    ),
    (
        "weir-sdk/sdk/src/lib.rs",
        include_str!("../../plugins/sdk/src/lib.rs"),
    ),
    (
        "weir-sdk/sdk/src/batch.rs",
        include_str!("../../plugins/sdk/src/batch.rs"),
    ),
    (
        "weir-sdk/sdk/src/glue.rs",
        include_str!("../../plugins/sdk/src/glue.rs"),
    ),
    (
        "weir-sdk/sdk/src/host.rs",
        include_str!("../../plugins/sdk/src/host.rs"),
    ),
    ("weir-sdk/README.md", SDK_README),
];

const SDK_README: &str =
    "The weir plugin SDK (`weir-plugin`) and ABI (`weir-plugin-abi`) as the weir that wrote this
crate was built with them (`weir plugin new`). A plugin built against them loads in that weir and
in later ones of the same ABI major version. To move to a newer weir's SDK, run `weir plugin new`
with it elsewhere and copy its `weir-sdk/` here.
";

fn abi_manifest() -> String {
    format!(
        "[package]
name = \"weir-plugin-abi\"
description = \"The C ABI between weir and its stage plugins (written by `weir plugin new`)\"
version = \"{}\"
edition = \"2024\"
publish = false

[dependencies]
",
        env!("CARGO_PKG_VERSION")
    )
}

fn sdk_manifest() -> String {
    format!(
        "[package]
name = \"weir-plugin\"
description = \"Write weir stage plugins in safe Rust (written by `weir plugin new`)\"
version = \"{}\"
edition = \"2024\"
publish = false

[dependencies]
serde = {{ version = \"1\", features = [\"derive\"] }}
toml = \"1\"
weir-plugin-abi = {{ path = \"../abi\" }}
",
        env!("CARGO_PKG_VERSION")
    )
}

fn crate_manifest(name: &str) -> String {
    format!(
        "[package]
name = \"{name}\"
description = \"A weir stage plugin\"
version = \"0.1.0\"
edition = \"2024\"
publish = false

[lib]
crate-type = [\"cdylib\"] # a shared library weir loads at run time

[dependencies]
serde = {{ version = \"1\", features = [\"derive\"] }}
weir-plugin = {{ path = \"weir-sdk/sdk\" }}

# A workspace of its own: the crate builds the same wherever it is put.
[workspace]
members = [\".\", \"weir-sdk/sdk\", \"weir-sdk/abi\"]
"
    )
}

/// `src/lib.rs` of a new plugin of `kind`.
fn source(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Transform => TRANSFORM,
        PluginKind::Sink => SINK,
        PluginKind::Source => SOURCE,
    }
}

/// The transform kind starts from the template crate (plugins/template), renamed.
const TRANSFORM: &str = include_str!("../../plugins/template/src/lib.rs");

const SINK: &str = r#"//! Plugin `__NAME__` with one sink, `__NAME__.lines`: appends each record to a file as one line
//! of `field=value` pairs. Change the component, keep the shape; plugins/README.md in weir's
//! repository explains it all.

use serde::Deserialize;
use std::io::Write;
use weir_plugin::{Batch, Component, Field, Host, Sink, option};

/// The component's options, read from its table in the pipeline file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file to append to.
    path: String,
}

/// The running sink: the open file.
pub struct Lines {
    file: std::io::BufWriter<std::fs::File>,
}

/// One record as a line.
fn line(names: &[&str], values: &[Field<'_>]) -> String {
    let pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(name, value)| match value {
            Field::Null => format!("{name}="),
            Field::Bool(b) => format!("{name}={b}"),
            Field::Int(i) => format!("{name}={i}"),
            Field::Float(f) => format!("{name}={f}"),
            Field::Str(s) => format!("{name}={s}"),
        })
        .collect();
    pairs.join(" ")
}

impl Component for Lines {
    const NAME: &'static str = "lines";
    const DESCRIPTION: &'static str = "Appends each record to a file as a line of field=value pairs";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] =
        &[option("path", "string", "required", "the file to append to")];
    type Config = Config;

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.path)
            .map_err(|e| format!("cannot open {}: {e}", config.path))?;
        Ok(Lines {
            file: std::io::BufWriter::new(file),
        })
    }
}

impl Sink for Lines {
    fn write(&mut self, batch: &Batch<'_>, _host: &mut Host) -> Result<(), String> {
        for row in 0..batch.len() {
            let values: Vec<Field<'_>> = (0..batch.columns()).map(|c| batch.get(row, c)).collect();
            writeln!(self.file, "{}", line(batch.names(), &values)).map_err(|e| e.to_string())?;
        }
        // Returning means delivered: the batch is on disk (as far as the OS goes) first.
        self.file.flush().map_err(|e| e.to_string())
    }
}

weir_plugin::export_plugin!(
    name: "__NAME__",
    version: env!("CARGO_PKG_VERSION"),
    components: [sink(Lines)],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_a_line_of_pairs() {
        let values = [Field::Str("a b"), Field::Int(3), Field::Null];
        assert_eq!(line(&["name", "n", "none"], &values), "name=a b n=3 none=");
    }
}
"#;

const SOURCE: &str = r#"//! Plugin `__NAME__` with one source, `__NAME__.numbers`: the numbers 0 to `count - 1` with
//! their squares, one per event millisecond. Change the component, keep the shape;
//! plugins/README.md in weir's repository explains it all.

use serde::Deserialize;
use weir_plugin::{BatchBuilder, Component, Field, Host, Poll, Source, option};

/// The component's options, read from its table in the pipeline file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How many numbers.
    count: u64,
}

/// The running source: where it is.
pub struct Numbers {
    next: u64,
    count: u64,
    out: BatchBuilder,
}

/// The record for number `n`: (n, n squared).
fn record(n: u64) -> (i64, i64) {
    let n = n as i64;
    (n, n.saturating_mul(n))
}

impl Component for Numbers {
    const NAME: &'static str = "numbers";
    const DESCRIPTION: &'static str = "The numbers 0..count with their squares";
    const OPTIONS: &'static [weir_plugin::abi::OptionDesc] =
        &[option("count", "integer", "required", "how many numbers")];
    type Config = Config;

    fn new(config: Config, _host: &mut Host) -> Result<Self, String> {
        Ok(Numbers {
            next: 0,
            count: config.count,
            out: BatchBuilder::new(["n", "square"]),
        })
    }
}

impl Source for Numbers {
    fn poll(&mut self, max_rows: usize, host: &mut Host) -> Result<Poll, String> {
        let end = self.count.min(self.next + max_rows as u64);
        for n in self.next..end {
            let (value, square) = record(n);
            self.out.push(Field::Int(value));
            self.out.push(Field::Int(square));
            self.out.end_row(value);
        }
        self.next = end;
        host.emit(&mut self.out)?;
        Ok(if self.next >= self.count { Poll::Finished } else { Poll::More })
    }
}

weir_plugin::export_plugin!(
    name: "__NAME__",
    version: env!("CARGO_PKG_VERSION"),
    components: [source(Numbers)],
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_comes_with_its_square() {
        assert_eq!(record(0), (0, 0));
        assert_eq!(record(12), (12, 144));
    }
}
"#;

/// The pipeline using the component, and its tests (`weir test`).
fn pipeline(kind: PluginKind) -> (&'static str, &'static str) {
    match kind {
        PluginKind::Transform => (
            r#"# Uses the plugin: names.csv -> __NAME__.upper -> the terminal.
#   cargo build --release && weir run pipeline.toml      (or: weir plugin test .)

[plugins]
paths = ["${WEIR_PLUGIN_DIR:-target/release}/lib__NAME__.so"]

[sources.names]
type = "csv"
path = "names.csv"

[transforms.loud]
type = "__NAME__.upper"
inputs = ["names"]
field = "name"

[sinks.out]
type = "console"
inputs = ["loud"]
"#,
            r#"# Tests of pipeline.toml (weir test pipeline.toml, or weir plugin test .).

[[tests]]
name = "names come out upper-cased, the other fields as they were"

[[tests.steps]]
inject = "names"
records = [{ name = "ada", city = "london" }, { name = "grace", city = "arlington" }]

[[tests.steps]]
expect = "loud"
records = [{ name = "ADA", city = "london" }, { name = "GRACE", city = "arlington" }]
"#,
        ),
        PluginKind::Sink => (
            r#"# Uses the plugin: names.csv -> only some fields -> __NAME__.lines (names.txt).
#   cargo build --release && weir run pipeline.toml      (or: weir plugin test .)

[plugins]
paths = ["${WEIR_PLUGIN_DIR:-target/release}/lib__NAME__.so"]

[sources.names]
type = "csv"
path = "names.csv"

[transforms.some]
type = "select"
inputs = ["names"]
keep = ["name"]

[sinks.lines]
type = "__NAME__.lines"
inputs = ["some"]
path = "names.txt"
"#,
            r#"# Tests of pipeline.toml (weir test pipeline.toml, or weir plugin test .). `weir test`
# runs the transforms; the sink's own behaviour is in the crate's unit test.

[[tests]]
name = "the sink gets the name of each record"

[[tests.steps]]
inject = "names"
records = [{ name = "ada", city = "london" }]

[[tests.steps]]
expect = "some"
records = [{ name = "ada" }]
"#,
        ),
        PluginKind::Source => (
            r#"# Uses the plugin: __NAME__.numbers -> only the even ones -> the terminal.
#   cargo build --release && weir run pipeline.toml      (or: weir plugin test .)

[plugins]
paths = ["${WEIR_PLUGIN_DIR:-target/release}/lib__NAME__.so"]

[sources.numbers]
type = "__NAME__.numbers"
count = 10

[transforms.even]
type = "filter"
inputs = ["numbers"]
where = "n % 2 == 0"

[sinks.out]
type = "console"
inputs = ["even"]
"#,
            r#"# Tests of pipeline.toml (weir test pipeline.toml, or weir plugin test .). `weir test`
# injects the source's records; the source's own behaviour is in the crate's unit test.

[[tests]]
name = "only even numbers pass"

[[tests.steps]]
inject = "numbers"
records = [{ n = 1, square = 1 }, { n = 2, square = 4 }]

[[tests.steps]]
expect = "even"
records = [{ n = 2, square = 4 }]
"#,
        ),
    }
}

const NAMES_CSV: &str = "name,city\nada,london\ngrace,arlington\n";

fn readme(name: &str) -> String {
    format!(
        "# {name}

A weir stage plugin, started with `weir plugin new`.

    weir plugin test .          # unit tests, a release build, then the pipeline's tests
    weir run pipeline.toml      # the pipeline, with the library from target/release

`src/lib.rs` is the component; `pipeline.toml` uses it and `pipeline.test.toml` tests that
pipeline. The SDK is in `weir-sdk/` (see its README). Writing components, the options, errors,
stateful transforms and the ABI rules: plugins/README.md in weir's repository.
"
    )
}

/// `weir plugin new`.
pub fn new_plugin(name: &str, kind: PluginKind, dir: Option<PathBuf>) -> ExitCode {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        eprintln!(
            "error: `{name}` cannot name a plugin: use lower-case letters, digits and `_`, \
             starting with a letter (e.g. `my_stage`)"
        );
        return ExitCode::FAILURE;
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        eprintln!(
            "error: {} exists already; name a new directory with --dir",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let (pipeline, tests) = pipeline(kind);
    let fill = |text: &str| {
        text.replace("__NAME__", name)
            .replace("plugin `template`", &format!("plugin `{name}`"))
            .replace("`template.upper`", &format!("`{name}.upper`"))
            .replace("name: \"template\"", &format!("name: \"{name}\""))
    };
    let mut files: Vec<(String, String)> = vec![
        ("Cargo.toml".into(), crate_manifest(name)),
        ("src/lib.rs".into(), fill(source(kind))),
        ("pipeline.toml".into(), fill(pipeline)),
        ("pipeline.test.toml".into(), fill(tests)),
        ("names.csv".into(), NAMES_CSV.into()),
        ("README.md".into(), readme(name)),
        (".gitignore".into(), "/target\n/names.txt\n".into()),
        ("weir-sdk/abi/Cargo.toml".into(), abi_manifest()),
        ("weir-sdk/sdk/Cargo.toml".into(), sdk_manifest()),
    ];
    files.extend(
        SDK_FILES
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string())),
    );
    for (path, text) in &files {
        let path = dir.join(path);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    println!(
        "wrote plugin `{name}` ({kind:?}) in {}: src/lib.rs, pipeline.toml with its tests, and \
         the SDK in weir-sdk/\nnext: weir plugin test {}",
        dir.display(),
        dir.display()
    );
    ExitCode::SUCCESS
}

/// `weir plugin test`: unit tests, a release build, then `run_tests` on the crate's pipelines
/// from its directory.
pub fn test_plugin(dir: &Path, run_tests: impl FnOnce(&[PathBuf]) -> ExitCode) -> ExitCode {
    if !dir.join("Cargo.toml").is_file() {
        eprintln!(
            "error: {} has no Cargo.toml: name a plugin crate's directory",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        std::env::current_dir().unwrap_or_default().join(target)
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for (what, args) in [
        ("unit tests", vec!["test", "--quiet"]),
        ("release build", vec!["build", "--release", "--quiet"]),
    ] {
        println!("weir plugin test: {what} (cargo {})", args.join(" "));
        let status = Command::new(&cargo)
            .args(&args)
            .arg("--target-dir")
            .arg(&target)
            .current_dir(dir)
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => {
                eprintln!("error: the {what} failed ({status})");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: cannot run cargo: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut pipelines: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "toml")
                    && p.file_name().is_some_and(|n| {
                        let n = n.to_string_lossy();
                        n != "Cargo.toml" && !n.ends_with(".test.toml")
                    })
            })
            .filter_map(|p| p.file_name().map(PathBuf::from))
            .collect(),
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    pipelines.sort();
    println!("weir plugin test: pipeline tests (weir test)");
    // The pipelines name the library relative to the crate, or through WEIR_PLUGIN_DIR.
    if let Err(e) = std::env::set_current_dir(dir) {
        eprintln!("error: cannot enter {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    // SAFETY: set before any thread of this process reads the environment (the command runs no
    // other thread yet).
    unsafe { std::env::set_var("WEIR_PLUGIN_DIR", target.join("release")) };
    run_tests(&pipelines)
}
