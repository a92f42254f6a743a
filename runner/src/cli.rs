//! Command-line interface of the `weir` binary.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// `weir --version`: the release and the plugin ABI it loads (plugins built against another
/// major ABI, or a newer minor one, are refused).
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (plugin ABI {}.{})",
            env!("CARGO_PKG_VERSION"),
            weir_plugin_abi::ABI_MAJOR,
            weir_plugin_abi::ABI_MINOR
        )
    })
}

/// Examples under `weir --help` (each parses as a command line: `cli::tests`).
const EXAMPLES: &str = "\
Examples:
  weir run pipelines/shopping_gender.toml          the tutorial's stack: replay, Kafka, count, chart
  weir run pipelines/shopping_gender_local.toml --set sources.user_log.rate='\"max\"'
  weir validate my.toml                            every mistake at once, with file:line
  weir test pipelines/                             run the pipelines' [[tests]]
  weir run my.toml --api   then   weir top         watch a running pipeline
  weir consume result --from-beginning --to-end    print a topic's records
  weir gen user-log --rows 1000000 --out log.csv   a synthetic input";

/// Examples under each subcommand's help (`weir run --help`), checked to parse like
/// [`EXAMPLES`].
const RUN_EXAMPLES: &str = "\
Examples:
  weir run pipelines/shopping_gender.toml          the tutorial's job, until Ctrl-C
  weir run my.toml --watch                         apply edits of the file while it runs
  weir run my.toml --api                           serve /metrics, /graph and taps on 127.0.0.1:8686
  weir run my.toml --set sources.log.rate='\"max\"'  override one option (a TOML value)
  weir run my.toml --unset sinks.dashboard         run without one component";
const TOP_EXAMPLES: &str = "\
Examples:
  weir top                                         the pipeline started with `weir run FILE --api`
  weir top --api 127.0.0.1:9000 --count 1          another address; print once";
const TAP_EXAMPLES: &str = "\
Examples:
  weir tap per_second                              what leaves the window, as JSON lines
  weir tap user_log --sample 100 --limit 20        one row in 100, stop after 20
  weir tap per_second --format table               aligned columns";
const VALIDATE_EXAMPLES: &str = "\
Examples:
  weir validate my.toml                            every mistake at once, with file:line
  weir validate my.toml --set kafka.brokers=host:9092";
const TEST_EXAMPLES: &str = "\
Examples:
  weir test pipelines/                             every pipeline's [[tests]] in a directory
  weir test my.toml                                one file (and my.test.toml beside it)";
const GRAPH_EXAMPLES: &str = "\
Examples:
  weir graph my.toml | dot -Tsvg > graph.svg       draw it with Graphviz
  weir graph my.toml --format text                 the stages and their inputs as text";
const PLUGINS_EXAMPLES: &str = "\
Examples:
  weir plugins target/release/libweir_shop.so      what one library offers
  weir plugins ~/.local/lib/weir                   every library in a directory";
const BROKER_EXAMPLES: &str = "\
Examples:
  weir broker                                      in memory on 127.0.0.1:9092
  weir broker --storage sqlite://weir-broker.db    durable
  weir broker --listen 0.0.0.0:9092 --user app:app.password --tls-cert c.pem --tls-key k.pem";
const CONSUME_EXAMPLES: &str = "\
Examples:
  weir consume result                              new records, until Ctrl-C
  weir consume result --from-beginning --to-end    everything there is, then exit
  weir consume sex --count 10 --format table       ten records, in columns";
const PRODUCE_EXAMPLES: &str = "\
Examples:
  weir produce sex --create                        each line typed becomes a record
  weir produce sex --key-separator :               key:value lines";
const GEN_EXAMPLES: &str = "\
Examples:
  weir gen user-log --rows 1000000 --out log.csv   a synthetic Double-11 log
  weir gen user-log --rows 10 --seed 7             ten rows on standard output";

/// Every subcommand's examples, for the test that parses them.
#[cfg(test)]
const SUBCOMMAND_EXAMPLES: &[&str] = &[
    RUN_EXAMPLES,
    TOP_EXAMPLES,
    TAP_EXAMPLES,
    VALIDATE_EXAMPLES,
    TEST_EXAMPLES,
    GRAPH_EXAMPLES,
    PLUGINS_EXAMPLES,
    BROKER_EXAMPLES,
    CONSUME_EXAMPLES,
    PRODUCE_EXAMPLES,
    GEN_EXAMPLES,
];

