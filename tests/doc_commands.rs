//! The commands the documentation shows work: every command in a shell block (```sh) of
//! README.md and docs/*.md is read here. `weir …` and `cargo run --release -- …` commands run
//! the real binary from the repository root — a `run` is replaced by `validate` with the same
//! arguments but `--watch` and `--api` (a run would go on for a long time or need a network;
//! the binary's `cli::tests` parse each documented run command as written);
//! `top` and `tap`, which need a running pipeline, are run by tests/observe.rs, `consume` and
//! `produce`, which need a broker, by tests/topic_io.rs; every other
//! subcommand runs as written — and must exit 0. Other commands (set-up, tests, installs) must be on a short
//! list of known ones, so a new kind of command gets a decision instead of being skipped
//! silently. Also: the README's pipeline tour is the shipped pipeline file, byte for byte.

mod common;

use common::{repo, weir};

/// Commands the docs show that this test does not run, by their first words.
const NOT_RUN_HERE: &[&str] = &[
    "bash tests/setup.sh",   // installs system packages
    "cargo test",            // the suite itself
    "cargo install --path",  // a second release build
    "cargo build --release", // the build the suite already did
    "printf ",               // lines piped into `weir produce`: tests/topic_io.rs runs them
];

/// Every command in the ```sh blocks of `text`: continuation lines joined, comments dropped.
fn shell_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = line.trim() == "```sh" || line.trim() == "```bash";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(line);
                for part in pending.split("&&") {
                    commands.push(part.trim().to_string());
                }
                pending.clear();
            }
        }
    }
    commands
}

/// The arguments of a `weir` command (`weir ARGS` or `cargo run --release -- ARGS`), without
/// the trailing comment.
fn weir_arguments(command: &str) -> Option<Vec<String>> {
    let words = shlex::split(command).unwrap_or_else(|| panic!("cannot split `{command}`"));
    let words: Vec<String> = words
        .into_iter()
        .take_while(|w| !w.starts_with('#'))
        .collect();
    let start = if words.first().map(String::as_str) == Some("weir") {
        1
    } else if words.starts_with(&["cargo".into(), "run".into()]) {
        words.iter().position(|w| w == "--")? + 1
    } else {
        return None;
    };
    Some(words[start..].to_vec())
}

fn documents() -> Vec<std::path::PathBuf> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_documented_command_works() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for command in shell_commands(&text) {
            let Some(mut args) = weir_arguments(&command) else {
                assert!(
                    NOT_RUN_HERE.iter().any(|known| command.starts_with(known)),
                    "{}: `{command}` is neither a weir command nor a known one; run it here \
                     or add it to NOT_RUN_HERE",
                    file.display()
                );
                continue;
            };
            // `weir top` and `weir tap` need a running pipeline: tests/observe.rs runs both
            // against one. `weir consume` and `weir produce` need a broker: tests/topic_io.rs
            // runs the documented ones against one.
            if matches!(
                args.first().map(String::as_str),
                Some("top" | "tap" | "consume" | "produce")
            ) {
                continue;
            }
            if args.first().map(String::as_str) == Some("run") {
                args[0] = "validate".into();
                args.retain(|a| a != "--watch");
                // `--api[=ADDR]` serves the control API; validate has no such option. (How
                // the run command line parses, `--api` included, is checked against weir's own
                // CLI by cli::tests in the binary.)
                args.retain(|a| a != "--api" && !a.starts_with("--api="));
            }
            let out = weir().args(&args).current_dir(repo()).output().unwrap();
            checked += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{}: `{command}`:\n{}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 10,
        "only {checked} commands found: is the parsing right?"
    );
}