/// weir runs streaming pipelines described in TOML files.
#[derive(Debug, Parser)]
#[command(name = "weir", version = version(), about, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    /// More log output (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only warnings and errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// The log's form on stderr: lines for people, or one JSON object per line for a log
    /// collector ({"timestamp","level","fields":{"message",...}}).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A pipeline file plus `--unset` / `--set` edits.
#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// The pipeline file.
    pub file: PathBuf,

    /// Override or add a key, e.g. --set sources.user_log.rate='"max"' (value parsed as TOML,
    /// else taken as a string). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Remove a key or a whole table, e.g. --unset sinks.dashboard (applied before every
    /// --set). Repeatable.
    #[arg(long = "unset", value_name = "KEY")]
    pub unset: Vec<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline until its input ends or Ctrl-C / SIGTERM.
    #[command(after_help = RUN_EXAMPLES)]
    Run {
        /// The pipeline.
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Apply edits of the file while it runs (SIGHUP does the same without --watch): a bad
        /// edit is reported and the pipeline keeps running; see docs/reload.md.
        #[arg(long)]
        watch: bool,
        /// Start over: ignore the progress earlier runs committed (exactly once), read every
        /// source from its beginning (a Kafka source's committed offsets move back there with the
        /// first commit), and replace the stored progress; needed after editing an option the
        /// stored progress depends on (a window's size). Output already written stays.
        #[arg(long)]
        reset: bool,
        /// Serve the control API (/health, /metrics, /graph, /tap/STAGE) for `weir top` and
        /// `weir tap`: `--api` on 127.0.0.1:8686, `--api=ADDR` elsewhere. A token, if
        /// $WEIR_API_TOKEN is set, is required as `Authorization: Bearer`.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, require_equals = true, default_missing_value = weir::api::DEFAULT_LISTEN)]
        api: Option<String>,
        /// Serve the control API over HTTPS with this certificate chain (PEM; with
        /// --api-tls-key).
        #[arg(long, value_name = "FILE", requires_all = ["api", "api_tls_key"])]
        api_tls_cert: Option<String>,
        /// The private key for --api-tls-cert (PEM).
        #[arg(long, value_name = "FILE", requires_all = ["api", "api_tls_cert"])]
        api_tls_key: Option<String>,
    },
    /// Watch a running pipeline (started with --api): per stage rate, totals, drops, input
    /// queue fill with the bottleneck marked, and watermark lag; refreshed every second.
    #[command(after_help = TOP_EXAMPLES)]
    Top {
        /// The pipeline's control API.
        #[arg(long, value_name = "ADDR", default_value = weir::api::DEFAULT_LISTEN)]
        api: String,
        /// Print this many refreshes, then exit (default: until Ctrl-C).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print the records leaving stages of a running pipeline (started with --api), as JSON
    /// lines; a tap that cannot keep up misses records, the pipeline never waits for it.
    #[command(after_help = TAP_EXAMPLES)]
    Tap {
        /// Stage ids (or key paths) whose output to print.
        #[arg(required = true)]
        stages: Vec<String>,
        /// The pipeline's control API.
        #[arg(long, value_name = "ADDR", default_value = weir::api::DEFAULT_LISTEN)]
        api: String,
        /// Stop after this many records per stage.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Print one record in N.
        #[arg(long, value_name = "N")]
        sample: Option<u64>,
        /// JSON lines, or aligned columns for a terminal.
        #[arg(long, value_enum, default_value_t = TapFormat::Json)]
        format: TapFormat,
    },
    /// Check a pipeline file and report every problem (opens nothing but the file and the plugin
    /// libraries it names, whose descriptors are read).
    #[command(after_help = VALIDATE_EXAMPLES)]
    Validate(PipelineArgs),
    /// Run the tests of pipelines ([[tests]] in the file or in NAME.test.toml beside it) without
    /// opening their sources and sinks; exit 1 when one fails.
    #[command(after_help = TEST_EXAMPLES)]
    Test {
        /// Pipeline files, or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a JSON Schema of pipeline files, for editors (docs/editor.md); given a pipeline,
    /// the plugins it loads (`[plugins]`) are in it too, with their options.
    Schema {
        /// A pipeline whose plugins to describe as well.
        pipeline: Option<PathBuf>,
    },
    /// Print the pipeline's graph.
    #[command(after_help = GRAPH_EXAMPLES)]
    Graph {
        /// The pipeline.
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// List every stage type with its options.
    List,
    /// Show what plugin libraries offer (files, or directories of shared libraries).
    #[command(after_help = PLUGINS_EXAMPLES)]
    Plugins {
        /// Plugin files or directories; default: $WEIR_PLUGIN_PATH (colon-separated).
        paths: Vec<PathBuf>,
    },
    /// Run only the embedded Kafka-compatible broker, until Ctrl-C / SIGTERM.
    #[command(after_help = BROKER_EXAMPLES)]
    Broker {
        /// Listen address (clients are told to connect to it).
        #[arg(long, default_value = weir::kafka::embedded::DEFAULT_LISTEN)]
        listen: String,
        /// Storage: memory:// (gone on exit) or sqlite://FILE (durable; relative to the working
        /// directory, sqlite:///abs/path for an absolute one).
        #[arg(long, default_value = "memory://")]
        storage: String,
        /// The address clients are told to connect to, if not --listen (e.g. a TLS terminator's).
        #[arg(long)]
        advertise: Option<String>,
        /// Require SASL SCRAM: accept user NAME whose password is the first line of FILE
        /// (repeat for more users). Passwords never go on the command line.
        #[arg(long = "user", value_name = "NAME:FILE")]
        users: Vec<String>,
        /// Serve TLS only, with this certificate chain (PEM); needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<String>,
        /// The private key for --tls-cert (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<String>,
        /// Require client certificates signed by this CA (PEM): mutual TLS.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_ca: Option<String>,
    },
    /// Print a topic's records, one per line (as kcat -C does): from the end (new records) or
    /// the beginning, until Ctrl-C, --count records or the end (--to-end).
    #[command(after_help = CONSUME_EXAMPLES)]
    Consume {
        /// The topic.
        topic: String,
        /// The cluster (default: $WEIR_KAFKA_BROKERS, else 127.0.0.1:9092).
        #[arg(long, value_name = "ADDR")]
        brokers: Option<String>,
        /// Start at the first record instead of the end.
        #[arg(long)]
        from_beginning: bool,
        /// Which records: only those of committed transactions (and non-transactional ones), or
        /// also those of open and aborted transactions.
        #[arg(long, value_enum, default_value_t = Isolation::Committed)]
        isolation: Isolation,
        /// JSON lines ({"partition","offset","timestamp","key","value"}), or aligned columns.
        #[arg(long, value_enum, default_value_t = TapFormat::Json)]
        format: TapFormat,
        /// Stop after this many records.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop at the end of every partition.
        #[arg(long)]
        to_end: bool,
    },
    /// Write each line of standard input to a topic as one record (as kcat -P does).
    #[command(after_help = PRODUCE_EXAMPLES)]
    Produce {
        /// The topic.
        topic: String,
        /// The cluster (default: $WEIR_KAFKA_BROKERS, else 127.0.0.1:9092).
        #[arg(long, value_name = "ADDR")]
        brokers: Option<String>,
        /// Split each line at the first SEP: the key before it, the value after.
        #[arg(long, value_name = "SEP")]
        key_separator: Option<String>,
        /// Create the topic (one partition) if it does not exist.
        #[arg(long)]
        create: bool,
    },
    /// Generate synthetic input data.
    #[command(subcommand, after_help = GEN_EXAMPLES)]
    Gen(GenCommand),
    /// Start a stage plugin of your own, and test it (plugins/README.md).
    #[command(subcommand, after_help = PLUGIN_EXAMPLES)]
    Plugin(PluginCommand),
}

const PLUGIN_EXAMPLES: &str = "Examples:
  weir plugin new my_stage --kind transform      # a crate in ./my_stage, ready to build
  weir plugin test my_stage                      # its unit tests, a release build, its pipeline tests";

/// `weir plugin` commands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Write a ready plugin crate (Rust): one component of `kind`, a unit test, a pipeline that
    /// uses it and the pipeline's tests; the SDK comes with it, so it builds anywhere.
    New {
        /// The plugin's name (lower case, digits and `_`): the crate, the library and the
        /// `<name>.` prefix of its stage types.
        name: String,
        /// The kind of component to start from.
        #[arg(long, value_enum, default_value_t = PluginKind::Transform)]
        kind: PluginKind,
        /// Where to write it (default: ./NAME); must not exist yet.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Test a plugin crate: `cargo test`, `cargo build --release`, then `weir test` on its
    /// pipelines (run from its directory, with the library just built).
    Test {
        /// The crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// The kind of component `weir plugin new` starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PluginKind {
    /// Turns batches into batches.
    Transform,
    /// Delivers records out of the pipeline.
    Sink,
    /// Produces records.
    Source,
}

/// `weir consume --isolation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// read_committed.
    Committed,
    /// read_uncommitted.
    Uncommitted,
}

/// `weir gen` data sets.
#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// A Taobao Double-11 user log with the real columns and distributions.
    UserLog {
        /// Number of rows.
        #[arg(long)]
        rows: u64,
        /// Random seed; the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave out the header line.
        #[arg(long)]
        no_header: bool,
    },
    /// The events of the Nexmark benchmark (persons, auctions, bids 1:3:46) as CSV.
    Nexmark {
        /// Number of events.
        #[arg(long)]
        events: u64,
        /// Random seed; the same seed gives the same bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Event time of the first event, epoch milliseconds.
        #[arg(long, default_value_t = 1_700_000_000_000)]
        start: i64,
        /// Events per second of event time.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Leave out the header line.
        #[arg(long)]
        no_header: bool,
    },
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for a terminal or a file.
    Text,
    /// One JSON object per line.
    Json,
}

/// `weir tap` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TapFormat {
    /// One JSON object per record (with several stages: `{"stage":ID,"record":{...}}`).
    Json,
    /// Aligned columns under a header of field names.
    Table,
}