#[test]
fn the_readme_tour_is_the_shipped_pipeline() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let tour = readme
        .split("## A tour of the pipeline file")
        .nth(1)
        .and_then(|rest| rest.split("```toml\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("README.md has a tour with a toml block");
    let shipped = std::fs::read_to_string(repo().join("pipelines/shopping_gender.toml")).unwrap();
    assert_eq!(
        tour, shipped,
        "README.md's tour must be pipelines/shopping_gender.toml as shipped"
    );
}

#[test]
fn the_command_splitter_reads_blocks_as_a_shell_would() {
    let text = "x\n```sh\n# c\nweir run a.toml --set 'k={ a = 1 }' \\\n    --unset b  # note\n\
                bash tests/setup.sh && cargo test --workspace\n```\n```toml\nweir = 1\n```\n";
    let commands = shell_commands(text);
    assert_eq!(
        commands,
        [
            "weir run a.toml --set 'k={ a = 1 }' --unset b  # note",
            "bash tests/setup.sh",
            "cargo test --workspace",
        ]
    );
    assert_eq!(
        weir_arguments(&commands[0]).unwrap(),
        ["run", "a.toml", "--set", "k={ a = 1 }", "--unset", "b"]
    );
    assert_eq!(
        weir_arguments("cargo run --release -- graph p.toml").unwrap(),
        ["graph", "p.toml"]
    );
}

/// docs/stages.md (and docs/kafka.md for the Kafka stages) documents every option `weir list`
/// shows for every built-in stage: `weir list` comes from the same declaration the config
/// types are checked against (`builtins::tests`), so the reference cannot fall behind the code.
#[test]
fn the_stage_reference_names_every_option_weir_list_shows() {
    let stages = std::fs::read_to_string(repo().join("docs/stages.md")).unwrap();
    let kafka = std::fs::read_to_string(repo().join("docs/kafka.md")).unwrap();
    let out = weir().arg("list").output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut missing = Vec::new();
    let mut stage = String::new();
    for line in list.lines() {
        let indent = line.len() - line.trim_start().len();
        let first = line.split_whitespace().next().unwrap_or_default();
        match indent {
            2 => stage = first.to_string(),
            6 => {
                let section = if stage == "kafka" {
                    kafka
                        .split("## Options")
                        .nth(1)
                        .unwrap_or_default()
                        .to_string()
                } else {
                    stages
                        .split(&format!("\n## {stage}\n"))
                        .nth(1)
                        .and_then(|rest| rest.split("\n## ").next())
                        .unwrap_or_default()
                        .to_string()
                };
                let named = [format!("`{first}`"), format!("`{first} =")];
                if !named.iter().any(|n| section.contains(n.as_str())) {
                    missing.push(format!("{stage}.{first}"));
                }
            }
            _ => {}
        }
    }
    assert!(
        list.lines().filter(|l| l.starts_with("      ")).count() > 50,
        "weir list's layout changed: {list}"
    );
    assert!(
        missing.is_empty(),
        "options weir list shows that the reference does not mention: {missing:?}"
    );
}

/// Every `WEIR_…` environment variable the code, the shipped pipelines, the tests, the benches
/// and CI read is in README.md's table of environment variables.
#[test]
fn every_weir_environment_variable_is_in_the_readme_table() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table = readme
        .split("### Environment variables")
        .nth(1)
        .expect("README.md has the table")
        .split("\n## ")
        .next()
        .unwrap();
    let mut files = Vec::new();
    for dir in [
        "runner/src",
        "tests",
        "tests/common",
        "pipelines",
        "bench",
        ".ci",
    ] {
        let mut stack = vec![repo().join(dir)];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    let entry = entry.unwrap().path();
                    // Only this directory's own files for tests/, whose subfolders hold data.
                    if entry.is_file() || dir == "runner/src" {
                        stack.push(entry);
                    }
                }
            } else if path
                .extension()
                .is_some_and(|e| ["rs", "toml", "py", "sh"].iter().any(|x| e == *x))
                || path.file_name().is_some_and(|n| n == "run")
            {
                files.push(path);
            }
        }
    }
    let mut missing = std::collections::BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("WEIR_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            rest = &rest[at + name.len().max(5)..];
            let name = name.trim_end_matches('_').to_string();
            // A name made up to be unset, in tests/config_errors.rs.
            if name.len() > "WEIR_".len()
                && name != "WEIR_TEST_SURELY_UNSET"
                && !table.contains(&format!("`{name}`"))
            {
                missing.insert(format!("{name} ({})", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in README.md's environment variables: {missing:?}"
    );
}

/// The README states speed and memory only in its generated block (bench/tables.py writes it
/// from the last benchmark run), never typed into the prose, where it goes stale: no rate of a
/// thousand rows, events or messages a second or more, and no size in MB, outside it. (Rates
/// below a thousand a second are settings, like the tutorial's 10 rows/s.)
#[test]
fn the_readmes_speed_and_memory_figures_all_come_from_the_benchmark_run() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut prose = String::new();
    let mut generated = false;
    for line in readme.lines() {
        if line.starts_with("<!-- generated") {
            generated = true;
        } else if line.starts_with("<!-- /generated") {
            generated = false;
        } else if !generated {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    let figure = regex::Regex::new(
        r"(?i)\b(\d[\d,.]*)\s*(million|M)?\s*(rows|events|records|messages|msgs)\s*(/s|a second|per second)|\b\d[\d,.]*\s*(MB|MiB|GB|GiB)\b",
    )
    .unwrap();
    let typed: Vec<&str> = figure
        .captures_iter(&prose)
        .filter(|c| {
            let is_rate = c.get(3).is_some();
            let number: f64 = c
                .get(1)
                .map_or("0", |m| m.as_str())
                .replace(',', "")
                .parse()
                .unwrap_or(0.0);
            !is_rate || c.get(2).is_some() || number >= 1000.0
        })
        .map(|c| c.get(0).unwrap().as_str())
        .collect();
    assert!(
        typed.is_empty(),
        "README.md states these figures outside its generated block: {typed:?}"
    );
}