/// `weir graph` output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT (pipe into `dot -Tsvg`).
    Dot,
    /// A table for the terminal.
    Text,
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command};
    use clap::Parser;
    use std::path::Path;

    /// Every `weir run` command in a shell block of the README and docs/ (`cargo run --release
    /// --` ones too), as the shell would split it.
    fn documented_runs() -> Vec<(String, Vec<String>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = vec![root.join("README.md")];
        for entry in std::fs::read_dir(root.join("docs")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
        let mut runs = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut in_block = false;
            let mut pending = String::new();
            for line in text.lines() {
                if line.trim_start().starts_with("```") {
                    in_block = matches!(line.trim(), "```sh" | "```bash");
                    continue;
                }
                let line = line.trim();
                if !in_block || line.starts_with('#') {
                    continue;
                }
                if let Some(start) = line.strip_suffix('\\') {
                    pending.push_str(start);
                    continue;
                }
                let command = std::mem::take(&mut pending) + line;
                let Some(words) = shlex::split(&command) else {
                    continue;
                };
                let args = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    ["weir", "run", ..] => words[1..].to_vec(),
                    ["cargo", "run", "--release", "--", "run", ..] => words[4..].to_vec(),
                    _ => continue,
                };
                runs.push((format!("{}: {command}", file.display()), args));
            }
        }
        runs
    }

    /// The doc-command test runs `weir validate` for each `weir run` it finds (a run would go on
    /// for long), without the run's own flags; here each documented run command is parsed as
    /// written, so a flag that swallows the pipeline file (`--api FILE`) cannot hide.
    #[test]
    fn every_documented_run_command_parses_with_its_pipeline_file() {
        let runs = documented_runs();
        assert!(runs.len() > 5, "found only {runs:?}");
        for (place, args) in runs {
            let cli = Cli::try_parse_from(std::iter::once("weir".to_string()).chain(args))
                .unwrap_or_else(|e| panic!("{place}: {e}"));
            let Command::Run { pipeline, .. } = cli.command else {
                panic!("{place}: not a run");
            };
            assert!(
                pipeline.file.extension().is_some_and(|e| e == "toml"),
                "{place}: the pipeline file is {:?}",
                pipeline.file
            );
        }
    }

    #[test]
    fn api_alone_takes_the_default_address_and_leaves_the_file_alone() {
        let cli = Cli::try_parse_from(["weir", "run", "--api", "p.toml"]).unwrap();
        let Command::Run { pipeline, api, .. } = cli.command else {
            panic!("not a run");
        };
        assert_eq!(pipeline.file, Path::new("p.toml"));
        assert_eq!(api.as_deref(), Some(weir::api::DEFAULT_LISTEN));
        let cli = Cli::try_parse_from(["weir", "run", "p.toml", "--api=0.0.0.0:9000"]).unwrap();
        let Command::Run { api, .. } = cli.command else {
            panic!("not a run");
        };
        assert_eq!(api.as_deref(), Some("0.0.0.0:9000"));
    }

    #[test]
    fn the_examples_in_help_are_command_lines_weir_takes() {
        let mut checked = 0;
        let every =
            std::iter::once(super::EXAMPLES).chain(super::SUBCOMMAND_EXAMPLES.iter().copied());
        for line in every.flat_map(|examples| examples.lines().skip(1)) {
            // "COMMAND   description", and "A   then   B" for two commands.
            let commands = line.trim().split("   then   ");
            for command in commands {
                // A pipe to another program ends the weir command.
                let command = command
                    .split("  ")
                    .next()
                    .unwrap()
                    .split(" | ")
                    .next()
                    .unwrap();
                let words = shlex::split(command).unwrap();
                assert_eq!(words[0], "weir", "{line}");
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("`{command}` does not parse: {e}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 30, "{checked}");
    }
}
